"""Indicators against TA-Lib on real BTC, ETH and SOL 1h candles, and on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import indicators as ind
from tests.strategies._data import load

talib = pytest.importorskip("talib")

RTOL = 1e-9


def assert_matches(ours: np.ndarray, ref: np.ndarray, scale: float = 0.0) -> None:
    """Equal where TA-Lib has a value (rtol 1e-9); NaN exactly where TA-Lib is NaN.

    ``scale``: for series that cross zero (MACD) an absolute tolerance of 1e-12 x
    the price level stands in for "relative" near zero.
    """
    warm = np.isnan(ref)
    first = int(np.argmin(warm))
    assert np.isnan(ours[:first]).all(), "our warm-up is shorter than TA-Lib's"
    assert not np.isnan(ours[~warm]).any(), "NaN where TA-Lib has a value"
    np.testing.assert_allclose(ours[~warm], ref[~warm], rtol=RTOL, atol=1e-12 * scale)


@pytest.fixture(scope="module", params=["BTC", "ETH", "SOL"])
def ohlcv(request, shared_data):
    c = load(shared_data, request.param, "1h")
    return c.high, c.low, c.close, c.volume


def test_sma_ema_match_talib(ohlcv):
    _, _, close, volume = ohlcv
    for n in (2, 20, 50):
        assert_matches(ind.sma(close, n), talib.SMA(close, n))
    for n in (2, 8, 12, 21, 26, 55, 200):
        assert_matches(ind.ema(close, n), talib.EMA(close, n))
    assert_matches(ind.volume_sma(volume, 20), talib.SMA(volume, 20))


def test_rsi_matches_talib(ohlcv):
    close = ohlcv[2]
    for n in (2, 14, 30):
        assert_matches(ind.rsi(close, n), talib.RSI(close, n))


def test_macd_matches_talib(ohlcv):
    close = ohlcv[2]
    line, sig, hist = ind.macd(close, 12, 26, 9)
    t_line, t_sig, t_hist = talib.MACD(close, 12, 26, 9)
    scale = float(np.max(close))
    assert_matches(sig, t_sig, scale)
    assert_matches(hist, t_hist, scale)
    # TA-Lib hides the MACD line until the signal starts; ours starts at slow-1.
    assert_matches(line[33:], t_line[33:], scale)
    assert np.isnan(line[:25]).all() and not np.isnan(line[25:]).any()


def test_bollinger_uses_sample_std(ohlcv):
    close = ohlcv[2]
    k = 2.0 * np.sqrt(20 / 19)  # TA-Lib's ddof=0 band scaled to ddof=1
    for ours, ref in zip(ind.bollinger(close, 20, 2.0), talib.BBANDS(close, 20, k, k), strict=True):
        assert_matches(ours, ref)


def test_rolling_std_and_zscore(ohlcv):
    close = ohlcv[2]
    assert_matches(ind.rolling_std(close, 20, ddof=0), talib.STDDEV(close, 20, 1.0))
    assert_matches(ind.rolling_std(close, 30), talib.STDDEV(close, 30, 1.0) * np.sqrt(30 / 29))
    ref_z = (close - talib.SMA(close, 30)) / (talib.STDDEV(close, 30, 1.0) * np.sqrt(30 / 29))
    # z is a ratio of a small difference: compare absolutely (z is O(1))
    z = ind.zscore(close, 30)
    ok = ~np.isnan(ref_z)
    np.testing.assert_allclose(z[ok], ref_z[ok], rtol=0, atol=1e-7)


def test_roc_atr_donchian_match_talib(ohlcv):
    high, low, close, _ = ohlcv
    assert_matches(ind.roc(close, 14), talib.ROC(close, 14))
    assert_matches(ind.atr(high, low, close, 14), talib.ATR(high, low, close, 14))
    assert_matches(ind.true_range(high, low, close), talib.TRANGE(high, low, close))
    for n in (2, 21, 59):  # TA-Lib's MAX/MIN refuse n = 1; ours is the identity there
        assert_matches(ind.donchian_high(high, n), talib.MAX(high, n))
        assert_matches(ind.donchian_low(low, n), talib.MIN(low, n))
    np.testing.assert_array_equal(ind.donchian_high(high, 1), high)


# --- edge cases -----------------------------------------------------------------


def test_constant_prices_give_exact_values():
    x = np.full(300, 43210.57)
    for n in (2, 20, 55):
        assert (ind.sma(x, n)[n - 1 :] == x[0]).all()
        # TA-Lib's EMA: its seed (a sum of n values over n) may be an ulp off; it stays put
        e = ind.ema(x, n)[n - 1 :]
        assert (e == e[0]).all() and abs(e[0] - x[0]) <= 1e-14 * x[0]
        assert (ind.rolling_std(x, n)[n - 1 :] == 0.0).all()
        assert np.isnan(ind.zscore(x, n)).all()  # undefined on a flat window
        assert (ind.roc(x, n)[n:] == 0.0).all()
    line, sig, hist = ind.macd(x)
    for part, first in ((line, 25), (sig, 33), (hist, 33)):  # constant, and 0 up to rounding of the EMAs
        assert (part[first:] == part[first]).all() and abs(part[first]) <= 1e-14 * x[0]
    # TA-Lib says 0 (deeply oversold); with no movement at all we say neutral
    assert (ind.rsi(x, 14)[14:] == 50.0).all()
    assert (talib.RSI(x, 14)[14:] == 0.0).all()
    upper, mid, lower = ind.bollinger(x)
    assert (upper[19:] == mid[19:]).all() and (lower[19:] == x[0]).all()


def test_single_spike():
    x = np.full(100, 100.0)
    x[50] = 200.0
    s = ind.sma(x, 10)
    assert (s[50:60] == 110.0).all() and (s[60:] == 100.0).all() and (s[9:50] == 100.0).all()
    assert_matches(ind.ema(x, 10), talib.EMA(x, 10))
    # before the spike nothing moved: TA-Lib says RSI 0, we say 50 (see rsi's docstring)
    assert (ind.rsi(x, 14)[14:50] == 50.0).all()
    assert_matches(ind.rsi(x, 14)[50:], talib.RSI(x, 14)[50:])
    assert ind.rsi(x, 14)[50] == 100.0
    h = ind.donchian_high(x, 5)
    assert (h[50:55] == 200.0).all() and h[55] == 100.0
    z = ind.zscore(x, 10)
    assert z[50] == pytest.approx(9 / np.sqrt(10), rel=1e-12)  # (200-110)/std, std = 100/sqrt(10)
    assert np.isnan(z[60])  # the spike left the window: flat again


def test_fewer_bars_than_the_window_gives_all_nan():
    x = np.arange(1.0, 6.0)
    for fn in (ind.sma, ind.ema, ind.rolling_std, ind.zscore, ind.roc, ind.rsi, ind.donchian_high):
        assert np.isnan(fn(x, 10)).all()
    assert all(np.isnan(a).all() for a in ind.macd(x))
    assert np.isnan(ind.atr(x, x, x, 10)).all()
    assert len(ind.sma(np.array([]), 3)) == 0


def test_nan_input():
    x = np.linspace(100.0, 200.0, 60)
    lead = x.copy()
    lead[:5] = np.nan  # leading NaNs (another indicator's warm-up) are skipped, as TA-Lib does
    assert_matches(ind.ema(lead, 10), talib.EMA(lead, 10))
    assert_matches(ind.sma(lead, 10), talib.SMA(lead, 10))
    assert_matches(ind.rsi(lead, 10), talib.RSI(lead, 10))
    hole = x.copy()
    hole[30] = np.nan  # a hole would poison every recursive value after it: refused
    for fn in (ind.sma, ind.ema, ind.rsi, ind.zscore, ind.roc, ind.donchian_low):
        with pytest.raises(ValueError, match="NaN at index 30"):
            fn(hole, 10)
    inf = x.copy()
    inf[3] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        ind.sma(inf, 5)
    with pytest.raises(ValueError, match="OHLC"):
        ind.atr(lead, x, x, 5)


def test_bad_windows():
    x = np.ones(10)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            ind.sma(x, bad)
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd(x, 26, 12)
    with pytest.raises(ValueError):
        ind.zscore(x, 1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.integers(1, 40),
    st.integers(0, 399),
)
def test_prefix_stable(values, n, cut):
    """Bar t's value never depends on later bars (bit for bit)."""
    x = np.array(values)
    cut = min(cut, len(x))
    for fn in (ind.sma, ind.ema, ind.rsi, ind.roc, ind.donchian_high, ind.donchian_low):
        np.testing.assert_array_equal(fn(x[:cut], n), fn(x, n)[:cut])
    if n >= 2:
        np.testing.assert_array_equal(ind.rolling_std(x[:cut], n), ind.rolling_std(x, n)[:cut])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 1e5, allow_nan=False), min_size=2, max_size=300), st.integers(2, 30))
def test_against_talib_on_random_series(values, n):
    x = np.array(values)
    assert_matches(ind.sma(x, n), talib.SMA(x, n))
    assert_matches(ind.ema(x, n), talib.EMA(x, n))
    assert_matches(ind.donchian_high(x, n), talib.MAX(x, n))
    ref = talib.STDDEV(x, n, 1.0) * np.sqrt(n / (n - 1))
    ours = ind.rolling_std(x, n)
    ok = ~np.isnan(ref) & (ours > 0)
    # TA-Lib's running sums lose digits on near-flat windows; 1e-6 relative there
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-6, atol=1e-9 * x.max())
