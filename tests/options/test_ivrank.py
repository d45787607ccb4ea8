"""IV rank: DVOL range rank on hand-built series, no look-ahead, the labelled realized-vol
fallback, and what too little / flat / NaN history gives."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.ivrank import (
    DAY_MS,
    IvRank,
    IvRankUnavailable,
    iv_rank,
    iv_rank_from_dvol,
    iv_rank_from_realized_vol,
)

T0 = 1_700_000_000_000 // DAY_MS * DAY_MS  # a UTC midnight


def daily(values: list[float] | np.ndarray, start_ms: int = T0) -> list[tuple[int, float]]:
    """Daily bars: ts_ms is the day's open, the close is known a day later."""
    return [(start_ms + i * DAY_MS, float(v)) for i, v in enumerate(values)]


def after_bar(i: int, start_ms: int = T0) -> int:
    """The moment bar ``i``'s close becomes known."""
    return start_ms + (i + 1) * DAY_MS


def test_known_answer_over_the_trailing_year() -> None:
    # 365 closes from 40 to 80 and back; today 50: (50 - 40) / (80 - 40) = 25 %
    values = [60.0] * 365
    values[10], values[200], values[-1] = 40.0, 80.0, 50.0
    r = iv_rank_from_dvol(daily(values), after_bar(364), bar_ms=DAY_MS)
    assert isinstance(r, IvRank)
    assert (r.value_pct, r.method, r.n_obs, r.now_value, r.min, r.max) == (25.0, "dvol", 365, 50.0, 40.0, 80.0)
    assert r.window_days == 365 and r.as_of_ms == after_bar(364) and "DVOL" in r.label


def test_only_the_trailing_365_days_count() -> None:
    # a 200 spike 366 days ago is out of the window; a 20 low 365 days ago (known then) too
    values = [200.0, 20.0] + [50.0] * 363 + [60.0, 55.0]
    r = iv_rank_from_dvol(daily(values), after_bar(len(values) - 1), bar_ms=DAY_MS)
    assert isinstance(r, IvRank)
    assert (r.min, r.max, r.n_obs) == (50.0, 60.0, 365)
    assert r.value_pct == pytest.approx(50.0)


def test_no_look_ahead_a_later_spike_does_not_change_a_past_rank() -> None:
    rng = np.random.default_rng(3)
    values = list(40 + 20 * rng.random(400))
    now = after_bar(380)
    before = iv_rank_from_dvol(daily(values), now, bar_ms=DAY_MS)
    spiked = values.copy()
    spiked[381] = 500.0  # today's bar, still open at `now`: its close is not known yet
    spiked[390:] = [1.0] * 10
    assert iv_rank_from_dvol(daily(spiked), now, bar_ms=DAY_MS) == before
    # the same spike seen a day later does count
    assert iv_rank_from_dvol(daily(spiked), after_bar(381), bar_ms=DAY_MS).value_pct == 100.0


def test_bar_ms_zero_means_ts_is_the_observation_time() -> None:
    values = [10.0] + [20.0] * 363 + [30.0, 15.0]
    series = daily(values)
    at = series[-1][0]
    r = iv_rank_from_dvol(series, at, bar_ms=0)
    assert isinstance(r, IvRank) and r.now_value == 15.0
    assert iv_rank_from_dvol(series, at - 1, bar_ms=0).now_value == 30.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("values", "now_bar", "reason"),
    [
        ([], 0, "NO_DATA"),
        ([50.0] * 100, 99, "TOO_LITTLE_HISTORY"),
        ([50.0] * 365, 364, "FLAT_HISTORY"),
        ([40.0, 60.0] * 200, 420, "STALE"),  # the last close is 21 days old
        ([math.nan] * 365, 364, "NO_DATA"),
    ],
)
def test_too_little_flat_stale_history_is_a_reason(values: list[float], now_bar: int, reason: str) -> None:
    r = iv_rank_from_dvol(daily(values), after_bar(now_bar), bar_ms=DAY_MS)
    assert isinstance(r, IvRankUnavailable) and r.reason == reason and r.method == "dvol"
    assert r.detail  # says what is missing


def test_nans_infs_and_zeros_are_dropped_not_ranked() -> None:
    values = [60.0] * 365
    values[5], values[6], values[7], values[8], values[100], values[-1] = math.nan, math.inf, 0.0, -3.0, 90.0, 75.0
    r = iv_rank_from_dvol(daily(values), after_bar(364), bar_ms=DAY_MS)
    assert isinstance(r, IvRank) and r.n_obs == 361 and (r.min, r.max) == (60.0, 90.0) and r.value_pct == 50.0
    # a NaN today: the latest finite close is today's value
    values[-1] = math.nan
    r2 = iv_rank_from_dvol(daily(values), after_bar(364), bar_ms=DAY_MS)
    assert isinstance(r2, IvRank) and r2.now_value == 60.0 and r2.as_of_ms == after_bar(363)


@pytest.mark.parametrize(
    "bad", ["abc", [(1, 2, 3)], [[1.0, 2.0], [1.0, 3.0]], [(math.nan, 50.0)], [("x", 1.0)]], ids=repr
)
def test_malformed_series_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match="dvol"):
        iv_rank_from_dvol(bad, T0, bar_ms=DAY_MS)


def _closes_with_vol(daily_vols: np.ndarray, seed: int = 0) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    log_ret = rng.standard_normal(daily_vols.size) * daily_vols / math.sqrt(365)
    return daily(100.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_ret)])))


def test_realized_vol_percentile_is_labelled_and_ranks_today() -> None:
    vols = np.full(420, 0.5)
    vols[-30:] = 1.5  # the last 30 days much wilder than the year: top of the range
    closes = _closes_with_vol(vols)
    now = after_bar(len(closes) - 1)
    r = iv_rank_from_realized_vol(closes, now, bar_ms=DAY_MS)
    assert isinstance(r, IvRank)
    assert r.method == "realized_vol_percentile" and r.vol_window_days == 30 and "realized-vol" in r.label
    assert r.value_pct == 100.0 and r.n_obs == 365 and r.now_value == r.max
    # today's vol, recomputed by hand: annualised std of the last 30 log returns
    px = np.array([c for _, c in closes])
    assert r.now_value == pytest.approx(np.std(np.diff(np.log(px[-31:])), ddof=1) * math.sqrt(365) * 100, rel=1e-12)
    calm = np.full(420, 0.8)
    calm[-30:] = 0.2
    low = iv_rank_from_realized_vol(_closes_with_vol(calm), now, bar_ms=DAY_MS)
    assert isinstance(low, IvRank) and low.value_pct == 0.0


def test_fallback_to_realized_vol_says_why_and_prefers_dvol() -> None:
    closes = _closes_with_vol(np.full(420, 0.6))
    now = after_bar(len(closes) - 1)
    r = iv_rank(now, dvol=None, closes=closes, bar_ms=DAY_MS)
    assert isinstance(r, IvRank) and r.method == "realized_vol_percentile" and "no DVOL" in (r.fallback_reason or "")
    short = daily([50.0] * 30, start_ms=now - 30 * DAY_MS)
    r = iv_rank(now, dvol=short, closes=closes, bar_ms=DAY_MS)
    assert isinstance(r, IvRank) and r.method == "realized_vol_percentile"
    assert (r.fallback_reason or "").startswith("TOO_LITTLE_HISTORY")
    dv = daily(list(np.linspace(40, 80, 421)))
    r = iv_rank(now, dvol=dv, closes=closes, bar_ms=DAY_MS)
    assert isinstance(r, IvRank) and r.method == "dvol" and r.value_pct == 100.0 and r.fallback_reason is None
    none = iv_rank(now, dvol=None, closes=None, bar_ms=DAY_MS)
    assert isinstance(none, IvRankUnavailable) and none.reason == "NO_DATA"


def test_realized_vol_with_too_little_history() -> None:
    closes = _closes_with_vol(np.full(100, 0.6))
    r = iv_rank_from_realized_vol(closes, after_bar(100), bar_ms=DAY_MS)
    assert isinstance(r, IvRankUnavailable) and r.reason == "TOO_LITTLE_HISTORY" and "needed" in r.detail
    flat = daily([100.0] * 420)
    r = iv_rank_from_realized_vol(flat, after_bar(419), bar_ms=DAY_MS)
    assert isinstance(r, IvRankUnavailable) and r.reason == "FLAT_HISTORY"


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(1.0, 300.0), min_size=300, max_size=420),
    later=st.lists(st.floats(0.0, 1e6) | st.just(math.nan), min_size=1, max_size=50),
)
def test_property_rank_in_0_100_and_blind_to_the_future(values: list[float], later: list[float]) -> None:
    now = after_bar(len(values) - 1)
    r = iv_rank_from_dvol(daily(values), now, bar_ms=DAY_MS, min_obs=200)
    assert r == iv_rank_from_dvol(daily(values + later), now, bar_ms=DAY_MS, min_obs=200)
    if isinstance(r, IvRank):
        assert 0.0 <= r.value_pct <= 100.0 and r.min <= r.now_value <= r.max


@pytest.mark.shared_data
def test_real_btc_dvol_ftx_week_ranks_at_the_top(shared_data: Path) -> None:
    with (shared_data / "deribit" / "BTC_DVOL-1d.csv").open() as f:
        rows = list(csv.DictReader(f))
    series = [(int(r["timestamp"]), float(r["close"])) for r in rows]
    ftx = next(ts for ts, _ in series if ts == 1667952000000)  # 2022-11-09, close 114.72
    r = iv_rank_from_dvol(series, ftx + DAY_MS, bar_ms=DAY_MS)
    assert isinstance(r, IvRank) and r.now_value == 114.72
    assert r.value_pct > 90 and r.n_obs >= 330
    # the day before, that close was not known yet
    before = iv_rank_from_dvol(series, ftx + DAY_MS - 1, bar_ms=DAY_MS)
    assert isinstance(before, IvRank) and before.now_value != 114.72
