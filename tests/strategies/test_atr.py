"""ATR against the plain Wilder recursion, ATR(1), and its input checks."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import indicators as ind


def _ohlc(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, size)))
    high = close * (1 + rng.uniform(0, 0.02, size))
    low = close * (1 - rng.uniform(0, 0.02, size))
    return high, low, close


@pytest.mark.parametrize("n", [2, 3, 14, 50])
def test_atr_matches_the_plain_recursion(n):
    high, low, close = _ohlc(20_000, n)
    tr = ind.true_range(high, low, close)
    ref = np.full(len(close), np.nan)
    ref[n] = np.mean(tr[1 : n + 1])
    for t in range(n + 1, len(close)):
        ref[t] = ref[t - 1] + (tr[t] - ref[t - 1]) / n
    np.testing.assert_allclose(ind.atr(high, low, close, n), ref, rtol=1e-12)


def test_atr_of_one_bar_is_the_true_range():
    high, low, close = _ohlc(500, 4)
    np.testing.assert_array_equal(ind.atr(high, low, close, 1), ind.true_range(high, low, close))


@pytest.mark.parametrize("n", [2, 14])
@pytest.mark.parametrize("col", [0, 1, 2])
@pytest.mark.parametrize("where", [0, 5, 9000, -1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_atr_rejects_a_bad_value_anywhere(n, col, where, bad):
    cols = [c.copy() for c in _ohlc(10_000, 5)]
    cols[col][where] = bad
    with pytest.raises(ValueError):
        ind.atr(*cols, n)


def test_periods_beyond_talibs_limit_are_refused_clearly():
    x = np.ones(10)
    for fn in (ind.ema, ind.rsi, ind.donchian_high):
        with pytest.raises(ValueError, match="at most 100000"):
            fn(x, 100_001)
    with pytest.raises(ValueError, match="at most 100000"):
        ind.atr(x, x, x, 100_001)
