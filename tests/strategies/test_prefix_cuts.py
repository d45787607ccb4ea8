"""Prefix stability at many cut points for the recursive indicators (RSI, ATR, EMA, MACD).

A value must never depend on where the series ends (no look-ahead); cuts straddle
powers of two and the chunk sizes the non-recursive kernels use.
"""

from __future__ import annotations

import numpy as np

from strategies import indicators as ind


def _cuts(length: int, rng: np.random.Generator) -> list[int]:
    edges = [1, 2, 8, 9, 15, 16, 17, 64, 65, 72, 520, 8192, 8193, 8200, 8256, 8257, 16384, 16385]
    cuts = [c + d for c in edges for d in (-1, 0, 1) if 0 < c + d <= length]
    return cuts + [int(c) for c in rng.integers(2, length, 15)]


def test_rsi_atr_macd_prefix_stable_bit_for_bit():
    rng = np.random.default_rng(7)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, 18_000)))
    high = close * (1 + rng.uniform(0, 0.02, len(close)))
    low = close * (1 - rng.uniform(0, 0.02, len(close)))
    full_rsi = {n: ind.rsi(close, n) for n in (2, 14)}
    full_atr = ind.atr(high, low, close, 14)
    full_macd = ind.macd(close)
    for cut in _cuts(len(close), rng):
        for n, ref in full_rsi.items():
            np.testing.assert_array_equal(ind.rsi(close[:cut], n), ref[:cut])
        np.testing.assert_array_equal(ind.atr(high[:cut], low[:cut], close[:cut], 14), full_atr[:cut])
        for ours, ref in zip(ind.macd(close[:cut]), full_macd, strict=True):
            np.testing.assert_array_equal(ours, ref[:cut])


def test_rsi_is_100_when_nothing_ever_fell_and_50_when_nothing_moved():
    x = np.concatenate([np.full(30, 5.0), np.linspace(5.0, 9.0, 40)])
    r = ind.rsi(x, 14)
    assert (r[14:31] == 50.0).all()  # x[30] == x[29]: the first rise is at bar 31
    assert (r[31:] == 100.0).all()
