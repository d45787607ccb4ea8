"""backtest/skip.py: clearing whole UTC days at once finds exactly what the tick-by-tick scan
finds: the same first tick that trips and the same running values before it.

test_backtest_skip_property.py checks whole replays against the plain run; here the scan
itself is driven over many spans with the limits put exactly on the prices' own values (a
stop equal to a bar's low, a drawdown limit equal to a tick's drawdown, a day-start or a
peak that the equity comes back to), where a bound that is off by one ulp would show.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from backtest.skip import DAY_MS, Planner, Ticks, _Carry
from scheduler.engine.fills import Costs
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import SleeveRules

HOUR = 3_600_000
T0 = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS  # a midnight UTC


def _planner(rng: np.random.Generator, n: int, bar_ms: int, max_dd: float, daily: float, kill: float) -> Planner:
    ticks = T0 + bar_ms * np.arange(1, n + 1, dtype=np.int64)
    steps = rng.choice([-1.0, 0.0, 1.0], size=n) * rng.choice([0.0, 0.5, 2.0, 7.0], size=n)
    marks = np.maximum(100.0 + np.cumsum(steps), 1.0)  # repeated values: equalities happen
    new_bar = rng.random(n) < 0.9
    lows = np.where(new_bar, marks - rng.choice([0.0, 0.5, 3.0], size=n), np.inf)
    t = Ticks(ticks, marks, ticks, new_bar, ticks - bar_ms, lows, np.zeros(n, bool), np.zeros(n, bool))
    rules = SleeveRules(costs=Costs(0.001, 0.0005), max_drawdown_pct=max_dd, timeframe="1h")
    account = AccountRules(daily_loss_pct=daily, portfolio_kill_pct=kill)
    return Planner(t, rules, account, SimpleNamespace(symbols=["BTC/USDT"]))  # type: ignore[arg-type]


def _both(p: Planner, k: int, c: int, cash: float, qty: float, stop: float | None,
          carry: _Carry) -> tuple[tuple[int, _Carry], tuple[int, _Carry]]:
    fast_carry, exact_carry = copy.copy(carry), copy.copy(carry)
    p.by_days = True
    fast = p._scan(k, c, cash, qty, stop, fast_carry)
    p.by_days = False
    exact = p._scan(k, c, cash, qty, stop, exact_carry)
    return (fast, fast_carry), (exact, exact_carry)


@pytest.mark.parametrize("bar_ms", [HOUR, 15 * 60_000, 4 * HOUR, 6 * HOUR])
@pytest.mark.parametrize("seed", range(6))
def test_clearing_days_equals_the_tick_by_tick_scan(bar_ms: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1500
    for case in range(150):
        max_dd, daily, kill = (float(rng.choice([0.5, 2.0, 5.0, 60.0])), float(rng.choice([0.5, 2.0, 5.0, 100.0])),
                               float(rng.choice([1.0, 5.0, 25.0, 100.0])))
        p = _planner(rng, n, bar_ms, max_dd, daily, kill)
        k = int(rng.integers(0, n - 2))
        c = int(rng.integers(k + 1, min(n, k + 400) + 1))
        qty = float(rng.choice([0.01, 1.0, 9.5]))
        cash = float(rng.choice([0.0, 3.0, 500.0]))
        marks = p.marks_list
        e_k = cash + qty * marks[k]
        peak = e_k * float(rng.choice([1.0, 1.0, 1.01, 1.2]))
        stop = float(rng.choice([p.bar_min_list[min(c - 1, k + 1 + int(rng.integers(0, c - k)))],
                                 marks[k] * 0.9, 0.5])) if rng.random() < 0.7 else None
        if stop is not None and not np.isfinite(stop):
            stop = marks[k] * 0.95
        if rng.random() < 0.4:  # the drawdown limit at a tick's own drawdown from the peak, or one ulp below it
            i = int(rng.integers(k + 1, c)) if c > k + 1 else k
            e_i = cash + qty * marks[i]
            ratio = (peak - e_i) / peak * 100.0
            if 0 < ratio <= 100:
                p.max_dd = ratio if rng.random() < 0.5 else float(np.nextafter(ratio, 0.0))
        peak_a = peak * float(rng.choice([1.0, 1.1]))
        if rng.random() < 0.3:  # the kill switch exactly at the span's lowest equity (x 0.5 and x 2 are exact)
            p.kill_f = 0.5
            peak_a = max(peak_a, 2 * (cash + qty * min(marks[k + 1:c] or [marks[k]])))
        start = None if rng.random() < 0.2 else float(rng.choice([e_k, peak, e_k * 1.03]))
        carry = _Carry(peak, peak_a, int(p.days_list[k]), start)
        (fast, fast_carry), (exact, exact_carry) = _both(p, k, c, cash, qty, stop, carry)
        assert (fast, fast_carry) == (exact, exact_carry), f"seed {seed} case {case}: k {k} c {c}"


def test_a_day_near_the_drawdown_limit_is_left_to_the_exact_scan() -> None:
    """The limit at exactly the drawdown of the day's lowest tick: not tripped (the engine's
    ``>``), and the day-level bound, equal to it, must not claim otherwise either way."""
    rng = np.random.default_rng(7)
    p = _planner(rng, 96, HOUR, 60.0, 100.0, 100.0)
    cash, qty = 0.0, 1.0
    peak = max(p.marks_list[:48])
    low = min(p.marks_list[1:48])
    p.max_dd = (peak - low) / peak * 100.0
    carry = _Carry(peak, peak, int(p.days_list[0]), None)
    (fast, fast_carry), (exact, exact_carry) = _both(p, 0, 48, cash, qty, None, carry)
    assert fast == exact and fast_carry == exact_carry
