"""Implausible chain values never reach a strategy: a corrupt number column of a chain file
is refused naming the file and the line; implausible quotes (beyond an inverse option's
bounds, crossed) are dropped, and the check's output counts them and says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checkers.check_options import decide
from market.files_options import CHAIN_COLUMNS, FilesOptions
from market.options_cache import chain_from_json, chain_to_json, read_option_chain, write_options
from options.params import validate_params
from scheduler.engine.errors import DataError

SNAP_MS = 1_772_444_397_529  # 2026-03-02T09:39:57Z
NOW = SNAP_MS + 60_000
ROWS = [  # instrument, bid, ask, mark, iv, delta
    ("BTC-27MAR26-74000-C", 0.015, 0.016, 0.0155, 0.52, 0.2),
    ("BTC-27MAR26-76000-C", 0.011, 0.012, 0.0115, 0.53, 0.16),
    ("BTC-27MAR26-60000-P", 0.021, 0.022, 0.0215, 0.55, -0.2),
]


def _write(tmp_path: Path, rows: list[tuple[Any, ...]], **override: Any) -> FilesOptions:
    folder = tmp_path / "deribit"
    folder.mkdir(exist_ok=True)
    lines = [",".join(CHAIN_COLUMNS)]
    for name, bid, ask, mark, iv, delta in rows:
        cells = {"timestamp_ms": SNAP_MS, "instrument_name": name, "currency": "BTC", "bid_price": bid,
                 "ask_price": ask, "mark_price": mark, "implied_volatility": iv, "underlying": 66_300.0,
                 "index_price": 66_000.0, "delta": delta, "vega": 50.0, "open_interest": 10.0}
        cells.update(override.get(name, {}))
        lines.append(",".join(str(cells[c]) for c in CHAIN_COLUMNS))
    (folder / "option_chains_daily_t.csv").write_text("\n".join(lines) + "\n")
    return FilesOptions(tmp_path)


@pytest.mark.parametrize(("column", "value"), [("timestamp_ms", "abc"), ("mark_price", "abc"),
                                               ("delta", "high"), ("timestamp_ms", "")])
def test_a_corrupt_number_in_a_chain_file_names_the_file_and_the_line(tmp_path: Path, column: str,
                                                                      value: str) -> None:
    files = _write(tmp_path, ROWS, **{"BTC-27MAR26-76000-C": {column: value}})
    with pytest.raises(DataError, match=rf"option_chains_daily_t.csv, line 3: {column} "):
        files.fetch_option_chain("BTC", now_ms=NOW)


def test_an_empty_optional_cell_is_not_given_not_an_error(tmp_path: Path) -> None:
    chain = _write(tmp_path, ROWS, **{"BTC-27MAR26-76000-C": {"delta": "", "implied_volatility": ""}}) \
        .fetch_option_chain("BTC", now_ms=NOW)
    q = chain.find("BTC-27MAR26-76000-C")
    assert q is not None and q.delta is None and q.mark_iv_pct is None and q.mark == 0.0115


def test_implausible_quotes_are_dropped_and_the_cache_keeps_why(tmp_path: Path) -> None:
    files = _write(tmp_path, ROWS, **{"BTC-27MAR26-76000-C": {"mark_price": 5.0},
                                      "BTC-27MAR26-60000-P": {"bid_price": 0.5}})
    chain = files.fetch_option_chain("BTC", now_ms=NOW)
    assert [q.instrument for q in chain.quotes] == ["BTC-27MAR26-74000-C"]
    assert chain.dropped == ("BTC-27MAR26-60000-P: crossed quote: bid 0.5 > ask 0.022",
                             "BTC-27MAR26-76000-C: mark 5 coin is not below 1 coin (an inverse call pays less "
                             "than the coin)")
    assert chain_from_json(chain_to_json(chain)) == chain
    write_options(tmp_path, chain, "files:test", None)  # the cycle cache the checker and the engine read
    assert read_option_chain(tmp_path, "BTC") == chain


class _Source:
    name = "files:test"

    def __init__(self, files: FilesOptions) -> None:
        self.files = files

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> Any:
        return self.files.fetch_option_chain(underlying, now_ms=now_ms)


def test_the_checks_output_counts_the_dropped_quotes_and_says_why(tmp_path: Path) -> None:
    files = _write(tmp_path, ROWS, **{"BTC-27MAR26-76000-C": {"mark_price": 5.0}})
    params = validate_params("covered_calls", {"target_dte_days": 25.0}, underlying="BTC")
    out = decide("covered_calls", "BTC", params, [], 0.0, _Source(files), NOW)
    assert out["indicators"]["chain_dropped"] == 1
    assert out["indicators"]["chain_dropped_reasons"][0].startswith("BTC-27MAR26-76000-C: mark 5 coin")
    assert all(a["instrument"] != "BTC-27MAR26-76000-C" for a in out["actions"])
    assert out["actions"], out  # the plausible call is still proposed
