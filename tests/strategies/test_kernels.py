"""The kernels behind the indicators: prefix stability on long series, doubling window means, true range."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import _kernels as k
from strategies import indicators as ind


def test_long_series_are_prefix_stable_bit_for_bit():
    """Cuts anywhere (around powers of two and chunk sizes too) give the same bits."""
    rng = np.random.default_rng(2)
    x = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, 20_000)))
    full = {n: ind.ema(x, n) for n in (2, 26, 200)}
    full_sma = ind.sma(x, 20)
    full_atr = ind.atr(x * 1.01, x * 0.99, x, 14)
    cuts = [1, 9, 64, 65, 520, 8191, 8193, 8260, 16384, 16400, 19_999]
    cuts += [int(c) for c in rng.integers(2, len(x), 20)]
    for cut in cuts:
        for n, ref in full.items():
            np.testing.assert_array_equal(ind.ema(x[:cut], n), ref[:cut])
        np.testing.assert_array_equal(ind.sma(x[:cut], 20), full_sma[:cut])
        np.testing.assert_array_equal(ind.atr(x[:cut] * 1.01, x[:cut] * 0.99, x[:cut], 14), full_atr[:cut])


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 33, 64, 100])
def test_window_mean_exact_on_constant_and_close_to_two_pass(n):
    c = np.full(500, 0.1 + 43210.57)
    out = np.empty(len(c) - n + 1)
    assert (k.window_mean(c, n, out) == c[0]).all()
    x = np.random.default_rng(n).uniform(1.0, 1e5, 3000)
    out = np.empty(len(x) - n + 1)
    ref = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    np.testing.assert_allclose(k.window_mean(x, n, out), ref, rtol=1e-13)


def test_true_range_equals_the_three_distance_form():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 40_000)))
    high = close * (1 + rng.uniform(0, 0.03, len(close)))
    low = close * (1 - rng.uniform(0, 0.03, len(close)))
    tr = ind.true_range(high, low, close)
    prev = close[:-1]
    ref = np.maximum(high[1:] - low[1:], np.maximum(np.abs(high[1:] - prev), np.abs(low[1:] - prev)))
    np.testing.assert_array_equal(tr[1:], ref)
    assert np.isnan(tr[0])
