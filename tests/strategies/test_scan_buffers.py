"""The smoothing kernel's reused row buffers, BLAS call boundaries and ATR's folded input check.

Cuts straddle every BLAS call boundary of the first two recursion levels (gemv every
_GEMV_ROWS rows, gemm every _GEMM_ROWS rows, rows of _ROW values), counted from where
each indicator's smoothing starts, so a value never depends on where the series ends.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from strategies import _kernels as k
from strategies import indicators as ind


def _ohlc(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, size)))
    high = close * (1 + rng.uniform(0, 0.02, size))
    low = close * (1 - rng.uniform(0, 0.02, size))
    return high, low, close


def _boundary_cuts(size: int, starts: tuple[int, ...]) -> list[int]:
    row = k._ROW
    values = [row, k._GROUP, k._GEMV_ROWS * row, k._GEMM_ROWS * row, 2 * k._GEMM_ROWS * row,
              k._GEMV_ROWS * row * row]  # the last: a gemv boundary of the carries (level 1)
    cuts = {s + v + d for s in starts for v in values for d in (-2, -1, 0, 1, 2)}
    return sorted(c for c in cuts if 1 < c <= size)


def test_rsi_atr_ema_prefix_stable_across_blas_call_boundaries():
    size = k._GEMV_ROWS * k._ROW * k._ROW + 200
    high, low, close = _ohlc(size, 11)
    n = 14
    full_rsi = ind.rsi(close, n)
    full_atr = ind.atr(high, low, close, n)
    full_ema = ind.ema(close, 26)
    # smoothing starts: RSI at bar n (+1 for the first smoothed change), ATR at n, EMA at 25
    for cut in _boundary_cuts(size, (n, n + 1, 25, 26)):
        np.testing.assert_array_equal(ind.rsi(close[:cut], n), full_rsi[:cut])
        np.testing.assert_array_equal(ind.atr(high[:cut], low[:cut], close[:cut], n), full_atr[:cut])
        np.testing.assert_array_equal(ind.ema(close[:cut], 26), full_ema[:cut])


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


def test_buffers_are_per_thread():
    high, low, close = _ohlc(40_000, 8)
    ref_rsi, ref_atr = ind.rsi(close, 14), ind.atr(high, low, close, 14)
    errors: list[str] = []

    def work(shift: int) -> None:
        for _ in range(20):
            size = 30_000 + shift
            if not np.array_equal(ind.rsi(close[:size], 14), ref_rsi[:size], equal_nan=True):
                errors.append("rsi")
            if not np.array_equal(ind.atr(high[:size], low[:size], close[:size], 14), ref_atr[:size], equal_nan=True):
                errors.append("atr")

    threads = [threading.Thread(target=work, args=(s,)) for s in (0, 1111, 5000, 9999)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_smooth_rows_equals_smooth_closely():
    x = 100 + np.cumsum(np.random.default_rng(9).normal(0, 1, 50_000))
    ref = np.empty_like(x)
    k.smooth(x, 1 / 14, 100.0, ref)
    z = k.row_buffer(len(x) - 1)
    z[: len(x) - 1] = x[1:]
    out = np.empty_like(x)
    assert k.smooth_rows(z, len(x) - 1, 1 / 14, 100.0, out)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
