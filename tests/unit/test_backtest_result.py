"""backtest/result.py: a Curve reads as the pairs it holds, a BacktestResult checks and
round-trips its curves; and the runner's collector pause leaves the collector as it was."""

from __future__ import annotations

import copy
import gc
import json
import pickle

import numpy as np
import pytest

from backtest import runner
from backtest.result import BacktestResult, Curve
from tests.unit.backtest_fixtures import DAY_MS, T0_MS, result

PAIRS = ((T0_MS, 100.0), (T0_MS + DAY_MS, 110.5), (T0_MS + 2 * DAY_MS, 99.25))


def test_a_curve_reads_as_its_pairs() -> None:
    c = Curve.of(PAIRS)
    assert len(c) == 3 and bool(c) and not Curve.of(())
    assert c == PAIRS and c == list(PAIRS) and c == Curve.of(c) and Curve.of(c) is c
    assert tuple(c) == PAIRS and list(reversed(c)) == list(reversed(PAIRS))
    t, v = c[-1]
    assert (t, v) == PAIRS[-1] and type(t) is int and type(v) is float
    assert all(type(t) is int and type(v) is float for t, v in c)
    assert c[1:] == PAIRS[1:] and isinstance(c[1:], Curve)
    assert c != PAIRS[:2] and c != ((T0_MS, 100.0), (T0_MS + DAY_MS, 110.5), (T0_MS + 2 * DAY_MS, 99.0))
    assert c.to_json() == [list(p) for p in PAIRS]


def test_a_curve_is_immutable_and_owns_its_arrays() -> None:
    times, values = np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])
    c = Curve(times, values)
    values[0] = 9.0  # the caller's array: the curve took a copy
    assert c[0] == (1, 1.0)
    with pytest.raises(ValueError):
        c.values[0] = 5.0
    with pytest.raises(AttributeError):
        c.values = values  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(c)
    with pytest.raises(ValueError, match="as many times as values"):
        Curve([1, 2], [1.0])


def test_a_curve_pickles_and_deep_copies() -> None:
    c = Curve.of(PAIRS)
    back = pickle.loads(pickle.dumps(c))
    assert back == c and back.times.dtype == np.int64 and back.values.dtype == np.float64
    assert copy.deepcopy(c) == c


def test_a_result_turns_pairs_into_curves_and_round_trips_json() -> None:
    r = result([1000.0, 1010.0, 990.0], benchmark=[1000.0, 1020.0, 980.0])
    assert isinstance(r.equity, Curve) and isinstance(r.benchmark, Curve)
    assert r.final_equity_usd == 990.0
    back = BacktestResult.from_json(json.loads(r.dumps()))
    assert back == r and isinstance(back.equity, Curve)
    assert json.loads(r.dumps())["equity"] == [[T0_MS + i * DAY_MS, v] for i, v in enumerate((1000.0, 1010.0, 990.0))]
    assert not result([1000.0]).benchmark


@pytest.mark.parametrize(("values", "times", "error"), [
    ([1.0, float("nan")], None, "non-finite"),
    ([1.0, 2.0], [T0_MS, T0_MS], "times must increase"),
    ([1.0, 2.0], [T0_MS + DAY_MS, T0_MS], "times must increase"),
])
def test_a_result_refuses_a_bad_curve(values: list[float], times: list[int] | None, error: str) -> None:
    good = result([1.0] * len(values))
    from dataclasses import replace

    curve = Curve(times if times is not None else good.equity.times, values)
    with pytest.raises(ValueError, match=error):
        replace(good, equity=curve)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_replay_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with runner._gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), runner._gc_paused():
            raise RuntimeError("a failing replay")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
