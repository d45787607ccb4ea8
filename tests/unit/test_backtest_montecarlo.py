"""backtest.montecarlo: known small cases, degenerate cases, determinism (issue 10 item 7)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import montecarlo as mc
from tests.unit.backtest_fixtures import DAY_MS, T0_MS, result, trade


def test_permutation_never_changes_the_final_equity() -> None:
    r = [0.1, -0.2, 0.05, 0.3, -0.07]
    s = mc.permute_trades(r, 1000.0, paths=500, seed=1)
    final = 1000 * math.prod(1 + x for x in r)
    assert s.actual_final_equity_usd == pytest.approx(final)
    assert all(v == pytest.approx(final) for v in s.final_equity_usd.values())


def test_permutation_drawdowns_of_a_known_case() -> None:
    """+50%, -20%, -20%: the gain first or last gives 36% drawdown (1500 -> 960 or 1000 -> 640),
    the gain in the middle 20%; two orders in three give 36%."""
    s = mc.permute_trades([0.5, -0.2, -0.2], 1000.0, paths=2000, seed=3)
    assert s.max_drawdown_pct == {"p5": pytest.approx(20.0), "p50": pytest.approx(36.0), "p95": pytest.approx(36.0)}
    assert s.actual_max_drawdown_pct == pytest.approx(36.0)


def test_degenerate_cases() -> None:
    none = mc.permute_trades([], 1000.0, paths=10)
    assert none.final_equity_usd == {"p5": 1000.0, "p50": 1000.0, "p95": 1000.0}
    assert none.max_drawdown_pct == {"p5": 0.0, "p50": 0.0, "p95": 0.0}
    same = mc.permute_trades([-0.1] * 4, 1000.0, paths=50)
    assert same.max_drawdown_pct["p5"] == pytest.approx((1 - 0.9 ** 4) * 100)
    flat = mc.bootstrap_returns([0.01] * 30, 100.0, paths=40, block_bars=4)
    assert flat.final_equity_usd["p5"] == pytest.approx(100 * 1.01 ** 30) == flat.final_equity_usd["p95"]
    assert flat.max_drawdown_pct["p95"] == 0
    empty = mc.bootstrap_returns([], 100.0, paths=5)
    assert empty.final_equity_usd["p50"] == 100.0


def test_one_block_as_long_as_the_run_is_a_rotation() -> None:
    """With block_bars = n a circular path is the series rotated: the same product."""
    r = np.random.default_rng(0).normal(0, 0.02, 50)
    s = mc.bootstrap_returns(r, 1000.0, paths=100, block_bars=50, seed=9)
    final = 1000 * float(np.prod(1 + r))
    assert all(v == pytest.approx(final) for v in s.final_equity_usd.values())
    assert s.block_bars == 50


def test_seeded_and_deterministic_and_independent_of_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    r = list(np.random.default_rng(5).normal(0.0005, 0.01, 400))
    a = mc.bootstrap_returns(r, 1000.0, paths=300, block_bars=7, seed=42)
    assert a == mc.bootstrap_returns(r, 1000.0, paths=300, block_bars=7, seed=42)
    assert a != mc.bootstrap_returns(r, 1000.0, paths=300, block_bars=7, seed=43)
    monkeypatch.setattr(mc, "_CHUNK_VALUES", 1000)  # 2 paths a chunk
    assert a == mc.bootstrap_returns(r, 1000.0, paths=300, block_bars=7, seed=42)
    p = mc.permute_trades(r[:20], 1000.0, paths=200, seed=7)
    assert p == mc.permute_trades(r[:20], 1000.0, paths=200, seed=7)
    monkeypatch.undo()
    assert p == mc.permute_trades(r[:20], 1000.0, paths=200, seed=7)  # one chunk: the same figures
    assert a.final_equity_usd["p5"] <= a.final_equity_usd["p50"] <= a.final_equity_usd["p95"]
    json.dumps(a.to_json(), allow_nan=False)


def test_default_block_is_sqrt_n() -> None:
    assert mc.bootstrap_returns([0.0] * 100, 1.0, paths=2).block_bars == 10
    assert mc.bootstrap_returns([0.0] * 2, 1.0, paths=2).block_bars == 1


def test_on_a_result_trade_returns_compound_to_the_final_equity() -> None:
    equity = [1000.0, 1000.0, 1100.0, 1100.0, 990.0]
    trades = [trade(100.0, T0_MS + DAY_MS, T0_MS + 2 * DAY_MS), trade(-110.0, T0_MS + 3 * DAY_MS, T0_MS + 4 * DAY_MS)]
    run = result(equity, trades=trades)
    assert list(mc.trade_returns(run)) == pytest.approx([0.1, -0.1])
    s = mc.trade_permutation(run, paths=50, seed=0)
    assert s.actual_final_equity_usd == pytest.approx(990.0) == s.final_equity_usd["p50"]
    b = mc.block_bootstrap(run, paths=50, seed=0)
    assert b.actual_final_equity_usd == pytest.approx(990.0) and b.actual_max_drawdown_pct == pytest.approx(10.0)
    assert b.block_bars == 2  # round(sqrt(4))


@pytest.mark.parametrize("kwargs,match", [
    ({"paths": 0}, "paths 0"), ({"paths": 2.5}, "paths 2.5"), ({"block_bars": 0}, "block_bars 0"),
])
def test_bad_arguments_say_what_was_expected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mc.bootstrap_returns([0.01, 0.02], 100.0, **kwargs)


def test_returns_below_minus_100_pct_are_refused() -> None:
    with pytest.raises(ValueError, match="below -100%"):
        mc.permute_trades([-1.5], 100.0)
    with pytest.raises(ValueError, match="initial capital 0"):
        mc.permute_trades([0.1], 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.9, 2.0, allow_nan=False), max_size=40), st.integers(0, 2**32 - 1))
def test_permutation_keeps_the_product_and_percentiles_are_ordered(returns: list[float], seed: int) -> None:
    s = mc.permute_trades(returns, 100.0, paths=30, seed=seed)
    final = 100.0 * math.prod(1 + r for r in returns)
    assert s.final_equity_usd["p5"] == pytest.approx(final, rel=1e-9, abs=1e-12)
    assert s.final_equity_usd["p95"] == pytest.approx(final, rel=1e-9, abs=1e-12)
    dd = s.max_drawdown_pct
    assert 0 <= dd["p5"] <= dd["p50"] <= dd["p95"] <= 100


def test_a_trade_return_is_taken_on_the_equity_before_its_entry_costs() -> None:
    """The point at entry_ms already holds the entry's fee (999 after a 1 USD fee): the base is
    the 1000 just before it."""
    run = result([1000.0, 999.0, 1099.0], trades=[trade(99.0, T0_MS + DAY_MS, T0_MS + 2 * DAY_MS)],
                 exposure=[0.0, 1.0, 0.0])
    assert list(mc.trade_returns(run)) == pytest.approx([0.099])


def test_a_position_open_at_the_end_is_a_last_trade_and_the_actual_figures_are_the_runs() -> None:
    """One round trip (+100), then a position opened at day 4 (after a 2 USD fee) and marked at
    1200 at the end: its marked P&L (+100 on the 1100 before it) is the last trade, so every
    permutation ends at the run's 1200, and the actual drawdown is the run's own (1100 -> 1098)."""
    equity = [1000.0, 999.0, 1100.0, 1100.0, 1098.0, 1200.0]
    run = result(equity, trades=[trade(100.0, T0_MS + DAY_MS, T0_MS + 2 * DAY_MS)],
                 exposure=[0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    assert list(mc.trade_returns(run)) == pytest.approx([0.1, 100.0 / 1100.0])
    s = mc.trade_permutation(run, paths=50, seed=0)
    assert s.actual_final_equity_usd == 1200.0
    assert s.final_equity_usd["p5"] == pytest.approx(1200.0) == s.final_equity_usd["p95"]
    assert s.actual_max_drawdown_pct == pytest.approx(2.0 / 1100.0 * 100.0)
    b = mc.block_bootstrap(run, paths=50, seed=0)
    assert b.actual_final_equity_usd == 1200.0 and b.actual_max_drawdown_pct == s.actual_max_drawdown_pct


def test_a_flat_run_has_a_drawdown_of_plus_zero() -> None:
    s = mc.trade_permutation(result([1000.0, 1000.0, 1000.0]), paths=5)
    for v in (s.actual_max_drawdown_pct, *s.max_drawdown_pct.values()):
        assert v == 0.0 and math.copysign(1.0, v) == 1.0
