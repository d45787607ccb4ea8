"""backtest.metrics on hand-computed equity curves (issue 10 items 5 and 6)."""

from __future__ import annotations

import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import metrics
from tests.unit.backtest_fixtures import DAY_MS, HOUR_MS, result, trade

# r = +10%, -10%, +10%: mean 1/30, sample std sqrt(((1/15)^2 * 2 + (2/15)^2) / 2), downside over
# all three bars sqrt(0.01 / 3)
CURVE = [100.0, 110.0, 99.0, 108.9]
MEAN = 0.1 / 3
STD = math.sqrt(((0.1 - MEAN) ** 2 * 2 + (-0.1 - MEAN) ** 2) / 2)
DOWNSIDE = math.sqrt(0.01 / 3)


def test_daily_bars_by_hand() -> None:
    m = metrics.compute(result(CURVE, DAY_MS))
    c = m.curve
    assert c.total_return_pct == pytest.approx(8.9)
    assert c.years == pytest.approx(3 / 365)
    assert c.cagr_pct == pytest.approx((1.089 ** (365 / 3) - 1) * 100)
    assert c.volatility_pct == pytest.approx(STD * math.sqrt(365) * 100)
    assert c.sharpe == pytest.approx(MEAN / STD * math.sqrt(365))
    assert c.sortino == pytest.approx(MEAN / DOWNSIDE * math.sqrt(365))
    assert c.max_drawdown_pct == pytest.approx(10.0)
    # the peak of 110 (point 1) is never regained: under water to the end, 2 bars = 2 days
    assert (c.max_drawdown_bars, c.max_drawdown_days) == (2, pytest.approx(2.0))
    assert c.calmar == pytest.approx(c.cagr_pct / 10.0)
    assert c.reasons == {}


def test_hourly_bars_annualise_with_8760_periods() -> None:
    """The same curve on 1h bars: never the daily sqrt(365)."""
    c = metrics.compute(result(CURVE, HOUR_MS)).curve
    assert metrics.periods_per_year(HOUR_MS) == 8760
    assert c.sharpe == pytest.approx(MEAN / STD * math.sqrt(8760))
    assert c.sortino == pytest.approx(MEAN / DOWNSIDE * math.sqrt(8760))
    assert c.volatility_pct == pytest.approx(STD * math.sqrt(8760) * 100)
    assert c.years == pytest.approx(3 / 8760)
    assert c.cagr_pct == pytest.approx((1.089 ** (8760 / 3) - 1) * 100)
    assert c.max_drawdown_days == pytest.approx(2 / 24)
    assert metrics.periods_per_year(15 * 60_000) == 35040


def test_drawdown_duration_counts_to_the_recovery() -> None:
    # peak 100 at 0, regained at 3 (3 bars); peak 120 at 4, 60 at 5 (-50%), regained at 6 (2 bars)
    c = metrics.compute(result([100, 90, 95, 100, 120, 60, 130], HOUR_MS)).curve
    assert c.max_drawdown_pct == pytest.approx(50.0)
    assert c.max_drawdown_bars == 3 and c.max_drawdown_days == pytest.approx(3 / 24)


def test_flat_curve_gives_none_with_reasons_not_a_division_by_zero() -> None:
    m = metrics.compute(result([100.0] * 5, HOUR_MS))
    c = m.curve
    assert c.total_return_pct == 0 and c.cagr_pct == 0 and c.volatility_pct == 0
    assert c.max_drawdown_pct == 0 and c.max_drawdown_bars == 0
    for name in ("sharpe", "sortino", "calmar"):
        assert getattr(c, name) is None and c.reasons[name]
    json.dumps(m.to_json(), allow_nan=False)


def test_constant_growth_has_no_sharpe_from_rounding_noise() -> None:
    c = metrics.compute(result([100 * 1.01 ** i for i in range(50)], HOUR_MS)).curve
    assert c.sharpe is None and "do not vary" in c.reasons["sharpe"]
    assert c.sortino is None and c.total_return_pct == pytest.approx((1.01 ** 49 - 1) * 100)


def test_one_point_and_empty_curves() -> None:
    c = metrics.compute(result([100.0])).curve
    assert c.total_return_pct == 0 and c.cagr_pct is None and "no time" in c.reasons["cagr_pct"]
    assert c.sharpe is None and c.bars == 0
    empty = metrics.curve_metrics((), DAY_MS)
    assert empty.total_return_pct is None and empty.reasons["sharpe"] == "the equity curve is empty"


def test_a_short_run_whose_cagr_overflows_says_so() -> None:
    c = metrics.compute(result([100.0, 200.0, 200.0], HOUR_MS)).curve  # 2 ** 4380
    assert c.cagr_pct is None and "too short" in c.reasons["cagr_pct"] and c.calmar is None
    assert c.total_return_pct == 100


def test_equity_to_zero() -> None:
    c = metrics.compute(result([100.0, 50.0, 0.0])).curve
    assert c.total_return_pct == -100 and c.cagr_pct == -100 and c.max_drawdown_pct == 100
    stuck = metrics.compute(result([100.0, 0.0, 0.0])).curve
    assert stuck.sharpe is None and "<= 0" in stuck.reasons["sharpe"]


def test_no_trades() -> None:
    t = metrics.compute(result(CURVE)).trades
    assert (t.trades, t.wins, t.losses, t.max_consecutive_losses) == (0, 0, 0, 0)
    assert t.trades_per_year == 0
    for name in ("win_rate_pct", "profit_factor", "expectancy_usd", "avg_win_usd", "avg_loss_usd"):
        assert getattr(t, name) is None and t.reasons[name]


def test_trade_figures_by_hand() -> None:
    pnl = [10, -5, -3, 0, -2, 8]  # the scratch (0) ends the losing streak
    trades = [trade(p, price=100.0, quantity=2.0) for p in pnl]
    t = metrics.compute(result([100.0] * 366, DAY_MS, trades=trades)).trades  # one year
    assert (t.trades, t.wins, t.losses) == (6, 2, 3)
    assert t.win_rate_pct == pytest.approx(100 * 2 / 6)
    assert t.profit_factor == pytest.approx(18 / 10)
    assert t.expectancy_usd == pytest.approx(8 / 6)
    assert t.expectancy_pct == pytest.approx(sum(p / 200 * 100 for p in pnl) / 6)
    assert t.avg_win_usd == pytest.approx(9) and t.avg_loss_usd == pytest.approx(-10 / 3)
    assert t.max_consecutive_losses == 2
    assert t.trades_per_year == pytest.approx(6.0)


def test_only_winners_has_no_profit_factor() -> None:
    t = metrics.compute(result(CURVE, trades=[trade(5), trade(1)])).trades
    assert t.profit_factor is None and "no losing" in t.reasons["profit_factor"]
    assert t.win_rate_pct == 100 and t.max_consecutive_losses == 0


def test_exposure_costs_and_buy_and_hold() -> None:
    r = result(CURVE, exposure=[0, 1, 0.5, 0.5], fees_usd=1.25, slippage_usd=0.5,
               benchmark=[100.0, 120.0, 90.0, 99.0])
    m = metrics.compute(r)
    assert m.exposure_pct == pytest.approx(50.0)
    assert (m.fees_usd, m.slippage_usd) == (1.25, 0.5)
    assert m.benchmark is not None
    assert m.benchmark.total_return_pct == pytest.approx(-1.0)
    assert m.benchmark.max_drawdown_pct == pytest.approx(25.0)
    assert metrics.compute(result(CURVE)).benchmark is None


def test_bar_ms_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bar_ms 0"):
        metrics.periods_per_year(0)


# --- gross vs net ------------------------------------------------------------------------

GROSS = {"fee_pct": 0.0, "slippage_pct": 0.0}


@pytest.mark.parametrize("gross_end,net_end,eaten,share", [
    (1100.0, 990.0, True, 110.0),  # a gross profit turned into a loss
    (1100.0, 1000.0, True, 100.0),  # break-even after costs is no edge either
    (1100.0, 1080.0, False, 20.0),
    (1100.0, 1030.0, True, 70.0),  # more than half the gross profit to costs
    (1100.0, 1050.0, False, 50.0),  # exactly the threshold: not more than it
    (995.0, 980.0, False, None),  # no gross edge to eat
])
def test_compare_costs_flags_an_edge_eaten_by_costs(gross_end: float, net_end: float, eaten: bool,
                                                    share: float | None) -> None:
    net = result([1000.0, net_end], fees_usd=3.0, slippage_usd=1.0)
    gross = result([1000.0, gross_end], costs=GROSS)
    c = metrics.compare_costs(net, gross)
    assert c.edge_eaten is eaten, c.reason
    assert c.cost_share_pct == (pytest.approx(share) if share is not None else None)
    assert c.cost_drag_usd == pytest.approx(gross_end - net_end)
    assert c.gross_return_pct == pytest.approx((gross_end / 1000 - 1) * 100)
    assert (c.fees_usd, c.slippage_usd) == (3.0, 1.0)
    json.dumps(c.to_json(), allow_nan=False)


def test_compare_costs_threshold_is_a_parameter() -> None:
    c = metrics.compare_costs(result([1000.0, 1080.0]), result([1000.0, 1100.0], costs=GROSS), threshold_pct=10)
    assert c.edge_eaten and "more than 10%" in c.reason


def test_compare_costs_refuses_two_different_runs() -> None:
    with pytest.raises(ValueError, match="strategy_id 's1' \\(net\\) vs 'other'"):
        metrics.compare_costs(result([1000.0, 1.0]), result([1000.0, 2.0], costs=GROSS, strategy_id="other"))
    with pytest.raises(ValueError, match="run it again with fee and slippage 0"):
        metrics.compare_costs(result([1000.0, 1.0]), result([1000.0, 2.0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=2, max_size=60),
       st.floats(0.01, 1e6), st.sampled_from([60_000, HOUR_MS, DAY_MS]))
def test_figures_do_not_depend_on_the_account_size(returns: list[float], scale: float, bar_ms: int) -> None:
    """Scaling the whole curve by a constant changes only the dollar figures."""
    values = [1000.0]
    for r in returns:
        values.append(values[-1] * (1 + r))
    a = metrics.compute(result(values, bar_ms)).curve
    b = metrics.compute(result([v * scale for v in values], bar_ms)).curve
    # scaling rounds each value by up to half an ulp, so the total return moves by a few 1e-16;
    # the CAGR annualises that (over two 1-minute bars, by ~260,000): its own tolerance, not a laxer test
    years = len(returns) * bar_ms / metrics.YEAR_MS
    cagr_abs = max(1e-9, 100 * 8 * sys.float_info.epsilon / years)
    for name in ("total_return_pct", "cagr_pct", "volatility_pct", "sharpe", "sortino", "calmar", "max_drawdown_pct"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None) or name in ("sharpe", "sortino"), name  # at the flatness cut-off
        if x is not None and y is not None:
            assert y == pytest.approx(x, rel=1e-6, abs=cagr_abs if name == "cagr_pct" else 1e-9), name
    assert (a.max_drawdown_bars, a.max_drawdown_days) == (b.max_drawdown_bars, b.max_drawdown_days)
    assert 0 <= a.max_drawdown_pct <= 100
