"""A well-behaved test checker: always buys, or with ALTERNATE_PERIOD_S set, buys in even
periods of that many seconds and sells in odd ones (so fills happen every cycle).

Prices come from the synthetic market (deterministic), at the scheduler's
decision time, through the same per-cycle cache as the real checker. Used by
the daemon integration and crash tests.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from market.cache import read_candles  # noqa: E402
from market.synthetic import SyntheticSource  # noqa: E402

strategy, symbol, timeframe = sys.argv[1:4]
now_ms = int(os.environ["GO_TRADER_NOW_MS"])
cache = os.environ.get("GO_TRADER_CACHE_DIR")
candles = read_candles(Path(cache), symbol, timeframe) if cache else None
if candles is None:
    candles = SyntheticSource(42).fetch_candles(symbol, timeframe, now_ms=now_ms, limit=10)
candles = candles.closed_at(now_ms)
period_s = os.environ.get("ALTERNATE_PERIOD_S")
signal = 1 if not period_s or (now_ms // (int(period_s) * 1000)) % 2 == 0 else -1
close_ms = int(candles.ts_ms[-1]) + candles.tf_ms
from datetime import UTC, datetime  # noqa: E402

print(json.dumps({"strategy": strategy, "symbol": symbol, "timeframe": timeframe, "signal": signal,
                  "price": float(candles.close[-1]), "indicators": {"phase": signal},
                  "timestamp": datetime.fromtimestamp(close_ms / 1000, tz=UTC).isoformat()}))
