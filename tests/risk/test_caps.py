"""The account caps on each entry (REFERENCE section 6), exact numbers: a position at most 20 %
of account equity and 5,000 USD, total exposure at most 80 %. An entry is shrunk to fit; one
that cannot fit above the market's minimum is rejected with the binding cap's code."""

from __future__ import annotations

import pytest

from scheduler.engine.market_rules import MarketRules
from scheduler.engine.models import State
from scheduler.engine.risk import AccountRules, entry_cap_usd
from scheduler.engine.step import Event
from tests.risk.helpers import BTC, ETH, T0, buy, go, hold, make_state, only, rules_for

MILLI = {s: MarketRules(s, amount_step=0.001, min_amount=0.001, min_notional_usd=5.0) for s in (BTC, ETH)}


def test_entry_cap_usd_picks_the_smallest_cap() -> None:
    rules = AccountRules()
    assert entry_cap_usd(10_000.0, 0.0, rules) == (2_000.0, "MAX_POSITION_PCT")
    assert entry_cap_usd(100_000.0, 0.0, rules) == (5_000.0, "MAX_POSITION_USD")
    assert entry_cap_usd(10_000.0, 6_500.0, rules) == (1_500.0, "MAX_EXPOSURE")
    assert entry_cap_usd(10_000.0, 8_000.0, rules) == (0.0, "MAX_EXPOSURE")


def test_a_position_is_capped_at_20_percent_of_account_equity() -> None:
    state = make_state({"a": 1_000.0, "b": 4_000.0})  # account 5,000: 20 % is 1,000 USD
    events = go(state, rules_for(state.sleeves), T0, intents=[buy("b", BTC, 100.0, T0)], market=MILLI)
    fill = only(events, "fill")
    assert fill.data["capped_by"] == "MAX_POSITION_PCT"
    assert fill.data["quantity"] == 9.995  # 1,000 / 100.05 = 9.99500...
    assert fill.data["notional_usd"] == pytest.approx(9.995 * 100.05, rel=1e-15)


def test_a_position_is_capped_at_5000_usd() -> None:
    state = make_state({"a": 30_000.0, "b": 1_000.0})  # 20 % of 31,000 is 6,200: 5,000 USD binds
    events = go(state, rules_for(state.sleeves), T0, intents=[buy("a", BTC, 100.0, T0)], market=MILLI)
    fill = only(events, "fill")
    assert fill.data["capped_by"] == "MAX_POSITION_USD"
    assert fill.data["quantity"] == 49.975  # 5,000 / 100.05 = 49.9750...


def _exposed(eth_units: float) -> tuple[list[Event], State]:
    """One 30,000 USD sleeve holding ``eth_units`` ETH at 100 and the rest in cash buys BTC."""
    state = make_state({"a": 30_000.0})
    hold(state, "a", ETH, eth_units, 100.0, cash=30_000.0 - eth_units * 100.0)
    rules = rules_for(state.sleeves)
    events = go(state, rules, T0, intents=[buy("a", BTC, 100.0, T0)], prices={ETH: 100.0}, market=MILLI)
    return events, state


def test_total_exposure_is_capped_at_80_percent() -> None:
    events, _ = _exposed(239.0)  # exposure 23,900 of 24,000: room for 100 USD
    fill = only(events, "fill")
    assert fill.data["capped_by"] == "MAX_EXPOSURE"
    assert fill.data["quantity"] == 0.999  # 100 / 100.05 = 0.99950...


def test_no_room_under_the_exposure_cap_is_a_rejection() -> None:
    events, state = _exposed(240.0)  # exactly 80 % exposed
    rejected = only(events, "rejected")
    assert rejected.data["code"] == "MAX_EXPOSURE"
    assert rejected.data["detail"] == "no room left under MAX_EXPOSURE (0.00 USD)"
    assert state.sleeves["a"].cash_usd == 6_000.0


def test_room_below_the_market_minimum_is_rejected_with_the_caps_code() -> None:
    events, state = _exposed(239.97)  # room for 3 USD; the market's minimum notional is 5
    rejected = only(events, "rejected")
    assert rejected.data["code"] == "MAX_EXPOSURE"
    assert rejected.data["detail"].endswith("(after MAX_EXPOSURE cap)")
    assert list(state.sleeves["a"].positions) == [ETH]
