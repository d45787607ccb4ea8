"""backtest.lookahead (issue 10 item 11): a strategy that peeks at the next bar is caught;
every catalog strategy passes on synthetic candles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backtest import lookahead
from market.synthetic import ORIGIN_MS, SyntheticSource
from strategies import STRATEGY_NAMES, SignalSeries, signal_series

HOUR_MS = 3_600_000
NOW_MS = ORIGIN_MS + 2400 * HOUR_MS


@pytest.fixture(scope="module")
def btc():
    return SyntheticSource(seed=7).fetch_candles("BTC/USDT", "1h", now_ms=NOW_MS, limit=2400)


@pytest.fixture(scope="module")
def eth():
    return SyntheticSource(seed=7).fetch_candles("ETH/USDT", "1h", now_ms=NOW_MS, limit=2400)


def peek_next_close(candles, candles_b=None) -> SignalSeries:
    """Buys before a rise, sells before a fall: it reads close[i + 1]."""
    close = np.asarray(candles.close)
    nxt = np.append(close[1:], np.nan)
    signal = np.where(nxt > close, 1, np.where(nxt < close, -1, 0)).astype(np.int8)
    return SignalSeries(signal, {"next_close": nxt})


def centred_mean(candles, candles_b=None) -> SignalSeries:
    """Subtler: the signal never changes at the sampled bars' end, only its indicator peeks
    (a centred 5-bar mean); a rare signal that only fires far from the sampled bars."""
    close = np.asarray(candles.close)
    mean = np.convolve(close, np.ones(5) / 5, mode="same")
    return SignalSeries(np.zeros(len(close), dtype=np.int8), {"centred_mean": mean})


def whole_history_zscore(candles, candles_b=None) -> np.ndarray:
    """A z-score against the mean and std of the WHOLE series (a classic leak); plain array."""
    close = np.asarray(candles.close)
    with np.errstate(invalid="ignore", divide="ignore"):  # one bar: std 0
        z = (close - close.mean()) / close.std()
    return np.where(z < -1, 1, np.where(z > 1, -1, 0)).astype(np.int8)


@pytest.mark.parametrize("fn", [peek_next_close, centred_mean, whole_history_zscore])
def test_a_peeking_strategy_is_caught(btc, fn) -> None:
    report = lookahead.check(fn, btc, name=fn.__name__)
    assert not report.ok
    m = report.first_mismatch
    assert m is not None and m.bar in report.checked_bars and m.ts_ms == int(btc.ts_ms[m.bar])
    assert "reads later bars" in m.describe()
    doc = report.to_json()
    assert doc["ok"] is False and doc["first_mismatch"]["bar"] == m.bar
    json.dumps(doc, allow_nan=False)


def test_the_first_mismatch_is_the_earliest_checked(btc) -> None:
    report = lookahead.check(peek_next_close, btc, max_bars=30)
    assert report.first_mismatch.bar == min(report.checked_bars)  # it peeks at every bar
    assert report.first_mismatch.what == "signal" or report.first_mismatch.what.startswith("indicator")


# the synthetic volume varies too little for the default 1.5x volume filter ever to pass
PARAMS = {"volume_weighted": {"volume_mult": 1.1}}


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_catalog_strategy_passes(btc, eth, name) -> None:
    b = eth if name == "pairs_spread" else None
    report = lookahead.check_strategy(name, btc, PARAMS.get(name), candles_b=b, max_bars=40)
    assert report.ok, report.first_mismatch.describe()
    assert len(report.checked_bars) == 40
    fired = set(np.flatnonzero(signal_series(name, btc, PARAMS.get(name), candles_b=b).signal[:-1] != 0))
    assert fired, f"{name} never fires on these candles: the check would prove little"
    assert len(fired & set(report.checked_bars)) >= min(20, len(fired))  # the trading bars are checked


def test_an_error_on_a_prefix_names_the_bar(btc) -> None:
    def needs_ten(candles, candles_b=None):
        if len(candles) < 10:
            raise ValueError("too short")
        return np.zeros(len(candles), dtype=np.int8)

    with pytest.raises(ValueError, match="too short") as info:
        lookahead.check(needs_ten, btc, name="needs_ten")
    assert "look-ahead check of needs_ten: on the candles up to bar 0" in info.value.__notes__[0]


def test_sample_is_bounded_and_skips_the_last_bar() -> None:
    sig = np.zeros(1000, dtype=np.int8)
    sig[[3, 500, 999]] = 1
    bars = lookahead.sample_bars(sig, 10)
    assert len(bars) == 10 and 999 not in bars and {3, 500} <= set(bars) and bars == sorted(bars)
    assert lookahead.sample_bars(sig[:5], 64) == [0, 1, 2, 3]
    assert lookahead.sample_bars(sig[:1], 64) == []
    with pytest.raises(ValueError, match="max_bars 0"):
        lookahead.check(peek_next_close, None, max_bars=0)  # type: ignore[arg-type]


@pytest.mark.shared_data
def test_every_catalog_strategy_passes_on_the_real_1h_history(shared_data) -> None:
    from tests.strategies._data import load

    btc, eth = load(shared_data, "BTC", "1h"), load(shared_data, "ETH", "1h")
    for name in STRATEGY_NAMES:
        report = lookahead.check_strategy(name, btc, candles_b=eth if name == "pairs_spread" else None, max_bars=16)
        assert report.ok, report.first_mismatch.describe()
    assert not lookahead.check(peek_next_close, btc, max_bars=16).ok
