"""Rolling std / Bollinger / z-score computed on shifted rows of bars (see _kernels.window_std).

Rows start at absolute bars 0, R, 2R, ... (R = _kernels._BN_ROW), so cuts just before,
at and after every row boundary (and a window's length around it) must leave every
earlier value unchanged bit for bit; windows recomputed exactly (flat, near-flat,
after a jump) must also be independent of the cut.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from strategies import _kernels as k
from strategies import indicators as ind


def _series() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000)))
    x[400:470] = x[399]  # constant: std exactly 0
    x[900:1000] = x[899] * (1 + rng.normal(0, 1e-13, 100))  # near-flat (flat rule)
    x[1300:] *= 0.05  # a 20x crash: tiny std next to a huge row range
    x[1700:1760] = np.round(x[1700:1760], 2)  # ticks: repeats
    x[2100:2200] = 1e-3 + rng.normal(0, 1e-9, 100)  # far below the level seen before
    return x


def _cuts(length: int, n: int) -> list[int]:
    row = k._BN_ROW
    cuts = {1, n - 1, n, n + 1}
    for b in range(row, length, row):
        for edge in (b, b + n - 1):
            cuts.update(edge + d for d in (-2, -1, 0, 1, 2))
    cuts.update(range(395, 480, 7))
    cuts.update(range(1295, 1330, 3))
    return sorted(c for c in cuts if 0 < c <= length)


def test_prefix_stable_at_every_row_boundary():
    x = _series()
    for n in (2, 20, 30):
        full = {
            "std1": ind.rolling_std(x, n),
            "std0": ind.rolling_std(x, n, ddof=0),
            "mean_std": ind.rolling_mean_std(x, n),
            "bands": ind.bollinger(x, n, 2.0),
            "z": ind.zscore(x, n),
        }
        for cut in _cuts(len(x), n):
            y = x[:cut]
            np.testing.assert_array_equal(ind.rolling_std(y, n), full["std1"][:cut])
            np.testing.assert_array_equal(ind.rolling_std(y, n, ddof=0), full["std0"][:cut])
            for a, b in zip(ind.rolling_mean_std(y, n), full["mean_std"], strict=True):
                np.testing.assert_array_equal(a, b[:cut])
            for a, b in zip(ind.bollinger(y, n, 2.0), full["bands"], strict=True):
                np.testing.assert_array_equal(a, b[:cut])
            np.testing.assert_array_equal(ind.zscore(y, n), full["z"][:cut])


def test_leading_nans_shift_the_rows_with_the_data():
    x = _series()
    lead = np.concatenate([np.full(37, np.nan), x])
    for n in (20, 30):
        np.testing.assert_array_equal(ind.rolling_std(lead, n)[37:], ind.rolling_std(x, n))
        ref = ind.zscore(lead, n)
        for cut in (37 + 256, 37 + 256 + n, 37 + 1000):
            np.testing.assert_array_equal(ind.zscore(lead[:cut], n), ref[:cut])


def _two_pass(x: np.ndarray, n: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    w = sliding_window_view(x, n)
    base = w[:, :1]
    mean = base[:, 0] + (w - base).mean(axis=1)
    std = np.sqrt(((w - mean[:, None]) ** 2).sum(axis=1) / (n - ddof))
    return mean, std


def test_close_to_two_pass_and_exact_on_flat_windows():
    x = _series()
    for n in (2, 20, 30):
        for ddof in (0, 1):
            ours = ind.rolling_std(x, n, ddof=ddof)[n - 1 :]
            mean, ref = _two_pass(x, n, ddof)
            flat = ref <= 1e-10 * np.abs(mean)
            constant = np.ptp(sliding_window_view(x, n), axis=1) == 0
            assert (ours[constant] == 0.0).all()
            live = ~flat & (ref > 1e-9 * np.abs(mean))  # two-pass itself is ~1e-16 of the level
            np.testing.assert_allclose(ours[live], ref[live], rtol=2e-10)
        mid, _ = ind.rolling_mean_std(x, n)
        assert (mid[n - 1 :][constant] == x[n - 1 :][constant]).all()
        upper, _, lower = ind.bollinger(x, n, 2.0)
        assert (upper[n - 1 :][constant] == lower[n - 1 :][constant]).all()
        z = ind.zscore(x, n)[n - 1 :]
        assert np.isnan(z[ind.rolling_std(x, n)[n - 1 :] == 0.0]).all()
        assert not np.isnan(z[ind.rolling_std(x, n)[n - 1 :] > 0.0]).any()


def test_long_series_spanning_many_rows():
    rng = np.random.default_rng(5)
    x = 60000 * np.exp(np.cumsum(rng.normal(0, 0.004, 50_000)))
    _, ref = _two_pass(x, 20, 1)
    np.testing.assert_allclose(ind.rolling_std(x, 20)[19:], ref, rtol=2e-10)
    full = ind.bollinger(x, 20, 2.0)
    for cut in (12_800, 12_819, 12_820, 33_333, 49_999):
        for a, b in zip(ind.bollinger(x[:cut], 20, 2.0), full, strict=True):
            np.testing.assert_array_equal(a, b[:cut])
