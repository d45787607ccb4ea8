"""Option data in the per-cycle cache: one JSON file per underlying, ``options-<UND>.json``.

The fetch step (market.prefetch) writes it; the checkers (market.cache_source) and the
daemon read it. Standard library only (the daemon imports this and never numpy)::

    {"underlying": "BTC", "source": "ccxt:deribit", "now_ms": ..., "asof_ms": ... | null,
     "index_price": 70000.0 | null,
     "contract": {"underlying": "BTC", "contract_size": 1.0, "min_trade_amount": 0.1,
                  "amount_step": 0.1, "tick_size": 0.0001, "source": "exchange"} | null,
     "quotes": [{"instrument": "BTC-27MAR26-70000-C", "underlying": "BTC",
                 "expiry_ms": ..., "strike": 70000.0, "option_type": "call",
                 "bid": 0.0123 | null, "ask": ... | null, "mark": ..., "mark_iv_pct": ...,
                 "underlying_price": ..., "index_price": ..., "delta": ..., "gamma": ...,
                 "theta": ..., "vega": ..., "open_interest": ...}, ...],
     "dvol": {"start_ms": ..., "end_ms": ..., "closes": [[day_open_ms, close], ...]}
             | {"start_ms": ..., "end_ms": ..., "error": ..., "error_class": ..., ...}}

Every quote field of options.chain.OptionQuote is written, null where the source
had none (a missing bid stays null, never 0). Floats round-trip exactly through JSON,
so a chain read back equals the chain written.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from market import fsio
from options.chain import OptionChain, OptionContract, OptionQuote

_QUOTE_FIELDS = tuple(f.name for f in fields(OptionQuote))
_CONTRACT_FIELDS = tuple(f.name for f in fields(OptionContract))


def options_file(cache_dir: Path, underlying: str) -> Path:
    """Where the cycle cache keeps ``underlying``'s options data."""
    if not underlying.isalnum():
        raise ValueError(f"underlying {underlying!r} must be letters and digits (e.g. 'BTC')")
    return cache_dir / f"options-{underlying}.json"


def chain_to_json(chain: OptionChain) -> dict[str, Any]:
    return {
        "underlying": chain.underlying, "now_ms": chain.now_ms, "asof_ms": chain.asof_ms,
        "index_price": chain.index_price,
        "contract": asdict(chain.contract) if chain.contract is not None else None,
        "dropped": list(chain.dropped),
        "quotes": [asdict(q) for q in chain.quotes],
    }


def quote_from_json(q: dict[str, Any]) -> OptionQuote:
    """One cached quote (a line of the file) as an OptionQuote."""
    return OptionQuote(**{k: q[k] for k in _QUOTE_FIELDS})


def chain_from_json(doc: dict[str, Any]) -> OptionChain:
    contract = doc.get("contract")
    return OptionChain(
        underlying=doc["underlying"], now_ms=int(doc["now_ms"]), index_price=doc["index_price"],
        quotes=tuple(quote_from_json(q) for q in doc["quotes"]),
        asof_ms=doc.get("asof_ms"),
        contract=OptionContract(**{k: contract[k] for k in _CONTRACT_FIELDS}) if contract else None,
        dropped=tuple(str(d) for d in doc.get("dropped") or ()),
    )


def write_options(cache_dir: Path, chain: OptionChain, source: str, dvol: dict[str, Any] | None) -> None:
    """Write one underlying's chain and DVOL record (see the module docstring) atomically.

    Laid out one quote per line (still one JSON document): the head on the first line, each
    quote on its own line, the rest after them, so that ``read_quotes`` can take a few quotes
    without parsing the whole chain (the daemon's memory stays flat)."""
    doc = {**chain_to_json(chain), "source": source, "dvol": dvol}
    quotes = doc.pop("quotes")
    dump = functools.partial(json.dumps, separators=(",", ":"), allow_nan=False)
    head = {k: v for k, v in doc.items() if k not in ("source", "dvol", "dropped")}
    tail = {"source": source, "dvol": dvol, "dropped": doc["dropped"]}
    lines = [dump(head)[:-1] + ',"quotes":[', ",\n".join(dump(q) for q in quotes), "]," + dump(tail)[1:]]
    fsio.write_atomic(options_file(cache_dir, chain.underlying), "\n".join(lines).encode(), durable=False)


def read_options(cache_dir: Path, underlying: str) -> dict[str, Any] | None:
    """The cached document of ``underlying``, or None when this cycle's cache has none."""
    try:
        return json.loads(options_file(cache_dir, underlying).read_text())
    except FileNotFoundError:
        return None


def read_quotes(cache_dir: Path, underlying: str, instruments: set[str]
                ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(the head: underlying, now_ms, asof_ms, index_price, contract; the quotes of
    ``instruments``), or None when this cycle's cache has no chain of ``underlying``. Parses
    only the head and the lines of the wanted quotes (write_options's layout)."""
    try:
        f = options_file(cache_dir, underlying).open(encoding="utf-8")
    except FileNotFoundError:
        return None
    with f:
        first = f.readline()
        if not first.endswith('"quotes":[\n'):  # not the line layout: parse it all
            doc = json.loads(first + f.read())
            return ({k: v for k, v in doc.items() if k not in ("quotes", "dvol")},
                    [q for q in doc["quotes"] if q.get("instrument") in instruments])
        head = json.loads(first[: -len(',"quotes":[\n')] + "}")
        prefixes = tuple('{"instrument":' + json.dumps(name) + "," for name in instruments)
        found = []
        for line in f:
            if line.startswith("],"):
                break
            if prefixes and line.startswith(prefixes):
                found.append(json.loads(line.rstrip().rstrip(",")))
        return head, found


def read_option_chain(cache_dir: Path, underlying: str) -> OptionChain | None:
    """The cached chain of ``underlying`` (for the daemon's marks and fills), or None."""
    doc = read_options(cache_dir, underlying)
    return chain_from_json(doc) if doc is not None else None
