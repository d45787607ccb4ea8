"""The options cache's one-quote-per-line layout: still one JSON document, and a few quotes
can be read without parsing the chain (market.options_cache.read_quotes)."""

from __future__ import annotations

import json
from pathlib import Path

from market.options_cache import (
    options_file,
    read_option_chain,
    read_options,
    read_quotes,
    write_options,
)
from market.synthetic_options import SyntheticOptions

NOW = 1_773_138_000_000


def test_the_file_is_one_json_document_and_read_quotes_matches_a_full_parse(tmp_path: Path) -> None:
    chain = SyntheticOptions(42).fetch_option_chain("BTC", now_ms=NOW)
    dvol = {"start_ms": 0, "end_ms": NOW, "closes": [[0, 50.0]]}
    write_options(tmp_path, chain, "synthetic", dvol)
    doc = json.loads(options_file(tmp_path, "BTC").read_text())  # the whole file parses as before
    assert doc["dvol"] == dvol and doc["source"] == "synthetic" and len(doc["quotes"]) == len(chain.quotes)
    assert read_option_chain(tmp_path, "BTC") == chain
    wanted = {chain.quotes[0].instrument, chain.quotes[-1].instrument, "BTC-1JAN30-1-C"}
    head, quotes = read_quotes(tmp_path, "BTC", wanted)
    assert head == {k: doc[k] for k in ("underlying", "now_ms", "asof_ms", "index_price", "contract")}
    assert quotes == [q for q in doc["quotes"] if q["instrument"] in wanted] and len(quotes) == 2
    assert read_quotes(tmp_path, "BTC", set()) == (head, [])
    assert read_quotes(tmp_path, "ETH", wanted) is None


def test_a_chain_file_in_one_line_is_still_read(tmp_path: Path) -> None:
    chain = SyntheticOptions(42).fetch_option_chain("ETH", now_ms=NOW)
    write_options(tmp_path, chain, "synthetic", None)
    doc = read_options(tmp_path, "ETH")
    options_file(tmp_path, "ETH").write_text(json.dumps(doc))  # an older cache's layout
    name = chain.quotes[3].instrument
    head, quotes = read_quotes(tmp_path, "ETH", {name})
    assert head["index_price"] == chain.index_price and [q["instrument"] for q in quotes] == [name]
