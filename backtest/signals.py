"""A spot strategy's decision at every bar, exactly as the live checker would make it.

The checker (checkers/check_strategy.py ``decide``) decides at time t from the last
``candles_limit`` candles closed by t. ``decisions`` gives that decision for every bar i
(the decision made when bar i has just closed) in one of two ways:

- **series**: for strategies whose signal at bar i depends only on a fixed number of
  trailing bars (simple moving windows: no recursive seed), ``strategies.signal_series``
  over the whole history once; bars with fewer than ``min_bars`` candles in the checker's
  window are 0, as the checker's warm-up. ``WINDOW_FREE`` lists them, and a test pins every
  one to the per-bar path on real and adversarial data.
- **per bar**: everything else (EMA/RSI/MACD seeds depend on where the window starts;
  edge70 replays its last ``min_bars``): ``decide`` itself on each window, the checker's
  own code.

Pure: candles in, arrays out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from market.base import Candles

#: strategies whose signal at bar i is a function of a fixed trailing window of bars
#: (pinned to the per-bar checker path by tests/unit/test_backtest_signals.py)
WINDOW_FREE = frozenset({"sma_crossover", "bollinger_bands", "mean_reversion", "momentum", "volume_weighted"})


@dataclass(frozen=True)
class Decisions:
    """``signal[i]``: the checker's signal when bar i has just closed (int8); ``stop[i]``: the
    protective stop it gave with a buy (NaN: none); ``path``: "series" or "per_bar";
    ``failed``: the bars where the checker's check failed (DataError), with its message (their
    signal is 0: no decision)."""

    signal: np.ndarray
    stop: np.ndarray
    path: str
    failed: dict[int, str] = field(default_factory=dict)


def decisions(name: str, candles: Candles, params: Mapping[str, Any], candles_b: Candles | None = None,
              *, limit: int = 500, first: int = 0, per_bar: bool = False) -> Decisions:
    """The checker's decision at every bar ``i >= first`` of ``candles`` (0 before ``first``).

    ``limit`` is the checker's window (``runner.candles_limit``). ``per_bar`` forces the
    checker's own path for every strategy (the reference the fast path is tested against)."""
    import strategies

    n = len(candles)
    if name in WINDOW_FREE and not per_bar and candles_b is None:
        needed = strategies.min_bars(name, params)
        series = strategies.signal_series(name, candles, params)
        signal = np.asarray(series.signal, dtype=np.int8).copy()
        if needed > limit:  # the checker's window never holds enough bars: always warming up
            signal[:] = 0
        signal[: max(first, needed - 1)] = 0
        stop = series.indicators.get("stop_price")
        stop_arr = np.full(n, np.nan) if stop is None else np.where(signal == 1, stop, np.nan)
        return Decisions(signal, stop_arr, "series")
    return _per_bar(name, candles, params, candles_b, limit, first)


def _per_bar(name: str, candles: Candles, params: Mapping[str, Any], candles_b: Candles | None,
             limit: int, first: int) -> Decisions:
    from checkers.check_strategy import decide
    from scheduler.engine.errors import DataError

    n = len(candles)
    signal = np.zeros(n, dtype=np.int8)
    stop = np.full(n, np.nan)
    failed: dict[int, str] = {}
    close_b = candles_b.ts_ms + candles_b.tf_ms if candles_b is not None else None
    for i in range(first, n):
        now_ms = candles.close_time_ms(i)
        window = candles.head(i + 1).tail(limit)
        window_b = None
        if candles_b is not None and close_b is not None:
            j = int(np.searchsorted(close_b, now_ms, side="right"))
            window_b = candles_b.head(j).tail(limit)
        try:
            doc = decide(name, window, params, window_b, now_ms)
        except DataError as e:
            failed[i] = str(e)  # the checker would fail this check: no decision
            continue
        signal[i] = doc["signal"]
        if "stop_price" in doc:
            stop[i] = doc["stop_price"]
    return Decisions(signal, stop, "per_bar", failed)
