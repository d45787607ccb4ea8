"""Every strategy: hand-built buy/sell/hold bars, no look-ahead on real data, the API contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import strategies as S
from strategies import catalog
from tests.strategies._data import between, load, make

P = [10.0] * 6 + [12, 14, 16, 18, 20, 20, 18, 15, 12, 10, 9, 9, 9, 10, 12]
Q = [20.0, 19, 18, 17, 16, 15, 14, 13, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 21, 19, 17]
M = [10.0, 11, 10, 11, 10, 11, 7, 9, 11, 12, 9, 12]

# name -> (candles, params, buy bars, sell bars). Each was checked against the
# definition by hand (the simple ones) or against TA-Lib's indicators (MACD/EMA).
HAND_BUILT = {
    # SMA2 vs SMA4: bar 5 SMA2 15 > SMA4 12.5 (equal before); bar 8 SMA2 12.5 < SMA4 16.25
    "sma_crossover": (make([10.0] * 5 + [20, 20, 20, 5, 5, 5]), {"fast": 2, "slow": 4}, [5], [8]),
    # EMA2 16.67 > EMA3 15 at bar 5; 9.88 < 11.88 at bar 8
    "ema_crossover": (make([10.0] * 5 + [20, 20, 20, 5, 5, 5]), {"fast": 2, "slow": 3}, [5], [8]),
    # RSI(2): 0, 0, then 50 at bar 4 (up through 30); 93.75 -> 46.9 at bar 8 (down through 70)
    "rsi": (make([10.0, 9, 8, 7, 8, 9, 10, 11, 10, 9]), {"period": 2}, [4], [8]),
    # period 3, 1 std: bar 4 close 8 < lower 8.18, bar 5 close 9 > lower 8 -> buy;
    # bar 6 close 12 >= upper 11.75, bar 7 close 13 < upper 13.41 -> sell
    "bollinger_bands": (make([10.0, 10, 10, 10, 8, 9, 12, 13, 11]), {"period": 3, "num_std": 1.0}, [5], [7]),
    # TA-Lib MACD(2,3,2) histogram: 0 -> 0.111 at 6, 0.041 -> -0.088 at 11, -0.102 -> 0.024 at 16
    "macd": (make(P), {"fast": 2, "slow": 3, "signal": 2}, [6, 16], [11]),
    # z(4): -1.453 -> -0.146 at 7 (up through -1); 0.866 -> -0.866 (4), -> -1.453 (6), 1.015 -> -0.833 (10)
    "mean_reversion": (make(M), {"lookback": 4, "entry_z": 1.0, "exit_z": 0.5}, [7], [4, 6, 10]),
    # ROC(2): 3 -> 6 % at bar 5; -1.9 -> -7.4 % at bar 8
    "momentum": (make([100.0, 100, 100, 100, 103, 106, 108, 104, 100, 98]), {"period": 2}, [5], [8]),
    # close crosses SMA3 up at 4 / down at 7, both with volume 3 > 1.5 x 5/3
    "volume_weighted": (
        make([10.0, 10, 10, 10, 12, 12, 12, 8], volume=[1, 1, 1, 1, 3, 1, 1, 3]), {"period": 3}, [4], [7],
    ),
    # EMA2 > EMA3 > EMA4 begins at 6 and 20, ends at 13 (TA-Lib EMAs)
    "triple_ema": (make(P), {"fast": 2, "mid": 3, "slow": 4}, [6, 20], [13]),
    # MACD(2,3,2) turns up at 9 with RSI(3) 33.3 < 35; turns down at 19 with RSI 65.5 > 65
    "rsi_macd_combo": (
        make(Q), {"rsi_period": 3, "oversold": 35, "overbought": 65, "fast": 2, "slow": 3, "signal": 2}, [9], [19],
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_buy_sell_hold(name):
    candles, params, buys, sells = HAND_BUILT[name]
    ss = S.signal_series(name, candles, params)
    assert ss.signal.dtype == np.int8 and len(ss.signal) == len(candles)
    assert np.flatnonzero(ss.signal == 1).tolist() == buys
    assert np.flatnonzero(ss.signal == -1).tolist() == sells
    for key, arr in ss.indicators.items():
        assert arr.dtype == np.float64 and len(arr) == len(candles), key
    # evaluate() at each of those bars says the same, and explains a hold
    for t in (*buys, *sells):
        assert S.evaluate(name, candles.head(t + 1), params).signal == ss.signal[t]
    hold = S.evaluate(name, candles, params) if ss.signal[-1] == 0 else S.evaluate(name, candles.head(len(candles) - 1), params)
    assert hold.signal == 0 and hold.indicators["bars_used"] >= 1
    json.dumps(hold.indicators, allow_nan=False)


def test_volume_weighted_needs_high_volume():
    c = make([10.0, 10, 10, 10, 12, 12, 12, 8], volume=[1, 1, 1, 1, 2, 1, 1, 1])
    ev = S.evaluate("volume_weighted", c.head(5), {"period": 3})
    assert ev.signal == 0 and ev.indicators["high_volume"] is False
    assert ev.indicators["close_minus_sma"] > 0 and ev.indicators["volume_needed"] == pytest.approx(2.0)


def test_bollinger_ignores_flat_bands():
    """After a flat stretch the bands have zero width: a move off them is no crossing."""
    ss = S.signal_series("bollinger_bands", make([10.0] * 10 + [9, 11, 10]), {"period": 3})
    assert ss.signal[10] == 0


def test_pairs_spread_aligns_on_timestamps():
    a = make(M)
    b = make(np.ones(len(M)).tolist(), symbol="B/USDT")
    params = {"lookback": 4, "entry_z": 1.0, "exit_z": 0.5}
    ss = S.signal_series("pairs_spread", a, params, candles_b=b)
    mr = S.signal_series("mean_reversion", a, {"lookback": 4, "entry_z": 1.0, "exit_z": 0.5})
    np.testing.assert_array_equal(ss.signal, mr.signal)  # close / 1 = close
    # drop bar 5 of B: A's bar 5 gets no signal and NaN indicators; windows skip it
    keep = np.arange(len(M)) != 5
    b2 = type(b)(b.symbol, b.timeframe, b.ts_ms[keep], b.open[keep], b.high[keep], b.low[keep],
                 b.close[keep], b.volume[keep])
    ss2 = S.signal_series("pairs_spread", a, params, candles_b=b2)
    assert len(ss2.signal) == len(a) and ss2.signal[5] == 0 and np.isnan(ss2.indicators["zscore"][5])
    assert np.isnan(ss2.indicators["zscore"][:3]).all() and not np.isnan(ss2.indicators["zscore"][6])
    # bar 6 is the 6th joined bar: its window is bars 2, 3, 4, 6
    r = np.array(M)[[2, 3, 4, 6]]
    assert ss2.indicators["zscore"][6] == pytest.approx((r[-1] - r.mean()) / r.std(ddof=1))
    ev = S.evaluate("pairs_spread", a.head(6), params, candles_b=b2)
    assert ev.signal == 0 and ev.indicators["missing_partner"] is True
    with pytest.raises(ValueError, match="candles_b"):
        S.signal_series("pairs_spread", a, params)
    with pytest.raises(ValueError, match="only for pairs_spread"):
        S.evaluate("rsi", a, candles_b=b)


@pytest.mark.parametrize("name", S.STRATEGY_NAMES)
def test_warming_up_is_a_hold_not_an_error(name):
    need = S.min_bars(name)
    c = make(np.linspace(100, 120, need - 1).tolist(), timeframe="1d")
    kw = {"candles_b": make(np.ones(need - 1).tolist(), timeframe="1d")} if name == "pairs_spread" else {}
    ev = S.evaluate(name, c, **kw)
    assert ev.signal == 0 and ev.indicators["warming_up"] is True and ev.indicators["bars_needed"] == need
    c2 = make(np.linspace(100, 120, need).tolist(), timeframe="1d")
    kw2 = {"candles_b": make(np.ones(need).tolist(), timeframe="1d")} if name == "pairs_spread" else {}
    assert "warming_up" not in S.evaluate(name, c2, **kw2).indicators


@pytest.mark.parametrize("name", S.STRATEGY_NAMES)
def test_nan_prices_are_refused(name):
    close = np.linspace(100, 150, 300)
    close[250] = np.nan
    c = make(close.tolist(), timeframe="1d")
    kw = {"candles_b": make(np.ones(300).tolist(), timeframe="1d")} if name == "pairs_spread" else {}
    with pytest.raises(ValueError, match="not finite"):
        S.signal_series(name, c, **kw)


def test_registry_catalog_and_params():
    assert tuple(catalog.CATALOG) == S.STRATEGY_NAMES
    assert set(S.api.SPECS) == set(S.STRATEGY_NAMES)
    table = S.describe()
    for name in S.STRATEGY_NAMES:
        assert name in table
    assert "fast=20, slow=50" in table and "oversold=35, overbought=65" in table
    with pytest.raises(ValueError, match="fast < slow"):
        S.min_bars("sma_crossover", {"fast": 60})
    with pytest.raises(ValueError, match="unknown parameter"):
        S.evaluate("rsi", make([1.0] * 30), {"length": 3})
    with pytest.raises(ValueError, match="unknown strategy"):
        S.min_bars("nope")
    assert S.min_bars("edge70") == 259 and S.min_bars("macd") == 35 and S.min_bars("rsi") == 16


def test_import_is_light(repo_root):
    code = ("import sys, strategies; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pandas', 'scipy', 'market', 'scheduler')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- no look-ahead, on real data ---------------------------------------------------


def _real(shared_data, name):
    if name == "edge70":
        return load(shared_data, "BTC", "1d"), None
    btc = between(load(shared_data, "BTC", "1h"), "2023-06-01", "2023-09-01")
    if name == "pairs_spread":
        return btc, between(load(shared_data, "ETH", "1h"), "2023-06-01", "2023-09-01")
    return btc, None


@pytest.mark.parametrize("name", S.STRATEGY_NAMES)
def test_no_look_ahead(shared_data, name):
    """Bar t's signal and indicators from bars [0..t] equal those from [0..t+k]."""
    candles, cb = _real(shared_data, name)
    full = S.signal_series(name, candles, candles_b=cb)
    assert (full.signal != 0).any()
    rng = np.random.default_rng(sum(map(ord, name)))
    start = S.min_bars(name)
    for t in rng.integers(start, len(candles) - 1, size=6):
        t = int(t)
        k = int(rng.integers(1, len(candles) - t))
        longer = S.signal_series(name, candles.head(t + 1 + k), candles_b=cb)
        part = S.signal_series(name, candles.head(t + 1), candles_b=cb)
        np.testing.assert_array_equal(part.signal, longer.signal[: t + 1])
        np.testing.assert_array_equal(part.signal, full.signal[: t + 1])
        for key, arr in part.indicators.items():
            np.testing.assert_array_equal(arr, longer.indicators[key][: t + 1], err_msg=key)
        # the checker's view of bar t agrees with the backtest's
        assert S.evaluate(name, candles.head(t + 1), candles_b=cb).signal == full.signal[t]


@pytest.mark.parametrize("name", S.STRATEGY_NAMES)
def test_evaluate_explains_real_holds_and_trades(shared_data, name):
    candles, cb = _real(shared_data, name)
    full = S.signal_series(name, candles, candles_b=cb)
    trade = int(np.flatnonzero(full.signal != 0)[-1])
    hold = int(np.flatnonzero(full.signal == 0)[-1])
    for t in (trade, hold):
        ev = S.evaluate(name, candles.head(t + 1), candles_b=cb)
        assert ev.signal == full.signal[t]
        assert isinstance(ev.indicators["bars_used"], int)
        assert len(ev.indicators) >= 4
        json.dumps(ev.indicators, allow_nan=False)
    if name == "edge70":
        t = int(np.flatnonzero(full.signal == 1)[-1])
        ev = S.evaluate(name, candles.head(t + 1))
        assert ev.indicators["stop_price"] == pytest.approx(candles.close[t] * 0.85)
        assert ev.indicators["bars_used"] == 259
