#!/usr/bin/env python3
"""Spot checker: one strategy, one symbol, one timeframe -> one JSON signal.

    python3 checkers/check_strategy.py sma_crossover BTC/USDT 1h
    python3 checkers/check_strategy.py pairs_spread BTC/USDT 1d ETH/USDT --config config.demo.json

Prints {strategy, symbol, timeframe, signal, price, indicators, timestamp, ...}
where price is the close of the last CLOSED candle and timestamp its close
time. On failure it prints the same document with "error" and "error_class"
(transient: may work next time; permanent: needs a fix) and exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import json  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

from checkers import common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("strategy")
    parser.add_argument("symbol")
    parser.add_argument("timeframe")
    parser.add_argument("symbol_b", nargs="?")
    parser.add_argument("--params", default="{}", help="JSON object of parameter overrides")
    common.add_context_args(parser)
    args = parser.parse_args(argv)
    doc = {"strategy": args.strategy, "symbol": args.symbol, "timeframe": args.timeframe, "signal": 0}
    if args.symbol_b:
        doc["symbol_b"] = args.symbol_b
    with common.reporting(doc) as keep:
        from market.base import check_fresh, stale_limit
        from strategies.catalog import CATALOG, validate_params

        now_ms = common.now_ms(args)
        params = validate_params(args.strategy, json.loads(args.params))
        needs_b = CATALOG[args.strategy].needs_second_symbol
        if needs_b and not args.symbol_b:  # before asking any market
            raise ValueError(f"{args.strategy} needs a second symbol: {args.strategy} {args.symbol} {args.timeframe} "
                             "SYMBOL_B")
        if args.symbol_b and not needs_b:
            raise ValueError(f"{args.strategy} takes no second symbol; remove {args.symbol_b!r} (parameter "
                             "overrides go in --params '{...}')")
        source = keep(common.open_market(args))
        max_stale = stale_limit(common.market_spec(args))

        def closed(symbol: str):  # never the forming candle, whatever the source
            candles = source.fetch_candles(symbol, args.timeframe, now_ms=now_ms, limit=common.candles_limit())
            return candles.closed_at(now_ms)

        candles = closed(args.symbol)
        check_fresh(candles, now_ms, max_stale)  # before the second symbol is fetched: the first error wins
        candles_b = closed(args.symbol_b) if args.symbol_b else None
        doc.update(decide(args.strategy, candles, params, candles_b, now_ms, max_stale))
    return 0


def decide(strategy: str, candles: Any, params: Mapping[str, Any], candles_b: Any, now_ms: int,
           max_stale: int | None = None) -> dict[str, Any]:
    """The checker's decision at ``now_ms`` from the candles closed by then (the fields of its
    document). The daemon's checker and the backtester (backtest/signals.py) both call this,
    so a replay decides exactly as the live checker: candles more than ``max_stale`` bars
    behind the clock (the market's ``max_stale_candles``; None: the default) fail (DataError), the price is the
    last closed close, a buy carries the strategy's protective stop."""
    import strategies
    from market.base import MAX_STALE_CANDLES, check_fresh

    check_fresh(candles, now_ms, MAX_STALE_CANDLES if max_stale is None else max_stale)
    result = strategies.evaluate(strategy, candles, params, candles_b)
    stop = result.indicators.get("stop_price") if result.signal == 1 else None
    out: dict[str, Any] = {
        "signal": int(result.signal), "price": float(candles.close[-1]), "indicators": result.indicators,
        "timestamp": common.iso_ms(candles.close_time_ms()), "source": candles.source, "bars": len(candles),
    }
    if isinstance(stop, (int, float)):
        out["stop_price"] = float(stop)
    return out


if __name__ == "__main__":
    sys.exit(main())
