"""Golden signals on fixed real slices, and an independent TA-Lib re-derivation of them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import strategies as S
from tests.strategies.make_golden import GOLDEN, compute, slice_for

talib = pytest.importorskip("talib")


def test_golden_signals(shared_data):
    want = json.loads(GOLDEN.read_text())
    got = compute(shared_data)
    assert got["slices"] == want["slices"]
    for name in S.STRATEGY_NAMES:
        assert got["signals"][name] == want["signals"][name], (
            f"{name} signals changed; if on purpose, regenerate: .venv/bin/python -m tests.strategies.make_golden"
        )


def _up(x, level):
    lv = np.broadcast_to(level, x.shape)
    out = np.zeros(len(x), bool)
    out[1:] = (x[1:] > lv[1:]) & (x[:-1] <= lv[:-1])
    return out


def _down(x, level):
    lv = np.broadcast_to(level, x.shape)
    out = np.zeros(len(x), bool)
    out[1:] = (x[1:] < lv[1:]) & (x[:-1] >= lv[:-1])
    return out


def _talib_signals(name, c):
    """The REFERENCE section 4 rules written over TA-Lib's indicators (default parameters)."""
    close, vol = c.close, c.volume
    if name == "sma_crossover":
        g = talib.SMA(close, 20) - talib.SMA(close, 50)
        return _up(g, 0), _down(g, 0)
    if name == "ema_crossover":
        g = talib.EMA(close, 12) - talib.EMA(close, 26)
        return _up(g, 0), _down(g, 0)
    if name == "rsi":
        r = talib.RSI(close, 14)
        return _up(r, 30), _down(r, 70)
    if name == "bollinger_bands":
        k = 2.0 * np.sqrt(20 / 19)
        up, _, lo = talib.BBANDS(close, 20, k, k)
        return _up(close, lo), _down(close, up)
    if name in ("macd", "rsi_macd_combo"):
        h = talib.MACD(close, 12, 26, 9)[2]
        if name == "macd":
            return _up(h, 0), _down(h, 0)
        r = talib.RSI(close, 14)
        return _up(h, 0) & (r < 35), _down(h, 0) & (r > 65)
    if name == "mean_reversion":
        z = (close - talib.SMA(close, 30)) / (talib.STDDEV(close, 30, 1.0) * np.sqrt(30 / 29))
        return _up(z, -1.5), _down(z, 0.5)
    if name == "momentum":
        r = talib.ROC(close, 14)
        return _up(r, 5), _down(r, -5)
    if name == "volume_weighted":
        g = close - talib.SMA(close, 20)
        hv = vol > 1.5 * talib.SMA(vol, 20)
        return _up(g, 0) & hv, _down(g, 0) & hv
    if name == "triple_ema":
        a = (talib.EMA(close, 8) > talib.EMA(close, 21)) & (talib.EMA(close, 21) > talib.EMA(close, 55))
        was = np.r_[False, a[:-1]]
        valid = ~np.isnan(talib.EMA(close, 55))
        prev_valid = np.r_[False, valid[:-1]]
        return a & ~was & prev_valid, ~a & was & valid
    raise KeyError(name)


@pytest.mark.parametrize("name", [n for n in S.STRATEGY_NAMES if n not in ("pairs_spread", "edge70")])
def test_signals_agree_with_talib_indicators(shared_data, name):
    candles, _ = slice_for(name, shared_data)
    buy, sell = _talib_signals(name, candles)
    sig = S.signal_series(name, candles).signal
    np.testing.assert_array_equal(np.flatnonzero(sig == 1), np.flatnonzero(buy & ~sell))
    np.testing.assert_array_equal(np.flatnonzero(sig == -1), np.flatnonzero(sell & ~buy))


def test_edge70_golden_by_hand(shared_data):
    """edge70's breakouts on the golden slice, re-derived with TA-Lib MAX/MIN and replay()."""
    from strategies import edge70

    candles, _ = slice_for("edge70", shared_data)
    top = np.r_[np.nan, talib.MAX(candles.high, 59)[:-1]]
    bottom = np.r_[np.nan, talib.MIN(candles.low, 21)[:-1]]
    e = (candles.high > top).astype(int) - (candles.low < bottom).astype(int)
    e[:59] = 0
    sig = S.signal_series("edge70", candles).signal
    for t in range(258, len(candles)):
        assert sig[t] == edge70.replay(e[t - 199 : t + 1].tolist())[0][-1]
