"""Invariants of the engine under random sequences of signals, prices and clock steps
(hypothesis). Three strategies trade two symbols; the account rules are the defaults.

Each step: the clock moves on (1 minute to 36 hours, so blocks expire and UTC days roll),
both prices move (crashes included, so breakers trip), and every strategy sends one signal
for one symbol at that step's price, which is also the step's mark for the symbol.

"Value" below is cash plus positions marked at the step's prices. ``before`` is the state
as it entered the step with its positions re-marked at the step's prices, i.e. the value
the step's trades start from. Tolerances: 1e-9 relative (floats summed over dozens of fills).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from scheduler.engine.fills import Costs
from scheduler.engine.market_rules import MarketRules
from scheduler.engine.models import State
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import Event, SleeveRules, SpotIntent, account_equity, sleeve_equity
from tests.risk.helpers import BTC, DEFAULT_COSTS, ETH, FREE, T0, go, make_state

SIDS = ("a", "b", "c")
START = {BTC: 30_000.0, ETH: 2_000.0}
REL = 1e-9

Script = list[tuple[int, tuple[float, float], tuple[tuple[int, str], ...]]]

price_moves = st.one_of(st.sampled_from([0.5, 0.7, 0.9, 0.95, 1.0, 1.0, 1.05, 1.5]),
                        st.floats(min_value=0.8, max_value=1.25))
clock_minutes = st.one_of(st.sampled_from([1, 59, 60, 61, 24 * 60]), st.integers(min_value=1, max_value=36 * 60))
orders = st.tuples(*[st.tuples(st.sampled_from([1, 1, -1, 0]), st.sampled_from([BTC, ETH])) for _ in SIDS])
scripts = st.lists(st.tuples(clock_minutes, st.tuples(price_moves, price_moves), orders), min_size=1, max_size=40)
capitals = st.tuples(*[st.floats(min_value=100.0, max_value=20_000.0) for _ in SIDS])
drawdown_limits = st.sampled_from([5.0, 20.0, 60.0])

#: buy everything, crash 50 % (drawdown, daily loss and kill switch all trip), then sell everything
CRASH_THEN_EXIT: Script = [
    (1, (1.0, 1.0), ((1, BTC), (1, ETH), (1, BTC))),
    (60, (0.5, 0.5), ((0, BTC), (0, ETH), (0, BTC))),
    (1, (1.0, 1.0), ((-1, BTC), (-1, ETH), (-1, BTC))),
]


def _marked(state: State, prices: dict[str, float]) -> State:
    copy = state.model_copy(deep=True)
    for sleeve in copy.sleeves.values():
        for pos in sleeve.positions.values():
            pos.mark_price = prices[pos.symbol]
    return copy


def simulate(script: Script, capital: Sequence[float], rules: dict[str, SleeveRules], *,
             account_rules: AccountRules | None = None,
             market: dict[str, MarketRules] | None = None) -> Iterator[tuple[State, State, list[Event], list[SpotIntent]]]:
    """Run ``script``; after each step yield (before, after, events, intents). Cash is checked
    never to go negative after every step, whatever the test."""
    state = make_state(dict(zip(SIDS, capital, strict=True)))
    prices, now = dict(START), T0
    for i, (minutes, (move_btc, move_eth), sigs) in enumerate(script):
        now += timedelta(minutes=minutes)
        prices = {BTC: prices[BTC] * move_btc, ETH: prices[ETH] * move_eth}
        intents = [SpotIntent(sid, sym, sig, prices[sym], now) for sid, (sig, sym) in zip(SIDS, sigs, strict=True)]
        before = _marked(state, prices)
        events = go(state, rules, now, intents=intents, prices=prices, account_rules=account_rules,
                    market=market, cycle=i + 1)
        for sleeve in state.sleeves.values():
            assert sleeve.cash_usd >= 0.0, (sleeve.id, sleeve.cash_usd)
            assert all(p.quantity > 0 for p in sleeve.positions.values())
        yield before, state, events, intents


def _fills(events: list[Event], sid: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == "fill" and e.strategy_id == sid]


def _value(state: State, sid: str) -> float:
    value = sleeve_equity(state.sleeves[sid])
    assert value is not None  # every position has a price at every step here
    return value


def _check_cost_accounting(script: Script, capital: Sequence[float], costs: Costs, max_dd: float) -> int:
    """Per sleeve and step: value lost to trading == fees + qty * quote * slippage of its fills.
    Returns the number of fills seen."""
    rules = {sid: SleeveRules(costs=costs, max_drawdown_pct=max_dd) for sid in SIDS}
    seen = 0
    for before, after, events, _ in simulate(script, capital, rules):
        for sid in SIDS:
            fills = _fills(events, sid)
            seen += len(fills)
            for f in fills:
                assert f["fill_price"] == pytest.approx(
                    f["quote_price"] * (1 + costs.slippage_rate if f["side"] == "buy" else 1 - costs.slippage_rate),
                    rel=1e-15)
                assert f["fee_usd"] == pytest.approx(f["notional_usd"] * costs.fee_rate, rel=1e-15, abs=0.0)
            expected_loss = sum(f["fee_usd"] + f["quantity"] * f["quote_price"] * costs.slippage_rate for f in fills)
            lost = _value(before, sid) - _value(after, sid)
            assert lost == pytest.approx(expected_loss, rel=REL, abs=REL * _value(before, sid))
        total_before = account_equity(before, list(SIDS))
        total_after = account_equity(after, list(SIDS))
        assert total_before is not None and total_after is not None
        all_costs = sum(f["fee_usd"] + f["quantity"] * f["quote_price"] * costs.slippage_rate
                        for sid in SIDS for f in _fills(events, sid))
        assert total_before - total_after == pytest.approx(all_costs, rel=REL, abs=REL * total_before)
    return seen


@settings(max_examples=150, deadline=None)
@given(script=scripts, capital=capitals, max_dd=drawdown_limits)
@example(script=CRASH_THEN_EXIT, capital=(1000.0, 1000.0, 1000.0), max_dd=5.0)
def test_zero_costs_conserve_cash_plus_positions_through_every_trade(script: Script, capital: tuple[float, ...],
                                                                     max_dd: float) -> None:
    _check_cost_accounting(script, capital, FREE, max_dd)


@settings(max_examples=150, deadline=None)
@given(script=scripts, capital=capitals, max_dd=drawdown_limits,
       fee_rate=st.floats(min_value=1e-5, max_value=0.01))
def test_with_fees_only_the_value_lost_is_exactly_the_fees(script: Script, capital: tuple[float, ...],
                                                           max_dd: float, fee_rate: float) -> None:
    _check_cost_accounting(script, capital, Costs(fee_rate=fee_rate, slippage_rate=0.0), max_dd)


@settings(max_examples=150, deadline=None)
@given(script=scripts, capital=capitals, max_dd=drawdown_limits,
       slippage_rate=st.floats(min_value=1e-5, max_value=0.01))
def test_with_slippage_only_each_fill_loses_qty_times_quote_times_slippage(
        script: Script, capital: tuple[float, ...], max_dd: float, slippage_rate: float) -> None:
    _check_cost_accounting(script, capital, Costs(fee_rate=0.0, slippage_rate=slippage_rate), max_dd)


def test_the_cost_accounting_check_sees_trades() -> None:
    """Guard against a vacuous property: the crash script makes 6 fills with costs that matter."""
    assert _check_cost_accounting(CRASH_THEN_EXIT, (1000.0, 1000.0, 1000.0), DEFAULT_COSTS, 5.0) == 6


sizings = st.one_of(
    st.builds(lambda v: {"sizing_mode": "fixed_fraction", "sizing_value": v}, st.floats(0.01, 1.0)),
    st.builds(lambda v: {"sizing_mode": "fixed_usd", "sizing_value": v}, st.floats(1.0, 50_000.0)),
    st.builds(lambda v, s, c: {"sizing_mode": "risk_based", "sizing_value": v, "stop_loss_pct": s,
                               "risk_cap_pct": c},
              st.floats(0.1, 10.0), st.floats(0.5, 50.0), st.floats(1.0, 100.0)),
)


@settings(max_examples=150, deadline=None)
@given(script=scripts, capital=capitals, sizing=sizings, step_size=st.sampled_from([1e-8, 1e-4, 0.01, 1.0]))
def test_cash_never_goes_negative(script: Script, capital: tuple[float, ...], sizing: dict[str, Any],
                                  step_size: float) -> None:
    rules = {sid: SleeveRules(costs=DEFAULT_COSTS, max_drawdown_pct=20.0, **sizing) for sid in SIDS}
    market = {s: MarketRules(s, amount_step=step_size, min_amount=step_size, min_notional_usd=5.0) for s in START}
    for _ in simulate(script, capital, rules, market=market):
        pass  # simulate() checks cash >= 0 after every step


@settings(max_examples=200, deadline=None)
@given(script=scripts, capital=capitals)
def test_no_cap_is_exceeded_after_any_accepted_entry(script: Script, capital: tuple[float, ...]) -> None:
    """After each buy fill, with E = account equity and X = exposure (positions at their marks)
    measured just before that fill, as risk.entry_cap_usd sees them:
    notional <= 20 % of E, notional <= 5,000 USD, X + notional <= 80 % of E.

    E and X before each fill are rebuilt from the end of the step, undoing the step's buys
    last to first (nothing after the buys moves value: no stops, no forced closes)."""
    limits = AccountRules()
    rules = {sid: SleeveRules(costs=DEFAULT_COSTS, max_drawdown_pct=20.0) for sid in SIDS}
    for _, after, events, _ in simulate(script, capital, rules, account_rules=limits):
        equity = account_equity(after, list(SIDS))
        assert equity is not None
        exposure = sum(p.quantity * (p.mark_price or 0.0) for s in after.sleeves.values() for p in s.positions.values())
        buys = [e.data for e in events if e.kind == "fill" and e.data["side"] == "buy"]
        for f in reversed(buys):
            equity += f["fee_usd"] + f["quantity"] * (f["fill_price"] - f["quote_price"])  # this fill's costs
            exposure -= f["quantity"] * f["quote_price"]  # the position it opened, marked at its quote
            tol = REL * equity
            assert f["notional_usd"] <= equity * limits.max_position_pct / 100 + tol
            assert f["notional_usd"] <= limits.max_position_usd + tol
            assert exposure + f["notional_usd"] <= equity * limits.max_exposure_pct / 100 + tol
            if "capped_by" in f:
                event(f"capped by {f['capped_by']}")


@settings(max_examples=200, deadline=None)
@given(script=scripts, capital=capitals)
@example(script=CRASH_THEN_EXIT, capital=(1000.0, 1000.0, 1000.0))
def test_exits_are_never_blocked(script: Script, capital: tuple[float, ...]) -> None:
    """A sell for a held position at a valid, fresh price always fills, whatever is blocked.
    Tight breakers (5 % drawdown, 2 losses in a row) and crash moves put sleeves into blocks."""
    rules = {sid: SleeveRules(costs=DEFAULT_COSTS, max_drawdown_pct=5.0, consecutive_losses=2) for sid in SIDS}
    for before, after, events, intents in simulate(script, capital, rules):
        for it in intents:
            if it.signal < 0 and it.symbol in before.sleeves[it.strategy_id].positions:
                sells = [f for f in _fills(events, it.strategy_id) if f["side"] == "sell"]
                assert [(f["symbol"], f["quantity"], f["reason"]) for f in sells] == [
                    (it.symbol, before.sleeves[it.strategy_id].positions[it.symbol].quantity, "signal")]
                assert it.symbol not in after.sleeves[it.strategy_id].positions
                blocked = {**before.account.blocks, **before.sleeves[it.strategy_id].risk.blocks}
                for code in blocked:
                    event(f"exit while {code}")


def test_the_crash_script_exits_under_every_kind_of_block() -> None:
    """The @example above really is an exit under blocks (so the property is not vacuous there)."""
    rules = {sid: SleeveRules(costs=DEFAULT_COSTS, max_drawdown_pct=5.0, consecutive_losses=2) for sid in SIDS}
    steps = list(simulate(CRASH_THEN_EXIT, (1000.0, 1000.0, 1000.0), rules))
    before, after, events, _ = steps[-1]
    assert sorted(before.account.blocks) == ["DAILY_LOSS", "PORTFOLIO_KILL_SWITCH"]
    assert all(sorted(s.risk.blocks) == ["MAX_DRAWDOWN"] for s in before.sleeves.values())
    assert [(e.strategy_id, e.data["side"]) for e in events if e.kind == "fill"] == [
        ("a", "sell"), ("b", "sell"), ("c", "sell")]
    assert all(s.positions == {} for s in after.sleeves.values())
