"""edge70's direction state machine: change, repeated highs, both-fire, first observation, replay seeding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as S
from strategies import edge70
from tests.strategies._data import make

SMALL = {"long_lookback": 3, "short_lookback": 2, "seed_bars": 6, "stop_pct": 15.0}  # min_bars 9


def test_replay_state_machine():
    assert edge70.replay([1, 0, -1, 1]) == ([0, 0, -1, 1], [1, 1, -1, 1])  # first event sets only
    assert edge70.replay([1, 1, 1]) == ([0, 0, 0], [1, 1, 1])  # repeated highs do nothing
    assert edge70.replay([0, -1, -1, 1]) == ([0, 0, 0, 1], [None, -1, -1, 1])
    assert edge70.replay([-1], start_direction=1) == ([-1], [-1])


def _bars(high, low):
    close = [(h + lo) / 2 for h, lo in zip(high, low, strict=True)]
    return make(close, high=high, low=low, timeframe="1d")


def test_direction_change_repeated_highs_and_both_fire():
    # bars 0-2 history; events from bar 3 (lookback 3)
    high = [10, 10, 10, 11, 12, 11, 11, 11, 11, 11, 13, 12, 14]
    low = [9, 9, 9, 9.5, 10, 8, 9, 9, 9, 9, 9, 9, 7]
    e, _ = edge70.events(np.array(high, float), np.array(low, float), SMALL)
    # 3: new high (long, first event); 4: higher high again (repeated); 5: new 2-bar low (short);
    # 10: new 3-bar high (long); 12: new high AND new low -> both fire, no event
    assert e.tolist() == [0, 0, 0, 1, 1, -1, 0, 0, 0, 0, 1, 0, 0]
    ss = S.signal_series("edge70", _bars(high, low), SMALL)
    # bars before min_bars - 1 = 8 are warm-up; at 10 the replay window is bars 5..10:
    # short at 5 (first observation in the window), long at 10 -> a change -> buy
    assert ss.signal.tolist() == [0] * 10 + [1, 0, 0]
    assert ss.indicators["direction"][12] == 1.0  # both fired at 12: direction unchanged
    assert ss.indicators["stop_price"][10] == pytest.approx(_bars(high, low).close[10] * 0.85)


def test_first_observation_in_the_replay_does_not_trade():
    # only one event (long at bar 9) in the whole replay: it sets the direction, no trade
    high = [10.0] * 9 + [12, 11, 11]
    low = [9.0] * 12
    ss = S.signal_series("edge70", _bars(high, low), SMALL)
    assert (ss.signal == 0).all()
    ev = S.evaluate("edge70", _bars(high, low).head(10), SMALL)
    assert ev.signal == 0 and ev.indicators["direction"] == "long" and ev.indicators["previous_direction"] is None


def test_replay_seeding_window():
    """An opposite event older than seed_bars is forgotten: the live checker could not see it."""
    high = [10.0] * 3 + [9.0] * 12 + [11.0]  # long fires at 15
    low = [9.0] * 3 + [8.0] + [8.5] * 12  # short fires at 3 only
    c = _bars(high, low)
    assert S.signal_series("edge70", c, {**SMALL, "seed_bars": 13}).signal[15] == 1  # window 3..15
    assert S.signal_series("edge70", c, {**SMALL, "seed_bars": 12}).signal[15] == 0  # window 4..15
    ev = S.evaluate("edge70", c, {**SMALL, "seed_bars": 13})
    assert ev.signal == 1 and ev.indicators["bars_used"] == 16 and ev.indicators["previous_direction"] == "short"


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 0, 1]), min_size=1, max_size=80), st.integers(1, 30))
def test_vectorised_signal_equals_replaying_each_window(ev, seed):
    """compute()'s signal at t is replay() over the seed_bars events ending at t."""
    size = len(ev)
    e = np.array(ev, dtype=np.int8)
    # build highs/lows that produce exactly these events with lookbacks 1/1 (an event needs a prior bar)
    e[0] = 0
    high = np.full(size, 100.0)
    low = np.full(size, 90.0)
    level_h, level_l = 100.0, 90.0
    for t in range(1, size):
        high[t], low[t] = high[t - 1], low[t - 1]
        if e[t] == 1:
            high[t] = high[t - 1] + 1
        elif e[t] == -1:
            low[t] = low[t - 1] - 1
    del level_h, level_l
    p = {"long_lookback": 1, "short_lookback": 1, "seed_bars": seed, "stop_pct": 15.0}
    got, _ = edge70.events(high, low, p)
    assert got.tolist() == e.tolist()
    signal, _ = edge70.compute({"high": high, "low": low, "close": (high + low) / 2}, p)
    for t in range(size):
        if t + 1 < seed + 1:
            assert signal[t] == 0
            continue
        want = edge70.replay(e[t - seed + 1 : t + 1].tolist())[0][-1]
        assert signal[t] == want, t
