"""The scheduler's fetch step: everything a cycle needs, fetched once.

Run as a job by the scheduler (``python -m market.prefetch``), with a JSON
request on stdin::

    {"market": {...config market section...}, "now_ms": 1700000000000,
     "pairs": [["BTC/USDT", "1h"], ...], "price_symbols": ["BTC/USDT", ...],
     "cache_dir": "/path/to/cycle/cache", "limit": 500}

It loads market rules once, fetches candles once per unique (symbol,
timeframe), fetches one ticker batch, writes them to the per-cycle cache
(market.cache) and prints one JSON document: prices, rules, and a per-pair
status with its most recent closed candles. A pair that failed is reported with its error; it never stops the
others. A price that could not be had is null, never 0.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from market.base import MarketSource, check_fresh
from market.cache import MANIFEST, write_candles, write_json_atomic
from scheduler.errors import ExchangeError, TransientExchangeError

DEFAULT_LIMIT = 500
#: closed candles per pair returned to the scheduler (protective stops are checked against them)
BARS_REPORTED = 48


def _error(e: Exception) -> dict[str, Any]:
    return {"error": f"{type(e).__name__}: {e}", "transient": isinstance(e, TransientExchangeError)}


def prefetch(
    source: MarketSource,
    pairs: Sequence[tuple[str, str]],
    price_symbols: Sequence[str],
    now_ms: int,
    cache_dir: Path,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Fetch and cache one cycle's market data; returns the manifest it wrote.

    ``cache_dir`` must exist: the scheduler creates it for the cycle and removes
    it afterwards; a fetch step that outlived its scheduler must not re-create it.
    """
    if not cache_dir.is_dir():
        raise FileNotFoundError(f"cycle cache folder {cache_dir} does not exist (the cycle is over)")
    unique_pairs = sorted({(s, tf) for s, tf in pairs})
    symbols = sorted({s for s, _ in unique_pairs} | set(price_symbols))
    result: dict[str, Any] = {"now_ms": now_ms, "source": source.name, "pairs": {}, "prices": {},
                              "rules": {}, "errors": []}
    try:
        result["rules"] = {s: r.as_json() for s, r in source.fetch_market_rules(symbols).items()}
    except ExchangeError as e:
        result["errors"].append({"what": "market rules", **_error(e)})
    for symbol, tf in unique_pairs:
        key = f"{symbol} {tf}"
        try:
            candles = source.fetch_candles(symbol, tf, now_ms=now_ms, limit=limit)
            check_fresh(candles, now_ms)
            write_candles(cache_dir, candles)
            tail = candles.tail(BARS_REPORTED)
            result["pairs"][key] = {
                "ok": True, "bars": len(candles), "last_open_ms": int(candles.ts_ms[-1]), "gaps": len(candles.gaps),
                "recent": [[int(t), float(o), float(h), float(lo), float(c)] for t, o, h, lo, c in
                           zip(tail.ts_ms, tail.open, tail.high, tail.low, tail.close, strict=True)],
            }
        except ExchangeError as e:
            result["pairs"][key] = {"ok": False, **_error(e)}
    if symbols:
        try:
            prices = source.fetch_prices(symbols, now_ms=now_ms)
            result["prices"] = {
                s: (p if isinstance(p, (int, float)) and math.isfinite(p) and p > 0 else None)
                for s, p in ((s, prices.get(s)) for s in symbols)
            }
        except ExchangeError as e:
            result["prices"] = {s: None for s in symbols}
            result["errors"].append({"what": "prices", **_error(e)})
    write_json_atomic(cache_dir / MANIFEST, result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from market.sources import open_source

    request = json.loads(sys.stdin.read())
    source = open_source(request["market"])
    try:
        result = prefetch(
            source, [tuple(p) for p in request["pairs"]], request["price_symbols"],
            int(request["now_ms"]), Path(request["cache_dir"]), int(request.get("limit", DEFAULT_LIMIT)),
        )
    finally:
        source.close()
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
