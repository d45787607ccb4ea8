"""Risk-based sizing (REFERENCE section 11) and protective stops: exact numbers.

Risk-based sizing: qty = risk% x sleeve equity / (fill - stop), the notional capped at
``risk_cap_pct`` of the sleeve's equity and then by the account caps; no stop, no entry.
Stops: checked on candles after the entry candle only; fill at the stop when the low
touches it, at the open when the candle opened below it; slippage on top, against the
trader; they run while entries are blocked.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from scheduler.engine import risk
from scheduler.engine.market_rules import MarketRules
from scheduler.engine.models import State
from scheduler.engine.step import Bar, SleeveRules
from tests.risk.helpers import (
    BTC,
    ETH,
    LOOSE,
    T0,
    buy,
    go,
    hold,
    make_state,
    only,
    restart,
    rules_for,
)

MILLI = {s: MarketRules(s, amount_step=0.001, min_amount=0.001, min_notional_usd=5.0) for s in (BTC, ETH)}
FILL = 100.0 * 1.0005  # a buy at a quote of 100 with the default 0.05 % slippage


def _risk_rules(state: State, **kw: object) -> dict[str, SleeveRules]:
    kw.setdefault("sizing_mode", "risk_based")
    kw.setdefault("sizing_value", 1.5)  # % of the sleeve's equity risked per trade
    kw.setdefault("risk_cap_pct", 15.0)
    return rules_for(state.sleeves, **kw)


# ---------------------------------------------------------------------------------------------
# Risk-based sizing


def test_risk_based_quantity_is_risk_over_stop_distance() -> None:
    state = make_state({"a": 10_000.0})
    rules = _risk_rules(state, stop_loss_pct=15.0)
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], market=MILLI)
    fill = only(events, "fill")
    # stop 100.05 * 0.85 = 85.0425; 150 USD risk / 15.0075 USD a unit = 9.99500..., down to 0.001
    assert fill.data["quantity"] == 9.995
    assert "capped_by" not in fill.data
    pos = state.sleeves["a"].positions[BTC]
    assert pos.stop_price == pytest.approx(85.0425, rel=1e-14)
    assert state.sleeves["a"].cash_usd == pytest.approx(10_000.0 - 9.995 * FILL * 1.001, rel=1e-13)
    # a stop-out loses about the 1.5 % risked (plus fees and the exit's slippage)
    assert 9.995 * (FILL - pos.stop_price) == pytest.approx(150.0, abs=0.01)


def test_risk_based_sizing_uses_the_sleeves_marked_equity_not_its_cash() -> None:
    state = make_state({"a": 10_000.0})
    hold(state, "a", ETH, 50.0, 100.0, cash=5_000.0)  # equity 10,000, cash 5,000
    rules = _risk_rules(state, stop_loss_pct=15.0)
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], prices={ETH: 100.0}, market=MILLI)
    assert only(events, "fill").data["quantity"] == 9.995


def test_a_strategys_own_stop_is_used_relative_to_its_quote() -> None:
    state = make_state({"a": 10_000.0})
    rules = _risk_rules(state)  # no stop_loss_pct: the intent brings the stop
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0, stop=85.0)], market=MILLI)
    assert only(events, "fill").data["quantity"] == 9.995
    assert state.sleeves["a"].positions[BTC].stop_price == pytest.approx(85.0425, rel=1e-14)


def test_risk_based_notional_is_capped_at_risk_cap_pct_of_equity() -> None:
    state = make_state({"a": 10_000.0})
    rules = _risk_rules(state, stop_loss_pct=5.0)  # uncapped: 150 / 5.0025 = 29.985 units, 3,000 USD
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], market=MILLI)
    fill = only(events, "fill")
    assert fill.data["quantity"] == 14.992  # 15 % of 10,000 = 1,500 USD / 100.05 = 14.9925...
    assert fill.data["notional_usd"] <= 1_500.0
    assert "capped_by" not in fill.data  # the sizing rule's own cap, not an account cap


def test_risk_based_entry_is_also_capped_by_the_account_position_cap() -> None:
    state = make_state({"a": 10_000.0, "b": 2_000.0})  # account 12,000: 20 % is 2,400 USD
    rules = _risk_rules(state, stop_loss_pct=5.0, risk_cap_pct=50.0)
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], market=MILLI)
    fill = only(events, "fill")
    assert fill.data["capped_by"] == "MAX_POSITION_PCT"
    assert fill.data["quantity"] == 23.988  # 2,400 / 100.05 = 23.988...


@pytest.mark.parametrize("stop", [None, 100.0, 105.0])
def test_risk_based_entry_without_a_stop_below_the_price_is_refused(stop: float | None) -> None:
    state = make_state({"a": 10_000.0})
    rules = _risk_rules(state)
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0, stop=stop)], market=MILLI)
    rejected = only(events, "rejected")
    assert rejected.data["code"] == "NO_STOP"
    assert rejected.data["detail"] == ("risk-based sizing needs a protective stop, and this entry has none "
                                       "(set stop_loss_pct)")
    assert state.sleeves["a"].positions == {} and state.sleeves["a"].cash_usd == 10_000.0


# ---------------------------------------------------------------------------------------------
# Protective stops

HOUR_MS = 3_600_000


def _bar(opens_at: datetime, o: float, h: float, low: float, c: float) -> Bar:
    return Bar(int(opens_at.timestamp() * 1000), o, h, low, c)


ENTRY_CANDLE = T0 - timedelta(hours=1)  # the 1h candle that closed at T0, whose close the entry used
NEXT = T0  # the first candle after it


def _entered(**kw: object) -> tuple[State, dict[str, SleeveRules]]:
    """Sleeve a bought BTC at a quote of 100 (the close of the 11:00 candle) with a 10 % stop
    (account caps off: these tests are about the stop)."""
    state = make_state({"a": 1000.0, "b": 1000.0})
    kw.setdefault("stop_loss_pct", 10.0)
    rules = rules_for(state.sleeves, **kw)
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], market=MILLI, account_rules=LOOSE)
    assert only(events, "fill").data["quantity"] == 9.485  # 950 / (100.05 * 1.001) = 9.4857...
    pos = state.sleeves["a"].positions[BTC]
    assert pos.stop_price == pytest.approx(90.045, rel=1e-14)  # 10 % below the fill, 100.05
    assert pos.stop_checked_to_ms == int(ENTRY_CANDLE.timestamp() * 1000)
    return state, rules


def _stop_step(state: State, rules: dict[str, SleeveRules], bars: list[Bar]) -> list:  # type: ignore[type-arg]
    return go(state, rules, T0 + timedelta(hours=2), bars={(BTC, "1h"): bars}, market=MILLI, account_rules=LOOSE)


def test_the_entry_candle_never_triggers_the_stop() -> None:
    state, rules = _entered()
    assert _stop_step(state, rules, [_bar(ENTRY_CANDLE, 100.0, 101.0, 1.0, 100.0)]) == []
    assert state.sleeves["a"].positions[BTC].quantity == 9.485


def test_a_low_that_touches_the_stop_fills_at_the_stop_less_slippage() -> None:
    state, rules = _entered()
    pos = state.sleeves["a"].positions[BTC]
    stop, cost = pos.stop_price, pos.cost_basis_usd
    assert stop is not None
    events = _stop_step(state, rules, [_bar(ENTRY_CANDLE, 100.0, 101.0, 1.0, 100.0),
                                       _bar(NEXT, 100.0, 101.0, stop, 95.0)])
    fill = only(events, "fill")
    assert (fill.data["side"], fill.data["reason"], fill.data["quote_price"]) == ("sell", "stop", stop)
    assert fill.data["fill_price"] == pytest.approx(stop * 0.9995, rel=1e-15)
    proceeds = 9.485 * stop * 0.9995 * 0.999
    assert fill.data["realized_pnl_usd"] == pytest.approx(proceeds - cost, rel=1e-12)
    a = state.sleeves["a"]
    assert a.positions == {} and a.cash_usd == pytest.approx(1000.0 - cost + proceeds, rel=1e-12)
    assert (a.risk.losses, a.risk.consecutive_losses) == (1, 1)  # a stop-out is a losing close


def test_a_low_just_above_the_stop_does_not_fill() -> None:
    state, rules = _entered()
    stop = state.sleeves["a"].positions[BTC].stop_price
    assert stop is not None
    assert _stop_step(state, rules, [_bar(NEXT, 100.0, 101.0, stop + 0.001, 95.0)]) == []
    pos = state.sleeves["a"].positions[BTC]
    assert pos.quantity == 9.485 and pos.stop_checked_to_ms == int(NEXT.timestamp() * 1000)


def test_a_candle_that_opens_below_the_stop_fills_at_its_open_less_slippage() -> None:
    state, rules = _entered()
    events = _stop_step(state, rules, [_bar(NEXT, 85.0, 86.0, 80.0, 82.0)])
    fill = only(events, "fill")
    assert (fill.data["reason"], fill.data["quote_price"]) == ("stop", 85.0)
    assert fill.data["fill_price"] == pytest.approx(85.0 * 0.9995, rel=1e-15)
    assert state.sleeves["a"].positions == {}


def test_the_first_touching_candle_decides() -> None:
    state, rules = _entered()
    events = _stop_step(state, rules, [_bar(NEXT, 95.0, 96.0, 90.0, 92.0),  # touches 90.045
                                       _bar(NEXT + timedelta(hours=1), 70.0, 71.0, 60.0, 65.0)])
    assert only(events, "fill").data["quote_price"] == pytest.approx(90.045, rel=1e-14)


def test_stops_run_while_entries_are_blocked() -> None:
    state, rules = _entered()
    now = T0 + timedelta(hours=2)
    risk.add_block(state.sleeves["a"].risk.blocks, "CONSECUTIVE_LOSSES", "test", T0, now + timedelta(hours=1))
    risk.add_block(state.account.blocks, "PORTFOLIO_KILL_SWITCH", "test", T0, None)
    events = go(state, rules, now, intents=[buy("b", ETH, 100.0, now)],
                bars={(BTC, "1h"): [_bar(NEXT, 85.0, 86.0, 80.0, 82.0)]}, market=MILLI, account_rules=LOOSE)
    assert [(e.kind, e.strategy_id) for e in events] == [("fill", "a"), ("rejected", "b")]
    assert events[0].data["reason"] == "stop" and events[1].data["code"] == "PORTFOLIO_KILL_SWITCH"
    assert state.sleeves["a"].positions == {}
    assert sorted(state.sleeves["a"].risk.blocks) == ["CONSECUTIVE_LOSSES"]


def test_no_stop_without_a_configured_or_given_stop() -> None:
    state = make_state({"a": 1000.0})
    rules = rules_for(state.sleeves)  # stop_loss_pct None, and the intent gives none
    go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], market=MILLI, account_rules=LOOSE)
    assert state.sleeves["a"].positions[BTC].stop_price is None
    assert _stop_step(state, rules, [_bar(NEXT, 1.0, 1.0, 0.5, 1.0)]) == []
    assert state.sleeves["a"].positions[BTC].quantity == 9.485


def test_a_stop_survives_a_restart(tmp_path: Path) -> None:
    state, rules = _entered()
    state = restart(state, tmp_path)
    pos = state.sleeves["a"].positions[BTC]
    assert pos.stop_price == pytest.approx(90.045, rel=1e-14)
    assert pos.stop_checked_to_ms == int(ENTRY_CANDLE.timestamp() * 1000)
    events = _stop_step(state, rules, [_bar(ENTRY_CANDLE, 100.0, 101.0, 1.0, 100.0),  # still ignored
                                       _bar(NEXT, 85.0, 86.0, 80.0, 82.0)])
    assert only(events, "fill").data["quote_price"] == 85.0
