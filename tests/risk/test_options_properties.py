"""Properties of options expiry and fills (REFERENCE section 7), over random option books and
settlement prices: at expiry the change in cash (= total value, the book being gone) is the signed
sum of intrinsic values less the delivery fees, never more than the longs' intrinsic value (no cash
from nothing); with zero fees and a quote without spread, opening a book does not change equity;
the books always reconcile with the trade log and the state round-trips strictly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.engine import margin
from scheduler.engine.option_fills import OptionFees, OptionRules, intrinsic_usd
from scheduler.engine.risk import reconcile
from scheduler.engine.step import sleeve_equity
from tests.unit.test_options_engine import (
    EXP_MS,
    EXPIRY,
    INDEX,
    all_trades,
    go,
    intent,
    kinds,
    leg,
    options_state,
    quote,
    restart,
)

legs = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from(["call", "put"]),
                          st.integers(30, 90).map(lambda k: k * 1000), st.integers(1, 30).map(lambda n: n / 10),
                          st.floats(0.0001, 0.6), st.booleans()),
                min_size=1, max_size=8)


def _book(spec: list[tuple], rules: dict[str, OptionRules] | None = None) -> tuple:
    """A sleeve with 10M USD holding the random legs (one instrument, one side each)."""
    state = options_state(cash=10_000_000.0)
    seen: set[str] = set()
    chosen, quotes = [], {}
    for action, kind, strike, q, premium, assign in spec:
        lg = leg(action, strike, kind, q, assign=assign and action == "sell" and kind == "put")
        if lg.instrument in seen:
            continue
        seen.add(lg.instrument)
        chosen.append(lg)
        quotes[lg.instrument] = quote(premium, bid=premium, ask=premium)
    events = go(state, intents=[intent(*chosen)], quotes=quotes, rules=rules)
    assert len(kinds(events, "fill")) == len(chosen), events
    return state, chosen


@settings(max_examples=80, deadline=None)
@given(spec=legs, delivery=st.floats(1_000.0, 200_000.0))
def test_expiry_pays_the_signed_intrinsic_values_less_fees_and_creates_no_cash(spec: list[tuple],
                                                                               delivery: float) -> None:
    state, chosen = _book(spec)
    sleeve = state.sleeves["o1"]
    cash_before = sleeve.cash_usd
    assigned = {p.id: (p.quantity, p.strike) for p in sleeve.option_positions if p.assign}
    fees = OptionRules().fees
    signed = sum((1 if p.side == "long" else -1) * p.quantity * intrinsic_usd(p.option_type, p.strike, delivery)
                 for p in sleeve.option_positions)
    longs = sum(p.quantity * intrinsic_usd(p.option_type, p.strike, delivery)
                for p in sleeve.option_positions if p.side == "long")
    delivery_fees = sum(min(fees.delivery_rate * delivery, fees.delivery_cap * intrinsic_usd(p.option_type, p.strike, delivery))
                        * p.quantity for p in sleeve.option_positions)
    events = go(state, EXPIRY, delivery={"BTC": {EXP_MS: delivery}})
    assert sleeve.option_positions == [] and margin.sleeve_margin_usd(sleeve) == 0.0
    # an assigned put also bought its coin: count that spot at what it cost, to compare the cash
    spot_paid = sum(e.data["notional_usd"] for e in kinds(events, "fill") if e.data["reason"] == "assignment")
    change = sleeve.cash_usd + spot_paid - cash_before
    assert change == pytest.approx(signed - delivery_fees, abs=1e-6)
    assert change <= longs + 1e-9  # no cash from nothing: only a long in the money can bring any
    assert all(e.data["fee_usd"] <= 0.125 * e.data["notional_usd"] + 1e-12 for e in kinds(events, "fill"))
    # the wheel: every assigning put that expired in the money bought its quantity (the sleeve has the cash)
    spot = sleeve.positions.get("BTC/USDT")
    assert (spot.quantity if spot else 0.0) == pytest.approx(sum(q for q, strike in assigned.values() if strike > delivery))
    assert reconcile(state, all_trades(state)) == []


@settings(max_examples=60, deadline=None)
@given(spec=legs)
def test_with_zero_fees_and_no_spread_opening_a_book_moves_no_value(spec: list[tuple]) -> None:
    free = {"o1": OptionRules(fees=OptionFees(0.0, 0.0, 0.0, 0.0))}
    state, _ = _book(spec, free)
    assert sleeve_equity(state.sleeves["o1"]) == pytest.approx(10_000_000.0, abs=1e-6)
    assert state.sleeves["o1"].fees_paid_usd == 0.0


@settings(max_examples=30, deadline=None)
@given(spec=legs, delivery=st.floats(1_000.0, 200_000.0))
def test_books_with_options_reconcile_and_round_trip(spec: list[tuple], delivery: float) -> None:
    state, _ = _book(spec)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = restart(state, Path(tmp))
        assert reconcile(loaded, all_trades(loaded)) == []
        go(loaded, EXPIRY, delivery={"BTC": {EXP_MS: delivery}})
        restart(loaded, Path(tmp))
    assert reconcile(loaded, all_trades(loaded)) == []


def test_the_property_book_is_marked_at_the_index() -> None:
    state, chosen = _book([("buy", "call", 60_000, 1.0, 0.05, False)])
    assert state.sleeves["o1"].option_positions[0].mark_usd == pytest.approx(0.05 * INDEX)
