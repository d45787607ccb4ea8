"""Says HOLD correctly and exits 0, but leaves a background child and a daemonised
grandchild running (see orphan_spawn), both holding its stdout and stderr open."""
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from orphan_spawn import spawn_orphans  # noqa: E402

from market.synthetic import SyntheticSource  # noqa: E402

strategy, symbol, timeframe = sys.argv[1:4]
now_ms = int(os.environ["GO_TRADER_NOW_MS"])
candles = SyntheticSource(42).fetch_candles(symbol, timeframe, now_ms=now_ms, limit=5)
spawn_orphans()
print(json.dumps({"strategy": strategy, "symbol": symbol, "timeframe": timeframe, "signal": 0,
                  "price": float(candles.close[-1]), "indicators": {},
                  "timestamp": datetime.fromtimestamp(candles.close_time_ms() / 1000, tz=UTC).isoformat()}))
