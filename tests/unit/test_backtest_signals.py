"""The runner's fast decision path (one signal_series over the whole history) is exactly the
checker's own decision (``checkers.check_strategy.decide`` on the last ``candles_limit``
candles) at every bar, for every strategy it is used for: on the synthetic market, on
adversarial prices (flat stretches, a collapse, huge levels) and on real BTC candles."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.signals import WINDOW_FREE, decisions
from market.base import Candles
from market.synthetic import ORIGIN_MS, SyntheticSource

HOUR = 3_600_000
PARAMS = {"sma_crossover": {"fast": 3, "slow": 8}, "bollinger_bands": {"period": 6, "num_std": 1.0},
          "mean_reversion": {"lookback": 6, "entry_z": 1.0, "exit_z": 0.3},
          "momentum": {"period": 4, "threshold_pct": 0.5}, "volume_weighted": {"period": 5, "volume_mult": 1.1}}


def _adversarial(n: int = 700) -> Candles:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close[100:160] = close[99]  # a flat stretch: windows of equal values
    close[300:320] = close[299] * np.linspace(1, 0.05, 20)  # a collapse
    close[500:] *= 1e7  # a huge level
    open_ = np.r_[close[0], close[:-1]]
    rows = np.c_[ORIGIN_MS + np.arange(n) * HOUR, open_, np.maximum(open_, close) * 1.001,
                 np.minimum(open_, close) * 0.999, close, rng.uniform(1, 10, n)]
    rows[120:150, 5] = 5.0  # equal volumes
    return Candles.from_rows("BTC/USDT", "1h", rows.tolist(), "test")


def _series(candles: Candles, limit: int):
    for name in sorted(WINDOW_FREE):
        params = PARAMS[name]
        fast = decisions(name, candles, params, limit=limit)
        slow = decisions(name, candles, params, limit=limit, per_bar=True)
        yield name, fast, slow


@pytest.mark.parametrize("limit", [50, 500])
def test_fast_path_equals_the_checkers_decision_on_adversarial_prices(limit):
    for name, fast, slow in _series(_adversarial(), limit):
        assert fast.path == "series" and slow.path == "per_bar"
        assert np.array_equal(fast.signal, slow.signal), name
        assert np.count_nonzero(slow.signal) > 5, name


def test_fast_path_equals_the_checkers_decision_on_the_synthetic_market():
    candles = SyntheticSource(11).fetch_candles("SOL/USDT", "1h", now_ms=ORIGIN_MS + 900 * HOUR, limit=900)
    for name, fast, slow in _series(candles, 60):
        assert np.array_equal(fast.signal, slow.signal), name


def test_a_window_shorter_than_the_warm_up_never_signals():
    fast = decisions("sma_crossover", _adversarial(), {"fast": 20, "slow": 80}, limit=60)
    assert not fast.signal.any()


@pytest.mark.shared_data
def test_fast_path_equals_the_checkers_decision_on_real_btc(shared_data):
    from market.files_source import FilesSource

    source = FilesSource(shared_data / "ohlcv")
    candles = source.fetch_candles("BTC/USDT", "1h", now_ms=1_650_000_000_000, limit=2500)
    for name in sorted(WINDOW_FREE):
        fast = decisions(name, candles, {}, limit=500)
        slow = decisions(name, candles, {}, limit=500, per_bar=True)
        assert np.array_equal(fast.signal, slow.signal), name
