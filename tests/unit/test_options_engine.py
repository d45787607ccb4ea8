"""Options paper accounting in the pure engine (REFERENCE section 7; issue 9 item 6): fills at
the bid/ask, Deribit's capped fees, standard margin for shorts, expiry at 08:00 UTC at the delivery
price, the wheel's assignment, theta harvest, position ids and close matching, and state that
round-trips strictly. Every number here is worked out by hand in the comments."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from options.chain import expiry_ms_from_code, format_instrument_name
from scheduler.engine import margin
from scheduler.engine.fills import Costs
from scheduler.engine.models import SCHEMA_VERSION, Position, State, migrate, new_sleeve
from scheduler.engine.option_fills import (
    HarvestRules,
    OptionIntent,
    OptionLeg,
    OptionLimits,
    OptionMark,
    OptionRules,
    delivery_fee_usd,
    trade_fee_usd,
)
from scheduler.engine.risk import AccountRules, reconcile
from scheduler.engine.step import Event, SleeveRules, sleeve_equity, step
from scheduler.state_store import load_state, save_state

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EXP_MS = expiry_ms_from_code("28JUN24")  # Friday 28 June 2024, 08:00 UTC
EXPIRY = datetime(2024, 6, 28, 8, 0, tzinfo=UTC)
INDEX = 60_000.0
LOOSE = AccountRules(max_position_pct=1e9, max_position_usd=1e18, max_exposure_pct=1e9, daily_loss_pct=1e6,
                     portfolio_kill_pct=1e6)  # never binds, even on an account that owes cash


def name(strike: float, kind: str = "call", underlying: str = "BTC", expiry_ms: int = EXP_MS) -> str:
    return format_instrument_name(underlying, expiry_ms, strike, kind)


def options_state(*ids: str, cash: float = 10_000.0) -> State:
    state = State()
    for sid in ids or ("o1",):
        state.sleeves[sid] = new_sleeve(sid, "options", cash)
    return state


def sleeve_rules(state: State) -> dict[str, SleeveRules]:
    return {sid: SleeveRules(costs=Costs(0.001, 0.0), max_drawdown_pct=1e6) for sid in state.sleeves}


def quote(mark: float | None, *, bid: float | None = None, ask: float | None = None, index: float | None = INDEX,
          at: datetime = T0, delta: float | None = 0.5, gamma: float | None = 2e-5, vega: float | None = 60.0,
          theta: float | None = -30.0) -> OptionMark:
    return OptionMark(mark_coin=mark, index_usd=index, at=at, bid_coin=bid, ask_coin=ask, mark_iv_pct=55.0,
                      underlying_price=index, delta=delta, gamma=gamma, theta=theta, vega=vega)


def leg(action: str, strike: float, kind: str = "call", quantity: float = 0.1, **kw: Any) -> OptionLeg:
    underlying = kw.pop("underlying", "BTC")
    expiry_ms = kw.pop("expiry_ms", EXP_MS)
    return OptionLeg(action, name(strike, kind, underlying, expiry_ms), underlying, kind,  # type: ignore[arg-type]
                     float(strike), expiry_ms, quantity, **kw)


def go(state: State, now: datetime = T0, *, intents: Sequence[OptionIntent] = (),
       quotes: Mapping[str, OptionMark] | None = None, delivery: Mapping[str, Mapping[int, float]] | None = None,
       rules: Mapping[str, OptionRules] | None = None, limits: OptionLimits | None = None,
       prices: Mapping[str, float] | None = None, index: Mapping[str, float] | None = None) -> list[Event]:
    from scheduler.engine.step import Mark

    marks = {s: Mark(p, now) for s, p in (prices or {}).items()}
    return step(state, [], marks, sleeve_rules(state), {}, now, 1, account_rules=LOOSE, option_intents=intents,
                option_quotes=quotes or {}, index_prices=index, delivery_prices=delivery, option_rules=rules,
                account_option_limits=limits)


def intent(*legs: OptionLeg, sid: str = "o1") -> OptionIntent:
    return OptionIntent(sid, tuple(legs))


def kinds(events: Sequence[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


def one(events: Sequence[Event], kind: str) -> Event:
    found = kinds(events, kind)
    assert len(found) == 1, events
    return found[0]


def restart(state: State, tmp_path: Path) -> State:
    path = tmp_path / "state.json"
    save_state(path, state)
    loaded = load_state(path)
    assert loaded is not None
    assert loaded.model_dump(mode="json") == state.model_dump(mode="json")
    return loaded


def books(state: State) -> dict[str, Any]:
    """What a refused entry must leave untouched: every sleeve, and the trade seq."""
    return {"sleeves": {k: v.model_dump() for k, v in state.sleeves.items()}, "seq": state.next_trade_seq}


def all_trades(state: State) -> list[Any]:
    return [t for s in state.sleeves.values() for t in s.trades]


# ---------------------------------------------------------------------------------------------
# Fills and fees


def test_a_buy_fills_at_the_ask_and_pays_the_index_fee() -> None:
    state = options_state()
    k = 66_000
    events = go(state, intents=[intent(leg("buy", k))], quotes={name(k): quote(0.05, bid=0.048, ask=0.052)})
    fill = one(events, "fill")
    # 0.052 coin x 60,000 = 3,120 USD a contract; fee min(0.0003 x 60,000, 0.125 x 3,120) = 18 USD a contract
    assert fill.data["fill_price"] == pytest.approx(3120.0)
    assert fill.data["option"]["price_source"] == "ask"
    assert fill.data["option"]["premium_coin"] == 0.052
    assert fill.data["fee_usd"] == pytest.approx(1.8)
    sleeve = state.sleeves["o1"]
    assert sleeve.cash_usd == pytest.approx(10_000 - 312.0 - 1.8)
    pos = sleeve.option_positions[0]
    assert (pos.side, pos.quantity, pos.mark_usd, pos.margin_usd) == ("long", 0.1, pytest.approx(3000.0), 0.0)
    # valued at the mark: cash + 0.1 x 3,000
    assert sleeve_equity(sleeve) == pytest.approx(10_000 - 312.0 - 1.8 + 300.0)


def test_a_sell_fills_at_the_bid() -> None:
    state = options_state()
    events = go(state, intents=[intent(leg("sell", 57_000, "put"))], quotes={name(57_000, "put"): quote(0.02, bid=0.019, ask=0.021)})
    fill = one(events, "fill")
    assert fill.data["fill_price"] == pytest.approx(0.019 * INDEX)
    assert fill.data["option"]["price_source"] == "bid"
    assert state.sleeves["o1"].cash_usd == pytest.approx(10_000 + 114.0 - 1.8)


@pytest.mark.parametrize("action,source,premium", [("buy", "mark+spread", 0.02 * 1.05), ("sell", "mark-spread", 0.02 * 0.95)])
def test_without_a_bid_or_ask_the_fill_is_the_mark_moved_against_the_trader(action: str, source: str,
                                                                             premium: float) -> None:
    state = options_state()
    events = go(state, intents=[intent(leg(action, 60_000))], quotes={name(60_000): quote(0.02)})
    fill = one(events, "fill")
    assert fill.data["option"]["price_source"] == source
    assert fill.data["fill_price"] == pytest.approx(premium * INDEX)


def test_the_fee_is_capped_at_an_eighth_of_the_option_price() -> None:
    # a 0.0001 coin option at 60,000: 6 USD a contract; 0.03 % of the index would be 18 USD
    assert trade_fee_usd(INDEX, 6.0, 1.0, OptionRules().fees) == pytest.approx(0.75)
    state = options_state()
    k = 90_000
    events = go(state, intents=[intent(leg("buy", k, quantity=1.0))], quotes={name(k): quote(0.0001, ask=0.0001)})
    assert one(events, "fill").data["fee_usd"] == pytest.approx(0.75)
    # not the original's 0.03 % of the premium, about 100 times too little on a normal option
    assert trade_fee_usd(INDEX, 3000.0, 1.0, OptionRules().fees) == pytest.approx(18.0)


@pytest.mark.parametrize("bad", [None, quote(None), quote(float("nan")), quote(0.0), quote(-0.01), quote(0.02, index=None),
                                 quote(0.02, index=float("inf"))])
def test_no_fill_without_a_real_quote(bad: OptionMark | None) -> None:
    state = options_state()
    before = books(state)
    events = go(state, intents=[intent(leg("buy", 60_000))], quotes={} if bad is None else {name(60_000): bad})
    assert one(events, "rejected").data["code"] == "NO_QUOTE"
    assert books(state) == before


def test_a_quote_without_an_index_uses_the_index_price_passed_in() -> None:
    state = options_state()
    events = go(state, intents=[intent(leg("buy", 60_000))], quotes={name(60_000): quote(0.02, ask=0.021, index=None)},
                index={"BTC": 50_000.0})
    assert one(events, "fill").data["fill_price"] == pytest.approx(0.021 * 50_000)


def test_a_stale_quote_does_not_fill() -> None:
    state = options_state()
    events = go(state, intents=[intent(leg("buy", 60_000))],
                quotes={name(60_000): quote(0.02, ask=0.021, at=T0 - timedelta(hours=2))})
    assert one(events, "rejected").data["code"] == "STALE_QUOTE"


@pytest.mark.parametrize("underlying,asked,filled", [("BTC", 0.15, 0.1), ("BTC", 0.29999999, 0.2), ("ETH", 1.5, 1.0),
                                                      ("BTC", 0.05, None), ("ETH", 0.9, None)])
def test_contracts_round_down_to_the_listed_step_and_minimum(underlying: str, asked: float, filled: float | None) -> None:
    state = options_state()
    lg = leg("buy", 3000 if underlying == "ETH" else 60_000, quantity=asked, underlying=underlying)
    events = go(state, intents=[intent(lg)], quotes={lg.instrument: quote(0.02, ask=0.021, index=3000 if underlying == "ETH" else INDEX)})
    if filled is None:
        assert one(events, "rejected").data["code"] == "BELOW_MIN_AMOUNT"
    else:
        assert one(events, "fill").data["quantity"] == filled


def test_an_underlying_without_contract_rules_is_refused() -> None:
    state = options_state()
    lg = leg("buy", 150, underlying="SOL")
    events = go(state, intents=[intent(lg)], quotes={lg.instrument: quote(0.02, ask=0.021, index=150)})
    assert one(events, "rejected").data["code"] == "NO_CONTRACT_RULES"


def test_a_spot_sleeve_does_not_trade_options() -> None:
    state = State()
    state.sleeves["s1"] = new_sleeve("s1", "spot", 10_000)
    events = go(state, intents=[intent(leg("buy", 60_000), sid="s1")], quotes={name(60_000): quote(0.02, ask=0.021)})
    assert one(events, "rejected").data["code"] == "NOT_OPTIONS_SLEEVE"


def test_an_expired_instrument_is_not_opened() -> None:
    state = options_state()
    events = go(state, EXPIRY, intents=[intent(leg("buy", 60_000))], quotes={name(60_000): quote(0.02, ask=0.021, at=EXPIRY)})
    assert one(events, "rejected").data["code"] == "EXPIRED"


def test_the_legs_of_one_intent_fill_together_or_not_at_all() -> None:
    state = options_state()
    strangle = intent(leg("sell", 66_000), leg("sell", 54_000, "put"))
    events = go(state, intents=[strangle], quotes={name(66_000): quote(0.01, bid=0.009)})  # the put has no quote
    rejected = one(events, "rejected")
    assert rejected.data["code"] == "NO_QUOTE" and rejected.data["symbol"] == name(54_000, "put")
    assert not kinds(events, "fill") and state.sleeves["o1"].option_positions == []


# ---------------------------------------------------------------------------------------------
# Margin


def test_deribit_initial_margin_per_contract() -> None:
    im = margin.initial_margin_coin
    # OTM call 10 % above: max(0.15 - 0.10, 0.10) + mark
    assert im("call", 66_000, 60_000, 0.01) == pytest.approx(0.11)
    # ITM call: max(0.15 - 0, 0.10) + mark
    assert im("call", 54_000, 60_000, 0.11) == pytest.approx(0.26)
    # OTM put 5 % below: max(max(0.15 - 0.05, 0.10) + 0.01, max(0.075, 0.075 x 0.01) + 0.01) = 0.11
    assert im("put", 57_000, 60_000, 0.01) == pytest.approx(0.11)
    # far OTM put: the 0.10 floor
    assert im("put", 30_000, 60_000, 0.0005) == pytest.approx(0.1005)


def test_a_short_that_cannot_be_margined_is_refused() -> None:
    state = options_state(cash=500.0)
    before = books(state)
    k = 66_000
    # IM = (0.10 + 0.0105) x 60,000 x 0.1 = 663 USD; free after the premium: 500 + 60 - 1.8 = 558.2
    events = go(state, intents=[intent(leg("sell", k))], quotes={k and name(k): quote(0.0105, bid=0.01)})
    rejected = one(events, "rejected")
    assert rejected.data["code"] == "INSUFFICIENT_MARGIN" and "663.00" in rejected.data["detail"]
    assert rejected.data["detail"].endswith("give the strategy more capital, or trade fewer contracts")
    assert books(state) == before


def test_a_long_the_sleeve_cannot_pay_for_is_refused() -> None:
    state = options_state(cash=100.0)
    events = go(state, intents=[intent(leg("buy", 60_000))], quotes={name(60_000): quote(0.02, ask=0.021)})
    assert one(events, "rejected").data["code"] == "INSUFFICIENT_CASH"  # 126 USD + fee > 100


def test_margin_in_use_blocks_the_next_entry_and_is_released_at_close() -> None:
    state = options_state(cash=1000.0)
    k = 66_000
    q = {name(k): quote(0.0105, bid=0.01, ask=0.011)}
    go(state, intents=[intent(leg("sell", k))], quotes=q)
    sleeve = state.sleeves["o1"]
    assert margin.sleeve_margin_usd(sleeve) == pytest.approx(663.0)
    # free: 1000 + 60 - 1.8 - 663 = 395.2; the same short again needs 663 - 58.2 more
    events = go(state, intents=[intent(leg("sell", k))], quotes=q)
    assert one(events, "rejected").data["code"] == "INSUFFICIENT_MARGIN"
    # a long paid from margin-reserved cash is refused too: 0.1 x 0.5 x 60,000 = 3,000 > 395.2
    events = go(state, intents=[intent(leg("buy", 60_000))], quotes={name(60_000): quote(0.5, ask=0.5)})
    assert one(events, "rejected").data["code"] == "INSUFFICIENT_CASH"
    events = go(state, intents=[intent(OptionLeg("close", name(k), "BTC", "call", k, EXP_MS, 0.1))], quotes=q)
    assert one(events, "fill").data["option"]["price_source"] == "ask"
    assert sleeve.option_positions == [] and margin.sleeve_margin_usd(sleeve) == 0.0
    assert sleeve.cash_usd == pytest.approx(1000 + 60 - 1.8 - 66 - 1.8)


def test_margin_follows_the_mark_every_cycle() -> None:
    state = options_state()
    k = 66_000
    go(state, intents=[intent(leg("sell", k))], quotes={name(k): quote(0.0105, bid=0.01)})
    # the underlying rallies to 66,000: ATM, IM = (0.15 + 0.04) x 66,000 x 0.1
    go(state, T0 + timedelta(hours=1), quotes={name(k): quote(0.04, index=66_000, at=T0 + timedelta(hours=1))})
    assert margin.sleeve_margin_usd(state.sleeves["o1"]) == pytest.approx(0.19 * 66_000 * 0.1)


def test_a_covered_call_needs_no_margin_for_the_spot_it_is_covered_by() -> None:
    state = options_state()
    sleeve = state.sleeves["o1"]
    sleeve.positions["BTC/USDT"] = Position(symbol="BTC/USDT", quantity=0.1, entry_price=INDEX, cost_basis_usd=6000.0,
                                            entry_fee_usd=0.0, opened_at=T0, mark_price=INDEX, mark_at=T0)
    k = 66_000
    q = {name(k): quote(0.0105, bid=0.01)}
    go(state, intents=[intent(leg("sell", k, covered_quantity=0.1))], quotes=q, prices={"BTC/USDT": INDEX})
    assert sleeve.option_positions[0].covered_quantity == 0.1 and sleeve.option_positions[0].margin_usd == 0.0
    # a second covered call finds no free spot: margined as naked, and the fill says so
    events = go(state, intents=[intent(leg("sell", k, covered_quantity=0.1))], quotes=q, prices={"BTC/USDT": INDEX})
    assert "margined as naked" in one(events, "fill").data["note"]
    assert sleeve.option_positions[1].margin_usd == pytest.approx(663.0)
    # the spot is sold: the first call is naked from then on
    del sleeve.positions["BTC/USDT"]
    go(state, quotes=q)
    assert margin.sleeve_margin_usd(sleeve) == pytest.approx(2 * 663.0)


# ---------------------------------------------------------------------------------------------
# Expiry


def _open(state: State, action: str, strike: float, kind: str, *, quantity: float = 0.1, **kw: Any) -> None:
    lg = leg(action, strike, kind, quantity, **kw)
    events = go(state, intents=[intent(lg)], quotes={lg.instrument: quote(0.02, bid=0.02, ask=0.02)})
    assert kinds(events, "fill"), events


@pytest.mark.parametrize("side", ["buy", "sell"])
@pytest.mark.parametrize("kind,strike,delivery,value", [
    ("call", 60_000, 63_000, 3000.0),  # in the money
    ("call", 60_000, 57_000, 0.0),  # out of the money
    ("put", 60_000, 57_000, 3000.0),
    ("put", 60_000, 63_000, 0.0),
    ("call", 60_000, 60_000, 0.0),  # at the money: worthless
])
def test_expiry_settles_at_08_utc_at_the_delivery_price(side: str, kind: str, strike: float, delivery: float,
                                                         value: float) -> None:
    state = options_state()
    _open(state, side, strike, kind)
    sleeve = state.sleeves["o1"]
    cash_before = sleeve.cash_usd
    delivered = {"BTC": {EXP_MS: delivery}}
    # a second before 08:00 UTC nothing settles, whatever the delivery price says
    assert not kinds(go(state, EXPIRY - timedelta(seconds=1), delivery=delivered), "fill")
    assert sleeve.cash_usd == cash_before and len(sleeve.option_positions) == 1
    events = go(state, EXPIRY, delivery=delivered)
    fill = one(events, "fill")
    fee = min(0.00015 * delivery, 0.125 * value) * 0.1
    signed = 1 if side == "buy" else -1
    assert fill.data["reason"] == "expiry" and fill.data["option"]["price_source"] == "delivery"
    assert fill.data["fill_price"] == value and fill.data["fee_usd"] == pytest.approx(fee)
    assert fill.data["side"] == ("sell" if side == "buy" else "buy")
    assert sleeve.cash_usd == pytest.approx(cash_before + signed * value * 0.1 - fee)
    assert sleeve.option_positions == [] and margin.sleeve_margin_usd(sleeve) == 0.0  # margin released
    if value == 0:
        assert fee == 0 and sleeve.cash_usd == cash_before
    assert reconcile(state, all_trades(state)) == []


def test_without_a_delivery_price_the_position_waits_and_says_so() -> None:
    state = options_state()
    _open(state, "sell", 60_000, "call")
    cash = state.sleeves["o1"].cash_usd
    for later in (EXPIRY, EXPIRY + timedelta(hours=1)):
        events = go(state, later, delivery={"BTC": {EXP_MS + 1: 70_000.0, EXP_MS: float("nan")}})
        assert "waiting for its delivery price" in one(events, "settlement_pending").data["detail"]
    assert len(state.sleeves["o1"].option_positions) == 1 and state.sleeves["o1"].cash_usd == cash
    # and it cannot be closed at a quote once expired
    events = go(state, EXPIRY + timedelta(hours=2), intents=[intent(OptionLeg("close", name(60_000), "BTC", "call", 60_000, EXP_MS, 0.1))],
                quotes={name(60_000): quote(0.02, bid=0.02, ask=0.02, at=EXPIRY + timedelta(hours=2))})
    assert one(events, "rejected").data["code"] == "EXPIRED"


def test_the_delivery_fee_is_capped_at_an_eighth_of_the_value() -> None:
    fees = OptionRules().fees
    assert delivery_fee_usd(60_000, 1.0, 1.0, fees) == pytest.approx(0.125)  # not 9 USD
    assert delivery_fee_usd(60_000, 5000.0, 2.0, fees) == pytest.approx(18.0)
    assert delivery_fee_usd(60_000, 0.0, 2.0, fees) == 0.0


def test_a_short_call_loss_beyond_the_capital_is_booked_and_the_state_still_saves(tmp_path: Path) -> None:
    state = options_state(cash=2000.0)
    _open(state, "sell", 60_000, "call", quantity=0.1)
    go(state, EXPIRY, delivery={"BTC": {EXP_MS: 120_000.0}})  # 6,000 USD to pay on 2,000 of capital
    sleeve = state.sleeves["o1"]
    assert sleeve.cash_usd < 0
    assert sleeve.cash_usd == pytest.approx(2000 + 120 - 1.8 - 6000 - 1.8)  # fee min(18, 750) x 0.1
    restart(state, tmp_path)
    events = go(state, EXPIRY + timedelta(hours=1), intents=[intent(leg("buy", 60_000, expiry_ms=EXP_MS + 7 * 86_400_000))],
                quotes={name(60_000, expiry_ms=EXP_MS + 7 * 86_400_000): quote(0.02, ask=0.02, at=EXPIRY + timedelta(hours=1))})
    assert one(events, "rejected").data["code"] == "INSUFFICIENT_CASH"


# ---------------------------------------------------------------------------------------------
# The wheel


def test_the_wheel_assigns_an_in_the_money_put_at_the_strike() -> None:
    state = options_state()
    _open(state, "sell", 57_000, "put", assign=True)
    sleeve = state.sleeves["o1"]
    # cash-secured: at least strike x quantity = 5,700 USD reserved
    assert sleeve.option_positions[0].margin_usd == pytest.approx(5700.0)
    cash = sleeve.cash_usd  # 10,000 + 120 - 1.8
    events = go(state, EXPIRY, delivery={"BTC": {EXP_MS: 55_000.0}})
    settle, assigned = kinds(events, "fill")
    # the put cash-settles: (57,000 - 55,000) x 0.1 = 200 USD, fee min(8.25, 250) x 0.1
    assert (settle.data["reason"], settle.data["notional_usd"]) == ("expiry", pytest.approx(200.0))
    assert settle.data["fee_usd"] == pytest.approx(0.825)
    # then 0.1 BTC is bought at the delivery price: together, buying at the strike
    assert (assigned.data["reason"], assigned.data["symbol"], assigned.data["quantity"]) == ("assignment", "BTC/USDT", 0.1)
    assert assigned.data["fill_price"] == 55_000.0 and assigned.data["fee_usd"] == 0.0
    assert sleeve.cash_usd == pytest.approx(cash - 57_000 * 0.1 - 0.825)
    spot = sleeve.positions["BTC/USDT"]
    assert (spot.quantity, spot.entry_price, spot.cost_basis_usd) == (0.1, 55_000.0, pytest.approx(5500.0))
    # the put's loss is realized once, on the put: premium 120 - fees 1.8 and 0.825 - 200
    assert sleeve.realized_pnl_usd == pytest.approx(120 - 1.8 - 200 - 0.825)
    assert sleeve_equity(sleeve) == pytest.approx(sleeve.cash_usd + 5500.0)
    assert reconcile(state, all_trades(state)) == []
    # the next stage of the wheel: a call covered by the assigned coin needs no margin
    k = 60_500
    go(state, EXPIRY, intents=[intent(leg("sell", k, covered_quantity=0.1, expiry_ms=EXP_MS + 21 * 86_400_000))],
       quotes={name(k, expiry_ms=EXP_MS + 21 * 86_400_000): quote(0.01, bid=0.01, at=EXPIRY, index=55_000)})
    assert sleeve.option_positions[0].margin_usd == 0.0


def test_the_wheel_does_not_assign_out_of_the_money_or_without_assign() -> None:
    state = options_state()
    _open(state, "sell", 57_000, "put", assign=True)
    go(state, EXPIRY, delivery={"BTC": {EXP_MS: 58_000.0}})
    assert state.sleeves["o1"].positions == {}
    state = options_state()
    _open(state, "sell", 57_000, "put")  # a plain short put is only cash-settled
    go(state, EXPIRY, delivery={"BTC": {EXP_MS: 55_000.0}})
    assert state.sleeves["o1"].positions == {}


@pytest.mark.parametrize("bad", [leg("buy", 57_000, "put", assign=True), leg("buy", 66_000, "call", assign=True),
                                 leg("buy", 66_000, covered_quantity=0.1), leg("sell", 57_000, "put", covered_quantity=0.1)])
def test_assign_and_cover_only_where_they_mean_something(bad: OptionLeg) -> None:
    state = options_state()
    events = go(state, intents=[intent(bad)], quotes={bad.instrument: quote(0.02, bid=0.02, ask=0.02)})
    assert one(events, "rejected").data["code"] == "BAD_LEG"


# ---------------------------------------------------------------------------------------------
# Marks, theta harvest


def test_marks_and_greeks_are_refreshed_every_cycle_and_an_unpriced_option_makes_the_value_unknown() -> None:
    state = options_state()
    _open(state, "sell", 66_000, "call")
    pos = state.sleeves["o1"].option_positions[0]
    later = T0 + timedelta(hours=1)
    go(state, later, quotes={name(66_000): quote(0.03, index=62_000, at=later, delta=0.4, gamma=3e-5, vega=70.0, theta=-40.0)})
    assert (pos.mark_coin, pos.mark_usd, pos.index_usd, pos.mark_at) == (0.03, pytest.approx(1860.0), 62_000.0, later)
    assert pos.greeks == {"delta": 0.4, "gamma": 3e-5, "theta": -40.0, "vega": 70.0}
    assert sleeve_equity(state.sleeves["o1"]) == pytest.approx(state.sleeves["o1"].cash_usd - 186.0)
    # an older quote never replaces the newer mark
    go(state, later, quotes={name(66_000): quote(0.01, at=T0)})
    assert pos.mark_coin == 0.03
    pos.mark_usd = None
    assert sleeve_equity(state.sleeves["o1"]) is None


@pytest.mark.parametrize("mark,now,reason", [
    (0.007, T0 + timedelta(days=1), "profit_target"),  # (0.02 - 0.007) / 0.02 = 65 % >= 60 %
    (0.065, T0 + timedelta(days=1), "loss_stop"),  # (0.065 - 0.02) / 0.02 = 225 % >= 200 %
    (0.02, EXPIRY - timedelta(days=2), "min_dte"),  # 2 days left <= 3
    (0.01, T0 + timedelta(days=1), None),  # 50 %: hold
])
def test_theta_harvest_buys_back_a_sold_option(mark: float, now: datetime, reason: str | None) -> None:
    state = options_state()
    _open(state, "sell", 66_000, "call")
    rules = {"o1": OptionRules(harvest=HarvestRules(profit_target_pct=60, loss_stop_pct=200, min_dte_days=3))}
    events = go(state, now, quotes={name(66_000): quote(mark, bid=mark * 0.9, ask=mark * 1.1, at=now)}, rules=rules)
    if reason is None:
        assert not kinds(events, "fill") and len(state.sleeves["o1"].option_positions) == 1
        return
    fill = one(events, "fill")
    assert (fill.data["reason"], fill.data["side"], fill.data["option"]["price_source"]) == (reason, "buy", "ask")
    assert fill.data["fill_price"] == pytest.approx(mark * 1.1 * INDEX)
    assert state.sleeves["o1"].option_positions == []


def test_theta_harvest_leaves_longs_alone_and_waits_for_a_quote() -> None:
    state = options_state()
    _open(state, "buy", 66_000, "call")
    _open(state, "sell", 70_000, "call")
    rules = {"o1": OptionRules(harvest=HarvestRules(min_dte_days=3))}
    now = EXPIRY - timedelta(days=1)
    events = go(state, now, rules=rules)  # no quotes: the short cannot be bought back yet
    assert one(events, "rejected").data["code"] == "NO_QUOTE"
    assert len(state.sleeves["o1"].option_positions) == 2


# ---------------------------------------------------------------------------------------------
# Ids and closes


def test_position_ids_never_collide() -> None:
    state = options_state("o1", "o2")
    q = {name(60_000): quote(0.02, bid=0.02, ask=0.02), name(62_000): quote(0.02, bid=0.02, ask=0.02)}
    go(state, intents=[intent(leg("buy", 60_000), leg("buy", 60_000)), intent(leg("buy", 60_000), sid="o2")], quotes=q)
    close = OptionLeg("close", name(60_000), "BTC", "call", 60_000, EXP_MS, 0.1, position_id="o1:1")
    go(state, intents=[intent(close), intent(leg("buy", 60_000), leg("buy", 62_000))], quotes=q)
    ids = [p.id for s in state.sleeves.values() for p in s.option_positions]
    assert ids == ["o1:2", "o1:5", "o1:6", "o2:3"]
    assert len(ids) == len(set(ids))


def test_a_close_matches_exactly_one_position() -> None:
    state = options_state()
    q = {name(60_000): quote(0.02, bid=0.02, ask=0.02), name(62_000, "put"): quote(0.02, bid=0.02, ask=0.02)}
    go(state, intents=[intent(leg("buy", 60_000), leg("buy", 60_000), leg("sell", 62_000, "put"))], quotes=q)

    def close(instrument: str, **kw: Any) -> Event:
        events = go(state, intents=[intent(OptionLeg("close", instrument, "BTC", "call", 1.0, EXP_MS, 1.0, **kw))], quotes=q)
        assert len(events) == 1, events
        return events[0]

    assert close(name(60_000)).data["code"] == "AMBIGUOUS_CLOSE"
    assert close(name(60_000), side="short").data["code"] == "NO_SUCH_POSITION"
    assert close(name(61_000)).data["code"] == "NO_SUCH_POSITION"
    assert close(name(62_000, "put"), position_id="o1:1").data["code"] == "CLOSE_MISMATCH"
    assert close(name(60_000), position_id="o1:9").data["code"] == "NO_SUCH_POSITION"
    fill = close(name(60_000), position_id="o1:2")
    assert fill.kind == "fill" and fill.data["option"]["position_id"] == "o1:2"
    assert [p.id for p in state.sleeves["o1"].option_positions] == ["o1:1", "o1:3"]
    put = close(name(62_000, "put"))  # the only position on that instrument
    assert put.kind == "fill" and put.data["side"] == "buy" and put.data["option"]["position_side"] == "short"
    # opening the other side of a held instrument is refused: close it instead
    events = go(state, intents=[intent(leg("sell", 60_000))], quotes=q)
    assert one(events, "rejected").data["code"] == "OPPOSITE_POSITION"


def test_a_partial_close_keeps_the_rest_and_its_books_straight() -> None:
    state = options_state()
    q = {name(60_000): quote(0.02, bid=0.03, ask=0.02)}
    go(state, intents=[intent(leg("buy", 60_000, quantity=0.3))], quotes=q)
    events = go(state, intents=[intent(OptionLeg("close", name(60_000), "BTC", "call", 60_000, EXP_MS, 0.1))], quotes=q)
    fill = one(events, "fill")
    # sold 0.1 at 0.03 x 60,000 = 1,800; cost share: 0.1 x 1,200 + a third of the 5.4 USD entry fee
    assert fill.data["realized_pnl_usd"] == pytest.approx(180 - 1.8 - 120 - 1.8)
    pos = state.sleeves["o1"].option_positions[0]
    assert pos.quantity == pytest.approx(0.2) and pos.entry_fee_usd == pytest.approx(3.6)
    assert reconcile(state, all_trades(state)) == []


def test_exits_run_while_entries_are_blocked() -> None:
    from scheduler.engine.models import Block

    state = options_state()
    _open(state, "buy", 60_000, "call")
    state.account.blocks["PORTFOLIO_KILL_SWITCH"] = Block(code="PORTFOLIO_KILL_SWITCH", detail="test", since=T0, until=None)
    q = {name(60_000): quote(0.02, bid=0.02, ask=0.02), name(62_000): quote(0.02, bid=0.02, ask=0.02)}
    events = go(state, intents=[intent(OptionLeg("close", name(60_000), "BTC", "call", 60_000, EXP_MS, 0.1),
                                       leg("buy", 62_000))], quotes=q)
    assert one(events, "fill").data["option"]["effect"] == "close"
    assert one(events, "rejected").data["code"] == "PORTFOLIO_KILL_SWITCH"


# ---------------------------------------------------------------------------------------------
# State and reconciliation


def test_state_with_options_round_trips_strictly_and_reconciles(tmp_path: Path) -> None:
    state = options_state()
    _open(state, "buy", 60_000, "call")
    _open(state, "sell", 66_000, "call")
    _open(state, "sell", 57_000, "put", assign=True)
    go(state, EXPIRY, delivery={"BTC": {EXP_MS: 55_000.0}})  # all expire: calls worthless, the put assigns
    _open_late = leg("sell", 50_000, "put", expiry_ms=EXP_MS + 7 * 86_400_000)
    go(state, EXPIRY, intents=[intent(_open_late)], quotes={_open_late.instrument: quote(0.01, bid=0.01, at=EXPIRY)})
    loaded = restart(state, tmp_path)
    assert len(loaded.sleeves["o1"].option_positions) == 1 and "BTC/USDT" in loaded.sleeves["o1"].positions
    assert reconcile(loaded, all_trades(loaded)) == []
    # the trade log's lines load strictly too, spot and option trades alike
    from scheduler.state_store import append_trades, read_trade_log

    append_trades(tmp_path / "state.json", all_trades(loaded))
    assert read_trade_log(tmp_path / "state.json") == sorted(all_trades(loaded), key=lambda t: t.seq)
    # a tampered option position is found
    loaded.sleeves["o1"].option_positions[0].quantity = 0.2
    assert [d.field for d in reconcile(loaded, all_trades(loaded))] == [f"option_positions[{loaded.sleeves['o1'].option_positions[0].id}]"]


def test_a_version_3_state_migrates_to_4(tmp_path: Path) -> None:
    doc = json.loads(options_state().model_dump_json())
    doc["schema_version"] = 3
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    loaded = load_state(path)
    assert loaded is not None and loaded.schema_version == SCHEMA_VERSION
    assert migrate({"schema_version": 3})["schema_version"] == SCHEMA_VERSION


def test_only_an_options_sleeve_may_owe_cash(tmp_path: Path) -> None:
    from scheduler.engine.errors import StateError

    state = options_state()
    state.sleeves["o1"].cash_usd = -5.0
    restart(state, tmp_path)
    doc = json.loads(state.model_dump_json())
    doc["sleeves"]["o1"]["type"] = "spot"
    (tmp_path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(StateError, match="cash_usd"):
        load_state(tmp_path / "state.json")


def test_every_number_in_the_state_is_finite() -> None:
    state = options_state()
    _open(state, "buy", 60_000, "call")
    for value in json.loads(state.model_dump_json())["sleeves"]["o1"]["option_positions"][0].values():
        assert not isinstance(value, float) or math.isfinite(value)


def test_a_spot_buy_in_an_options_sleeve_does_not_spend_the_margin_reserved() -> None:
    from scheduler.engine.step import Mark, SpotIntent

    state = options_state(cash=1000.0)
    k = 66_000
    go(state, intents=[intent(leg("sell", k))], quotes={name(k): quote(0.0105, bid=0.01)})
    free = margin.free_cash_usd(state.sleeves["o1"])  # 1000 + 60 - 1.8 - 663 = 395.2
    assert free == pytest.approx(395.2)
    events = step(state, [SpotIntent("o1", "BTC/USDT", 1, INDEX, T0)], {"BTC/USDT": Mark(INDEX, T0)},
                  sleeve_rules(state), {}, T0, 2, account_rules=LOOSE)
    fill = one(events, "fill")
    assert fill.data["notional_usd"] + fill.data["fee_usd"] <= 0.95 * free + 1e-6


def test_the_drawdown_close_closes_option_positions_too() -> None:
    state = options_state(cash=1000.0)
    k = 60_000
    go(state, intents=[intent(leg("buy", k, quantity=0.1))], quotes={name(k): quote(0.1, bid=0.1, ask=0.1)})
    later = T0 + timedelta(hours=1)
    rules = {"o1": SleeveRules(costs=Costs(0.001, 0.0), max_drawdown_pct=20.0, close_on_drawdown=True)}
    # the option loses 90 %: equity 1000 - 600 - 1.8 + 60 = 458.2, 54 % below the peak
    events = step(state, [], {}, rules, {}, later, 2, account_rules=LOOSE,
                  option_quotes={name(k): quote(0.01, bid=0.01, ask=0.012, at=later)})
    assert one(events, "block").data["code"] == "MAX_DRAWDOWN"
    fill = one(events, "fill")
    assert (fill.data["reason"], fill.data["option"]["price_source"]) == ("drawdown_close", "bid")
    assert state.sleeves["o1"].option_positions == []
