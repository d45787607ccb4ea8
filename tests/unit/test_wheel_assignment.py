"""The wheel's call assignment in the pure engine (scheduler/engine/option_book.py, module doc):
a short call with ``assign`` that expires in the money is cash-settled, then sells the spot
that covered it at the delivery price, so that in total the coin was sold at the strike less
the fees. Every number is worked out by hand in the comments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from options.chain import expiry_ms_from_code, format_instrument_name
from scheduler.engine.fills import Costs
from scheduler.engine.models import Position, State, Trade, new_sleeve
from scheduler.engine.option_fills import OptionIntent, OptionLeg, OptionMark
from scheduler.engine.risk import AccountRules, reconcile
from scheduler.engine.step import Event, Mark, SleeveRules, SpotIntent, sleeve_equity, step

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EXP_MS = expiry_ms_from_code("28JUN24")  # Friday 28 June 2024, 08:00 UTC
EXPIRY = datetime(2024, 6, 28, 8, 0, tzinfo=UTC)
LATER_MS = EXP_MS + 21 * 86_400_000  # 19 July 2024, 08:00 UTC
LATER = EXPIRY + timedelta(days=21)
SPOT = "BTC/USDT"
LOOSE = AccountRules(max_position_pct=1e9, max_position_usd=1e18, max_exposure_pct=1e9, daily_loss_pct=1e6,
                     portfolio_kill_pct=1e6)


def name(strike: float, kind: str = "call", expiry_ms: int = EXP_MS) -> str:
    return format_instrument_name("BTC", expiry_ms, strike, kind)


def leg(action: str, strike: float, kind: str = "call", quantity: float = 0.1, **kw: Any) -> OptionLeg:
    expiry_ms = kw.pop("expiry_ms", EXP_MS)
    return OptionLeg(action, name(strike, kind, expiry_ms), "BTC", kind,  # type: ignore[arg-type]
                     float(strike), expiry_ms, quantity, **kw)


def go(state: State, now: datetime, *, legs: Sequence[OptionLeg] = (), coin: float = 0.01, index: float = 55_000.0,
       delivery: Mapping[int, float] | None = None, spot: Sequence[SpotIntent] = (),
       losses: int = 5, expect_rejection: bool = False) -> list[Event]:
    """One step: open ``legs`` at ``coin`` (bid = ask = mark) on ``index``, settle at ``delivery``."""
    quotes = {lg.instrument: OptionMark(mark_coin=coin, index_usd=index, at=now, bid_coin=coin, ask_coin=coin)
              for lg in legs}
    rules = {sid: SleeveRules(costs=Costs(0.001, 0.0), max_drawdown_pct=1e6, consecutive_losses=losses)
             for sid in state.sleeves}
    events = step(state, list(spot), {SPOT: Mark(index, now)}, rules, {}, now, 1, account_rules=LOOSE,
                  option_intents=[OptionIntent("o1", tuple(legs))] if legs else [], option_quotes=quotes,
                  delivery_prices={"BTC": dict(delivery or {})})
    assert expect_rejection or not [e for e in events if e.kind == "rejected"], events
    return events


def holding(quantity: float, price: float, fee: float = 0.0, cash: float = 10_000.0) -> State:
    """An options sleeve that holds ``quantity`` coin bought at ``price`` (plus ``fee``) out of ``cash``."""
    state = State()
    sleeve = state.sleeves["o1"] = new_sleeve("o1", "options", cash)
    if quantity:
        sleeve.positions[SPOT] = Position(symbol=SPOT, quantity=quantity, entry_price=price,
                                          cost_basis_usd=quantity * price + fee, entry_fee_usd=fee, opened_at=T0,
                                          mark_price=price, mark_at=T0)
        sleeve.cash_usd -= quantity * price + fee
    return state


def fills(events: Sequence[Event]) -> list[Event]:
    return [e for e in events if e.kind == "fill"]


def kinds(events: Sequence[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


def trades(state: State) -> list[Trade]:
    return [t for s in state.sleeves.values() for t in s.trades]


# ---------------------------------------------------------------------------------------------
# An in-the-money call with assign


def test_an_assigned_call_sells_its_coin_so_that_in_total_it_sold_at_the_strike() -> None:
    state = holding(0.1, 55_000.0)  # cash 10,000 - 5,500 = 4,500
    sleeve = state.sleeves["o1"]
    k = 60_500.0
    go(state, T0, legs=[leg("sell", k, covered_quantity=0.1, assign=True)])
    # premium 0.01 x 55,000 = 550 a contract: 55 USD; fee min(0.0003 x 55,000, 0.125 x 550) x 0.1 = 1.65
    assert sleeve.cash_usd == pytest.approx(4500 + 55 - 1.65, abs=1e-9)
    assert sleeve.option_positions[0].margin_usd == 0.0  # covered
    seq = state.next_trade_seq
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    expiry, assigned = fills(events)
    # the call cash-settles: (62,000 - 60,500) x 0.1 = 150, delivery fee min(9.3, 187.5) x 0.1 = 0.93
    assert (expiry.data["reason"], expiry.data["notional_usd"]) == ("expiry", pytest.approx(150.0))
    assert expiry.data["fee_usd"] == pytest.approx(0.93) and expiry.data["delivery_price"] == 62_000.0
    # then the coin is sold at the delivery price, no fee
    d = assigned.data
    assert (d["reason"], d["side"], d["symbol"], d["quantity"]) == ("assignment", "sell", SPOT, 0.1)
    assert (d["quote_price"], d["fill_price"], d["notional_usd"], d["fee_usd"]) == (62_000.0, 62_000.0,
                                                                                   pytest.approx(6200.0), 0.0)
    assert d["realized_pnl_usd"] == pytest.approx(6200 - 5500, abs=1e-9)  # against the coin's cost basis
    assert "sold 0.1 BTC/USDT at the delivery price 62000.00" in d["note"]
    assert [expiry.data["seq"], d["seq"]] == [seq, seq + 1] and state.next_trade_seq == seq + 2
    # together: the coin sold at the strike, 60,500 x 0.1 = 6,050, less the delivery fee
    assert sleeve.cash_usd == pytest.approx(4500 + 55 - 1.65 + 6050 - 0.93, abs=1e-9)
    assert sleeve.positions == {} and sleeve.option_positions == []
    # P&L: (strike - cost) x q + premium - fees, exactly; nothing left, so equity is cash
    total = (k - 55_000) * 0.1 + 55 - 1.65 - 0.93
    assert sleeve.realized_pnl_usd == pytest.approx(total, abs=1e-9)
    assert sleeve_equity(sleeve) == pytest.approx(10_000 + total, abs=1e-9)
    assert sleeve.fees_paid_usd == pytest.approx(1.65 + 0.93, abs=1e-12)
    assert [t.reason for t in sleeve.trades] == ["signal", "expiry", "assignment"]
    assert (sleeve.risk.wins, sleeve.risk.losses) == (1, 1)  # the call lost, the coin's sale won


def test_the_wheel_goes_round_put_assigned_coin_call_assigned_away_back_to_puts() -> None:
    state = holding(0.0, 0.0)
    sleeve = state.sleeves["o1"]
    # 1. sell a cash-secured put: 0.02 x 60,000 = 1,200 a contract -> 120; fee min(18, 150) x 0.1 = 1.8
    go(state, T0, legs=[leg("sell", 57_000, "put", assign=True)], coin=0.02, index=60_000.0)
    # 2. it expires in the money at 55,000: pays 200 + fee min(8.25, 250) x 0.1 = 0.825, buys 0.1 at 55,000
    go(state, EXPIRY, delivery={EXP_MS: 55_000.0})
    assert sleeve.positions[SPOT].quantity == 0.1 and sleeve.positions[SPOT].cost_basis_usd == pytest.approx(5500)
    # 3. sell a call covered by that coin: 0.01 x 55,000 = 550 -> 55; fee min(16.5, 68.75) x 0.1 = 1.65
    go(state, EXPIRY, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True, expiry_ms=LATER_MS)])
    assert sleeve.option_positions[0].margin_usd == 0.0
    # 4. it expires in the money at 63,000: pays 250 + fee min(9.45, 312.5) x 0.1 = 0.945, sells 0.1 at 63,000
    events = go(state, LATER, delivery={LATER_MS: 63_000.0})
    assert [e.data["reason"] for e in fills(events)] == ["expiry", "assignment"]
    # bought at 57,000 and sold at 60,500, both premiums in, every fee out
    cash = 10_000 + 120 - 1.8 - 0.825 - 5_700 + 55 - 1.65 - 0.945 + 6_050
    assert cash == pytest.approx(10_519.78, abs=1e-9)
    assert sleeve.cash_usd == pytest.approx(cash, abs=1e-9)
    assert sleeve.positions == {} and sleeve.option_positions == []
    assert sleeve.realized_pnl_usd == pytest.approx(cash - 10_000, abs=1e-9)
    assert sleeve_equity(sleeve) == pytest.approx(cash, abs=1e-9)
    seqs = [t.seq for t in sleeve.trades]
    assert seqs == list(range(1, 7)) and state.next_trade_seq == 7
    assert reconcile(state, trades(state)) == []
    # 5. no coin, no short: the sleeve can sell the next cash-secured put
    later_put = leg("sell", 57_000, "put", assign=True, expiry_ms=LATER_MS + 28 * 86_400_000)
    events = go(state, LATER, legs=[later_put], coin=0.02, index=60_000.0)
    assert [e.data["symbol"] for e in fills(events)] == [later_put.instrument]


# ---------------------------------------------------------------------------------------------
# Less coin than the call, or none


def test_a_call_with_less_coin_held_sells_what_is_held_and_says_so() -> None:
    state = holding(0.05, 55_000.0)  # cash 10,000 - 2,750
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True)])
    cash = sleeve.cash_usd  # 7,250 + 55 - 1.65
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    _, assigned = fills(events)
    assert (assigned.data["reason"], assigned.data["quantity"]) == ("assignment", 0.05)
    assert "only 0.05 of 0.1" in assigned.data["note"] and "holds 0.05 BTC/USDT" in assigned.data["note"]
    # the whole 0.1 is cash-settled (150 + 0.93); the 0.05 held is sold at 62,000 = 3,100
    assert sleeve.cash_usd == pytest.approx(cash - 150 - 0.93 + 3100, abs=1e-9)
    assert sleeve.positions == {}
    assert assigned.data["realized_pnl_usd"] == pytest.approx(3100 - 2750, abs=1e-9)


def test_a_part_sale_keeps_the_rest_of_the_coin_with_its_share_of_cost_and_fee() -> None:
    state = holding(0.3, 50_000.0, fee=15.0, cash=20_000.0)  # cost basis 15,015, 15 of it the entry fee
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True)])
    cash = sleeve.cash_usd
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    _, assigned = fills(events)
    # a third of the coin goes, with a third of the cost basis: 6,200 - 5,005
    assert assigned.data["quantity"] == 0.1 and "only" not in assigned.data["note"]
    assert assigned.data["realized_pnl_usd"] == pytest.approx(6200 - 5005, abs=1e-9)
    assert sleeve.cash_usd == pytest.approx(cash - 150 - 0.93 + 6200, abs=1e-9)
    rest = sleeve.positions[SPOT]
    assert rest.quantity == 0.2 and rest.entry_price == 50_000.0
    assert (rest.cost_basis_usd, rest.entry_fee_usd) == (pytest.approx(10_010, abs=1e-9), pytest.approx(10, abs=1e-12))
    # what is left is valued at its mark; equity = cash + 0.2 x 55,000 (the step's spot mark)
    assert sleeve_equity(sleeve) == pytest.approx(sleeve.cash_usd + 0.2 * 55_000, abs=1e-9)


def test_a_call_whose_coin_was_sold_meanwhile_is_only_cash_settled_and_says_why() -> None:
    state = holding(0.1, 55_000.0)
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True)])
    sell = SpotIntent("o1", SPOT, -1, 56_000.0, T0 + timedelta(hours=1))
    go(state, T0 + timedelta(hours=1), spot=[sell], index=56_000.0)  # the spot engine sells the coin
    assert sleeve.positions == {}
    cash, seq = sleeve.cash_usd, state.next_trade_seq
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    assert [e.data["reason"] for e in fills(events)] == ["expiry"]
    skipped = kinds(events, "assignment_skipped")
    assert len(skipped) == 1 and skipped[0].data["symbol"] == SPOT
    assert "holds no BTC/USDT" in skipped[0].data["detail"] and "nothing sold" in skipped[0].data["detail"]
    assert sleeve.cash_usd == pytest.approx(cash - 150 - 0.93, abs=1e-9)
    assert state.next_trade_seq == seq + 1 and sleeve.positions == {}


def test_an_assigned_call_never_delivers_the_coin_covering_another_open_call() -> None:
    # 0.1 coin covers the later call; the expiring one was sold naked with assign
    state = holding(0.1, 55_000.0)
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 65_000, covered_quantity=0.1, expiry_ms=LATER_MS)])
    go(state, T0 + timedelta(minutes=1), legs=[leg("sell", 60_500, assign=True)])
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    skipped = kinds(events, "assignment_skipped")
    assert len(skipped) == 1 and "covers other open short calls" in skipped[0].data["detail"]
    assert sleeve.positions[SPOT].quantity == 0.1
    assert sleeve.option_positions[0].margin_usd == 0.0  # still covered


def test_two_assigned_calls_expiring_together_each_deliver_their_own_coin() -> None:
    state = holding(0.2, 55_000.0, cash=20_000.0)
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True),
                        leg("sell", 61_000, covered_quantity=0.1, assign=True)])
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    sold = [e.data["quantity"] for e in fills(events) if e.data["reason"] == "assignment"]
    assert sold == [0.1, 0.1] and sleeve.positions == {}
    assert not kinds(events, "assignment_skipped")


# ---------------------------------------------------------------------------------------------
# Unchanged: out of the money, without assign, long calls, no delivery price


@pytest.mark.parametrize("delivery", [60_500.0, 58_000.0])  # at the money and below: worthless
def test_an_out_of_the_money_assigned_call_keeps_its_coin(delivery: float) -> None:
    state = holding(0.1, 55_000.0)
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True)])
    cash = sleeve.cash_usd
    events = go(state, EXPIRY, delivery={EXP_MS: delivery})
    assert [(e.data["reason"], e.data["notional_usd"]) for e in fills(events)] == [("expiry", 0.0)]
    assert sleeve.cash_usd == cash and sleeve.positions[SPOT].quantity == 0.1
    assert not kinds(events, "assignment_skipped")


def test_an_in_the_money_call_without_assign_is_only_cash_settled() -> None:
    state = holding(0.1, 55_000.0)
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1)])
    cash = sleeve.cash_usd
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    assert [e.data["reason"] for e in fills(events)] == ["expiry"]
    assert sleeve.cash_usd == pytest.approx(cash - 150 - 0.93, abs=1e-9)
    assert sleeve.positions[SPOT].quantity == 0.1


def test_a_long_call_in_the_money_sells_no_coin_and_cannot_ask_to_assign() -> None:
    state = holding(0.1, 55_000.0)
    sleeve = state.sleeves["o1"]
    events = go(state, T0, legs=[leg("buy", 60_500, assign=True)], expect_rejection=True)
    assert [e.data["code"] for e in kinds(events, "rejected")] == ["BAD_LEG"]
    go(state, T0, legs=[leg("buy", 60_500)])
    cash = sleeve.cash_usd
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0})
    # the long sells at its value: 150 - 0.93
    assert [e.data["reason"] for e in fills(events)] == ["expiry"]
    assert sleeve.cash_usd == pytest.approx(cash + 150 - 0.93, abs=1e-9)
    assert sleeve.positions[SPOT].quantity == 0.1


def test_an_assigned_call_without_a_delivery_price_waits_and_keeps_its_coin() -> None:
    state = holding(0.1, 55_000.0)
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=True)])
    events = go(state, EXPIRY)
    assert [e.kind for e in events if e.kind in ("fill", "settlement_pending")] == ["settlement_pending"]
    assert state.sleeves["o1"].positions[SPOT].quantity == 0.1


# ---------------------------------------------------------------------------------------------
# Event bookkeeping


@pytest.mark.parametrize("assign", [False, True])
def test_the_delivery_price_is_on_the_expiry_fill_even_when_the_loss_trips_a_block(assign: bool) -> None:
    state = holding(0.1, 55_000.0)
    go(state, T0, legs=[leg("sell", 60_500, covered_quantity=0.1, assign=assign)])
    events = go(state, EXPIRY, delivery={EXP_MS: 62_000.0}, losses=1)  # the call's loss is the 1st in a row
    expiry, *assigned = fills(events)
    assert expiry.data["reason"] == "expiry" and expiry.data["delivery_price"] == 62_000.0
    assert [e.data["code"] for e in kinds(events, "block")] == ["CONSECUTIVE_LOSSES"]
    assert all("delivery_price" not in e.data for e in kinds(events, "block"))
    assert [("delivery_price" in a.data, "note" in a.data) for a in assigned] == ([(False, True)] if assign else [])


def test_an_assigned_put_marks_its_coin_at_the_steps_spot_price_not_the_older_delivery() -> None:
    """The daemon settles at its first cycle after expiry (10:00, say): the delivery price is
    from 08:00, the step's spot mark is newer; the coin is bought at the delivery price (its cost)
    and marked at the step's price, as every other position of that step is."""
    state = holding(0.0, 0.0)
    sleeve = state.sleeves["o1"]
    go(state, T0, legs=[leg("sell", 57_000, "put", assign=True)], coin=0.02, index=60_000.0)
    go(state, EXPIRY + timedelta(hours=2), delivery={EXP_MS: 55_000.0}, index=54_000.0)
    pos = sleeve.positions[SPOT]
    assert pos.cost_basis_usd == pytest.approx(5_500) and pos.mark_price == 54_000.0
    assert sleeve_equity(sleeve) == pytest.approx(sleeve.cash_usd + 0.1 * 54_000.0, abs=1e-9)
