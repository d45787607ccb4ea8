"""Unpriced and zero-priced positions (REFERENCE sections 5, 6, 12.3): a missing price is "no
price", never 0. No fake drawdown, no breaker, nothing sold at 0, and no entry while the
account's value is unknown."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from scheduler.engine.models import State
from scheduler.engine.step import account_equity, sleeve_equity
from tests.risk.helpers import (
    BTC,
    ETH,
    SOL,
    T0,
    buy,
    go,
    hold,
    make_state,
    of_kind,
    only,
    rules_for,
    sell,
)

BAD_PRICES = [None, 0.0, -1.0, math.nan, math.inf]


def _one_unpriced() -> State:
    """Sleeve a: 500 cash + 10 SOL that have never had a price. Sleeve b: 1000 cash."""
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", SOL, 10.0, None, cash=500.0)
    return state


@pytest.mark.parametrize("bad", BAD_PRICES)
def test_unpriced_position_fakes_no_drawdown_and_fires_no_breaker(bad: float | None) -> None:
    state = _one_unpriced()
    rules = rules_for(state.sleeves, max_drawdown_pct=1.0)  # any fake loss would trip it
    for minutes in (0, 1, 2):  # several steps, so a day start and a peak would have been set
        events = go(state, rules, T0 + timedelta(minutes=minutes), prices={SOL: bad})
        assert events == []
    a = state.sleeves["a"]
    assert sleeve_equity(a) is None and account_equity(state, ["a", "b"]) is None
    assert a.risk.drawdown_pct is None
    assert a.risk.peak_equity_usd == 1000.0 and a.risk.blocks == {}
    assert state.sleeves["b"].risk.drawdown_pct == 0.0
    acct = state.account
    assert (acct.peak_equity_usd, acct.day_start_equity_usd, acct.blocks) == (None, None, {})
    assert a.positions[SOL].quantity == 10.0 and a.positions[SOL].mark_price is None


@pytest.mark.parametrize("bad", BAD_PRICES)
def test_no_sell_at_a_missing_or_zero_price(bad: float | None) -> None:
    state = _one_unpriced()
    rules = rules_for(state.sleeves)
    events = go(state, rules, T0, intents=[sell("a", SOL, bad, T0)])
    assert [e.kind for e in events] == ["rejected"]
    assert events[0].data["code"] == "NO_PRICE"
    assert events[0].data["detail"] == f"no usable price (got {bad!r})"
    a = state.sleeves["a"]
    assert a.positions[SOL].quantity == 10.0 and a.cash_usd == 500.0 and a.trades == []
    assert state.next_trade_seq == 1


@pytest.mark.parametrize("bad", BAD_PRICES)
def test_a_priced_position_keeps_its_last_mark_when_the_feed_fails(bad: float | None) -> None:
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", BTC, 1.0, 500.0, cash=500.0)
    rules = rules_for(state.sleeves, max_drawdown_pct=1.0)
    go(state, rules, T0, prices={BTC: 500.0})
    t = T0 + timedelta(minutes=5)
    events = go(state, rules, t, intents=[sell("a", BTC, bad, t)], prices={BTC: bad})
    assert [(e.kind, e.data["code"]) for e in events] == [("rejected", "NO_PRICE")]
    a = state.sleeves["a"]
    assert (a.positions[BTC].mark_price, a.positions[BTC].mark_at) == (500.0, T0)
    assert a.risk.drawdown_pct == 0.0 and a.risk.blocks == {} and state.account.blocks == {}
    assert state.account.peak_equity_usd == 2000.0


def test_entries_refused_while_any_configured_sleeve_is_unpriced() -> None:
    state = _one_unpriced()
    rules = rules_for(state.sleeves)
    events = go(state, rules, T0, intents=[buy("a", ETH, 100.0, T0), buy("b", ETH, 100.0, T0)])
    assert [(e.kind, e.strategy_id, e.data["code"]) for e in events] == [
        ("rejected", "a", "ACCOUNT_VALUE_UNKNOWN"), ("rejected", "b", "ACCOUNT_VALUE_UNKNOWN")]
    assert events[1].data["detail"] == "a position somewhere has no price, so the account caps cannot be checked"
    assert state.sleeves["b"].cash_usd == 1000.0 and state.sleeves["b"].positions == {}

    # Once SOL has a price, the account has a value and entries go through.
    t = T0 + timedelta(minutes=1)
    events = go(state, rules, t, intents=[buy("b", ETH, 100.0, t)], prices={SOL: 50.0})
    assert [e.kind for e in events] == ["fill"]
    assert state.account.day_start_equity_usd == 2000.0  # captured at the first priced step


def test_an_exit_at_a_valid_price_clears_the_unknown() -> None:
    state = _one_unpriced()
    rules = rules_for(state.sleeves)
    events = go(state, rules, T0, intents=[sell("a", SOL, 40.0, T0), buy("b", ETH, 100.0, T0)])
    assert [(e.kind, e.strategy_id, e.data["side"]) for e in events] == [("fill", "a", "sell"), ("fill", "b", "buy")]
    assert state.sleeves["a"].cash_usd == pytest.approx(500.0 + 400.0 * 0.9995 * 0.999, rel=1e-12)


def test_an_unconfigured_sleeves_unpriced_position_does_not_block() -> None:
    state = _one_unpriced()
    rules = rules_for(["b"])  # "a" is in state.json but no longer configured
    events = go(state, rules, T0, intents=[buy("b", ETH, 100.0, T0)])
    assert [e.kind for e in events] == ["fill"]
    assert state.account.peak_equity_usd == 1000.0  # the account is the configured sleeves


def test_a_zero_mark_in_the_state_file_fakes_no_drawdown() -> None:
    # The engine never writes a 0 mark itself, but state.json accepts one (Position.mark_price has
    # no lower bound), e.g. from a hand-edited or foreign file. A 0 is "no price" (REFERENCE 5).
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", BTC, 1.0, 500.0, cash=500.0)
    state.sleeves["a"].positions[BTC].mark_price = 0.0
    rules = rules_for(state.sleeves, max_drawdown_pct=25.0)
    events = go(state, rules, T0)
    assert of_kind(events, "block") == []
    assert state.sleeves["a"].risk.drawdown_pct is None
    assert state.account.blocks == {}
    assert only(go(state, rules, T0, intents=[buy("b", ETH, 100.0, T0)]), "rejected").data["code"] == \
        "ACCOUNT_VALUE_UNKNOWN"
