"""Loading the real candles of ../shared/data for the strategy tests (test helper)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from market.base import Candles


@functools.cache
def _frame(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def load(shared_data: Path, base: str, timeframe: str) -> Candles:
    """Binance ``{base}/USDT`` candles of ``timeframe`` ("1h" or "1d"), full history."""
    name = f"{base}_USDT-{timeframe}.csv" + (".gz" if timeframe == "1h" else "")
    df = _frame(str(shared_data / "ohlcv" / "binance" / name))
    rows = df[["timestamp", "open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    return Candles.from_rows(f"{base}/USDT", timeframe, rows, source="shared_data")


def between(c: Candles, start: str, end: str) -> Candles:
    """Candles opening in [start, end) (ISO dates, UTC)."""
    lo = int(pd.Timestamp(start, tz="UTC").value // 1_000_000)
    hi = int(pd.Timestamp(end, tz="UTC").value // 1_000_000)
    i, j = np.searchsorted(c.ts_ms, [lo, hi])
    return c.head(int(j)).tail(int(j - i))


def make(close, *, high=None, low=None, volume=None, timeframe: str = "1h", symbol: str = "TEST/USDT",
         start_ms: int = 1_700_000_000_000 // 3_600_000 * 3_600_000) -> Candles:
    """Hand-built candles from a list of closes (open = previous close)."""
    c = np.asarray(close, dtype=np.float64)
    h = c.copy() if high is None else np.asarray(high, dtype=np.float64)
    lo = c.copy() if low is None else np.asarray(low, dtype=np.float64)
    v = np.ones_like(c) if volume is None else np.asarray(volume, dtype=np.float64)
    o = np.concatenate([c[:1], c[:-1]])
    step = {"1h": 3_600_000, "1d": 86_400_000}[timeframe]
    ts = start_ms + step * np.arange(len(c), dtype=np.int64)
    return Candles(symbol, timeframe, ts, o, np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c)), c, v)
