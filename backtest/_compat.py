"""Where the shared value types live while the layering change (issue 10 item 1) lands: the
engine's own value modules (scheduler/engine/errors.py, timeframes.py) after it, the older
places (scheduler/errors.py, market/timeframes.py) before. Remove once main has it."""

from __future__ import annotations

try:
    from scheduler.engine.errors import ConfigError, DataError, ExchangeError, GoTraderError
except ImportError:  # before the layering change
    from scheduler.errors import ConfigError, DataError, ExchangeError, GoTraderError  # type: ignore[no-redef]
try:
    from scheduler.engine.timeframes import timeframe_ms
except ImportError:  # before the layering change
    from market.timeframes import timeframe_ms  # type: ignore[no-redef]

__all__ = ["ConfigError", "DataError", "ExchangeError", "GoTraderError", "timeframe_ms"]
