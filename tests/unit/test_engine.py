"""Fill maths and the engine's step (REFERENCE sections 5 and 6): exact numbers and invariants."""

from __future__ import annotations

import inspect
import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.base import MarketRules
from scheduler.engine import fills
from scheduler.engine.fills import BuyFill, Costs, Rejected, SellFill, round_down
from scheduler.engine.models import Block, Position, State, new_sleeve
from scheduler.engine.step import (
    DEFAULT_RULES,
    Event,
    Mark,
    SleeveRules,
    SpotIntent,
    sleeve_equity,
    step,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SYM = "BTC/USDT"
DEFAULT_COSTS = Costs(fee_rate=0.001, slippage_rate=0.0005)
FREE = Costs(fee_rate=0.0, slippage_rate=0.0)
STEP_01 = MarketRules(SYM, amount_step=0.1, min_amount=0.1, min_notional_usd=5.0)
FINE = MarketRules(SYM, amount_step=1e-8, min_amount=1e-8, min_notional_usd=0.0)


def make_state(*ids: str, capital: float = 1000.0) -> State:
    state = State()
    for sid in ids or ("s1",):
        state.sleeves[sid] = new_sleeve(sid, "spot", capital)
    return state


def rules_for(state: State, **kw: object) -> dict[str, SleeveRules]:
    kw.setdefault("costs", DEFAULT_COSTS)
    kw.setdefault("max_drawdown_pct", 60.0)
    return {sid: SleeveRules(**kw) for sid in state.sleeves}  # type: ignore[arg-type]


def intent(signal: int, price: float | None, *, sid: str = "s1", symbol: str = SYM, at: datetime = T0,
           stop: float | None = None) -> SpotIntent:
    return SpotIntent(sid, symbol, signal, price, at, stop)


def _no_account_limits() -> dict[str, object]:
    """These tests are about one sleeve: switch off account-wide caps and breakers where the
    engine has them (the risk rules have their own tests)."""
    if "account_rules" not in inspect.signature(step).parameters:
        return {}
    from scheduler.engine.risk import AccountRules  # type: ignore[import-not-found]

    return {"account_rules": AccountRules(max_position_pct=1e9, max_position_usd=1e18, max_exposure_pct=1e9,
                                          daily_loss_pct=100.0, portfolio_kill_pct=100.0)}


def run(state: State, intents: list[SpotIntent], rules: dict[str, SleeveRules], *, now: datetime = T0,
        marks: dict[str, Mark] | None = None, market: MarketRules | None = STEP_01, cycle: int = 1) -> list[Event]:
    market_rules = {} if market is None else {market.symbol: market}
    return step(state, intents, marks or {}, rules, market_rules, now, cycle, **_no_account_limits())


#: A hang detector, not a speed check: generous so that a loaded CI machine never trips it.
HANG_S = 60.0


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Turn a hang in pure code into a TimeoutError (SIGALRM; no sleeping)."""

    def _raise(signum: int, frame: object) -> None:
        raise TimeoutError(f"did not return within {seconds}s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def drawdown_block(state: State, sid: str = "s1") -> Block | None:
    """The sleeve's MAX_DRAWDOWN block (RiskState.block in schema v1, RiskState.blocks in v2)."""
    risk = state.sleeves[sid].risk
    blocks = getattr(risk, "blocks", None)
    if blocks is not None:
        return blocks.get("MAX_DRAWDOWN")  # type: ignore[no-any-return]
    block = getattr(risk, "block", None)
    return block if block is None or block.code == "MAX_DRAWDOWN" else None


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def only(events: list[Event], kind: str) -> Event:
    found = [e for e in events if e.kind == kind]
    assert len(found) == 1, events
    return found[0]


# ---------------------------------------------------------------------------------------------
# Pure fill maths


def test_buy_fill_exact_numbers_with_default_costs() -> None:
    out = fills.buy(100.0, 950.0, DEFAULT_COSTS, STEP_01)
    assert isinstance(out, BuyFill)
    assert out.fill_price == pytest.approx(100.05, rel=1e-15)  # quote * 1.0005
    # 950 / (100.05 * 1.001) = 9.4857..., rounded DOWN to the 0.1 step
    assert out.quantity == 9.4
    assert out.notional_usd == pytest.approx(940.47, rel=1e-12)
    assert out.fee_usd == pytest.approx(0.94047, rel=1e-12)
    assert out.cost_usd == pytest.approx(941.41047, rel=1e-12)


def test_sell_fill_exact_numbers_with_default_costs() -> None:
    out = fills.sell(110.0, 9.4, 941.41047, DEFAULT_COSTS)
    assert isinstance(out, SellFill)
    assert out.fill_price == pytest.approx(109.945, rel=1e-15)  # quote * 0.9995
    assert out.notional_usd == pytest.approx(1033.483, rel=1e-12)
    assert out.fee_usd == pytest.approx(1.033483, rel=1e-12)
    assert out.proceeds_usd == pytest.approx(1032.449517, rel=1e-12)
    assert out.realized_pnl_usd == pytest.approx(91.039047, rel=1e-12)  # net of both fees


def test_round_trip_at_unchanged_quote_loses_exactly_fees_plus_slippage() -> None:
    b = fills.buy(100.0, 950.0, DEFAULT_COSTS, STEP_01)
    assert isinstance(b, BuyFill)
    s = fills.sell(100.0, b.quantity, b.cost_usd, DEFAULT_COSTS)
    assert isinstance(s, SellFill)
    slippage_cost = b.quantity * (b.fill_price - 100.0) + b.quantity * (100.0 - s.fill_price)
    fees = b.fee_usd + s.fee_usd
    assert s.realized_pnl_usd < 0
    assert -s.realized_pnl_usd == pytest.approx(fees + slippage_cost, rel=1e-12)
    # 0.1 % + 0.1 % fees and 2 x 0.05 % slippage: 0.3 % of the quote notional, 9.4 * 100 * 0.003
    assert -s.realized_pnl_usd == pytest.approx(2.82, rel=1e-12)


def test_slippage_is_always_against_the_trader() -> None:
    b = fills.buy(200.0, 1000.0, DEFAULT_COSTS, FINE)
    s = fills.sell(200.0, 1.0, 200.0, DEFAULT_COSTS)
    assert isinstance(b, BuyFill) and isinstance(s, SellFill)
    assert b.fill_price == pytest.approx(200.1, rel=1e-15) and b.fill_price > 200.0
    assert s.fill_price == pytest.approx(199.9, rel=1e-15) and s.fill_price < 200.0


@pytest.mark.parametrize("quantity,step,expected", [
    (9.4857, 0.1, 9.4), (0.3, 0.1, 0.3), (0.29999999999, 0.1, 0.3), (0.123456789, 1e-8, 0.12345678),
    (7.9, 1.0, 7.0), (12.0, 5.0, 10.0), (0.99, 0.25, 0.75), (1.5, 0.0, 1.5),
])
def test_round_down(quantity: float, step: float, expected: float) -> None:
    assert round_down(quantity, step) == expected


def test_buy_rounds_down_to_the_step_and_never_overspends() -> None:
    rules = MarketRules(SYM, amount_step=0.001, min_amount=0.001, min_notional_usd=1.0)
    out = fills.buy(333.33, 1000.0, DEFAULT_COSTS, rules)
    assert isinstance(out, BuyFill)
    assert out.quantity == 2.995  # 1000 / (333.33 * 1.0005 * 1.001) = 2.99551...
    assert out.cost_usd <= 1000.0


def test_buy_below_minimum_amount_is_rejected() -> None:
    rules = MarketRules(SYM, amount_step=0.1, min_amount=1.0, min_notional_usd=5.0)
    out = fills.buy(100.0, 95.0, DEFAULT_COSTS, rules)  # buys 0.9 units
    assert isinstance(out, Rejected)
    assert out.code == "BELOW_MIN_AMOUNT"
    assert out.detail == "95.00 USD buys 0.9 BTC/USDT, below the minimum amount 1.0"


def test_buy_that_rounds_to_zero_is_rejected() -> None:
    out = fills.buy(100.0, 5.0, DEFAULT_COSTS, STEP_01)
    assert isinstance(out, Rejected) and out.code == "BELOW_MIN_AMOUNT"


def test_buy_below_minimum_notional_is_rejected() -> None:
    out = fills.buy(100.0, 4.0, DEFAULT_COSTS, DEFAULT_RULES)
    assert isinstance(out, Rejected)
    assert out.code == "BELOW_MIN_NOTIONAL"
    assert out.detail.startswith("order of 4.00 USD is below *'s minimum notional 5.00 USD")


@pytest.mark.parametrize("price", [None, 0, 0.0, -1.0, math.nan, math.inf, -math.inf])
def test_no_fill_at_an_unusable_price(price: float | None) -> None:
    b = fills.buy(price, 1000.0, DEFAULT_COSTS, STEP_01)  # type: ignore[arg-type]
    s = fills.sell(price, 1.0, 100.0, DEFAULT_COSTS)  # type: ignore[arg-type]
    assert isinstance(b, Rejected) and b.code == "NO_PRICE"
    assert isinstance(s, Rejected) and s.code == "NO_PRICE"
    assert f"got {price!r}" in b.detail and f"got {price!r}" in s.detail


@pytest.mark.parametrize("budget", [0.0, -10.0, math.nan, math.inf])
def test_no_buy_without_a_usable_budget(budget: float) -> None:
    out = fills.buy(100.0, budget, DEFAULT_COSTS, STEP_01)
    assert isinstance(out, Rejected) and out.code == "NO_CASH"


def test_buy_of_a_cheap_coin_with_a_fine_step_returns() -> None:
    # 9,500 USD at 0.001 USD/unit: 9.49 million units, still exactly representable to the 1e-8 step.
    with deadline(HANG_S):
        out = fills.buy(0.001, 9500.0, DEFAULT_COSTS, DEFAULT_RULES)
    assert isinstance(out, BuyFill)
    assert out.cost_usd <= 9500.0
    assert out.quantity == pytest.approx(9500.0 / (0.001 * 1.0005 * 1.001), rel=1e-9)


@pytest.mark.timeout(30)
def test_buy_at_a_micro_price_does_not_hang() -> None:
    with deadline(HANG_S):
        out = fills.buy(1e-06, 9500.0, DEFAULT_COSTS, DEFAULT_RULES)
    assert isinstance(out, BuyFill)
    assert out.cost_usd <= 9500.0


@pytest.mark.timeout(30)
def test_step_buy_at_a_micro_price_does_not_hang() -> None:
    state = make_state(capital=10_000.0)
    with deadline(HANG_S):
        events = run(state, [intent(1, 1e-06, symbol="PEPE/USDT")], rules_for(state), market=None)
    assert kinds(events) == ["fill"]


def test_full_fraction_buy_never_makes_cash_negative() -> None:
    state = make_state(capital=1085971.0581719999)
    rules = rules_for(state, sizing_value=1.0)
    events = run(state, [intent(1, 12000.0)], rules, market=FINE)
    assert kinds(events) == ["fill"]
    assert state.sleeves["s1"].cash_usd >= 0.0


# ---------------------------------------------------------------------------------------------
# The engine: buys and sells through step()


def test_step_buy_then_sell_exact_accounting() -> None:
    state = make_state()
    rules = rules_for(state)
    events = run(state, [intent(1, 100.0)], rules)
    fill = only(events, "fill")
    sleeve = state.sleeves["s1"]
    assert fill.data["side"] == "buy" and fill.data["seq"] == 1 and fill.data["quantity"] == 9.4
    assert sleeve.cash_usd == pytest.approx(1000 - 941.41047, rel=1e-12)
    pos = sleeve.positions[SYM]
    assert pos.quantity == 9.4
    assert pos.entry_price == pytest.approx(100.05, rel=1e-15)
    assert pos.cost_basis_usd == pytest.approx(941.41047, rel=1e-12)  # entry fee included
    assert pos.entry_fee_usd == pytest.approx(0.94047, rel=1e-12)
    assert pos.mark_price == 100.0
    assert sleeve.fees_paid_usd == pytest.approx(0.94047, rel=1e-12)

    events = run(state, [intent(-1, 110.0, at=T0 + timedelta(hours=1))], rules, now=T0 + timedelta(hours=1), cycle=2)
    fill = only(events, "fill")
    assert fill.data["side"] == "sell" and fill.data["seq"] == 2 and fill.data["cycle"] == 2
    assert fill.data["realized_pnl_usd"] == pytest.approx(91.039047, rel=1e-12)
    assert sleeve.positions == {}
    assert sleeve.cash_usd == pytest.approx(1000 + 91.039047, rel=1e-12)
    assert sleeve.realized_pnl_usd == pytest.approx(91.039047, rel=1e-12)
    assert sleeve.fees_paid_usd == pytest.approx(0.94047 + 1.033483, rel=1e-12)
    assert (sleeve.risk.wins, sleeve.risk.losses, sleeve.trade_count) == (1, 0, 2)
    assert [t.seq for t in sleeve.trades] == [1, 2]
    assert state.next_trade_seq == 3


def test_step_round_trip_at_unchanged_price_is_a_loss() -> None:
    state = make_state()
    rules = rules_for(state)
    run(state, [intent(1, 100.0)], rules)
    events = run(state, [intent(-1, 100.0)], rules, cycle=2)
    fill = only(events, "fill")
    assert fill.data["realized_pnl_usd"] == pytest.approx(-2.82, rel=1e-12)
    sleeve = state.sleeves["s1"]
    assert sleeve.cash_usd == pytest.approx(1000 - 2.82, rel=1e-12)
    assert (sleeve.risk.wins, sleeve.risk.losses, sleeve.risk.consecutive_losses) == (0, 1, 1)


@pytest.mark.parametrize("price", [None, 0.0, -5.0, math.nan, math.inf])
def test_step_no_fill_at_an_unusable_price(price: float | None) -> None:
    state = make_state()
    events = run(state, [intent(1, price)], rules_for(state))
    assert kinds(events) == ["rejected"]
    assert events[0].data["code"] == "NO_PRICE"
    assert state.sleeves["s1"].cash_usd == 1000.0 and state.sleeves["s1"].positions == {}
    assert state.next_trade_seq == 1


def test_step_no_sell_at_an_unusable_price_keeps_the_position() -> None:
    state = make_state()
    rules = rules_for(state)
    run(state, [intent(1, 100.0)], rules)
    events = run(state, [intent(-1, 0.0)], rules, cycle=2)
    assert [e.data.get("code") for e in events if e.kind == "rejected"] == ["NO_PRICE"]
    pos = state.sleeves["s1"].positions[SYM]
    assert pos.quantity == 9.4 and pos.mark_price == 100.0  # a 0 price is never used as a mark


def test_step_stale_quote_is_rejected() -> None:
    state = make_state()
    rules = rules_for(state, max_quote_age=timedelta(hours=2))
    old = T0 - timedelta(hours=2, seconds=1)
    events = run(state, [intent(1, 100.0, at=old)], rules)
    rejected = only(events, "rejected")
    assert rejected.data["code"] == "STALE_PRICE"
    assert rejected.data["detail"] == "quote from 2024-05-01T09:59:59Z is older than 2:00:00"
    assert state.sleeves["s1"].positions == {}


def test_step_quote_exactly_max_age_old_is_accepted() -> None:
    state = make_state()
    rules = rules_for(state, max_quote_age=timedelta(hours=2))
    events = run(state, [intent(1, 100.0, at=T0 - timedelta(hours=2))], rules)
    assert only(events, "fill").data["side"] == "buy"


def test_step_sell_without_position_is_a_hold_not_a_short() -> None:
    state = make_state()
    events = run(state, [intent(-1, 100.0)], rules_for(state))
    assert kinds(events) == ["hold"]
    assert events[0].data["note"] == "sell signal with no position (long-only)"
    sleeve = state.sleeves["s1"]
    assert sleeve.positions == {} and sleeve.cash_usd == 1000.0 and sleeve.trades == []


def test_step_buy_while_long_is_a_hold() -> None:
    state = make_state()
    rules = rules_for(state)
    run(state, [intent(1, 100.0)], rules)
    cash = state.sleeves["s1"].cash_usd
    events = run(state, [intent(1, 90.0)], rules, cycle=2)
    assert kinds(events) == ["hold"]
    assert events[0].data["note"] == "buy signal while already long"
    assert state.sleeves["s1"].cash_usd == cash
    assert state.sleeves["s1"].positions[SYM].quantity == 9.4


def test_step_hold_signal_changes_nothing_but_the_mark() -> None:
    state = make_state()
    rules = rules_for(state)
    run(state, [intent(1, 100.0)], rules)
    events = run(state, [intent(0, 120.0, at=T0 + timedelta(minutes=1))], rules, cycle=2)
    assert kinds(events) == ["hold"]
    assert state.sleeves["s1"].positions[SYM].mark_price == 120.0
    assert state.next_trade_seq == 2


def test_sizing_fixed_fraction_spends_95_percent_of_cash() -> None:
    state = make_state(capital=10_000.0)
    run(state, [intent(1, 100.0)], rules_for(state), market=FINE)
    pos = state.sleeves["s1"].positions[SYM]
    assert pos.cost_basis_usd <= 9500.0
    assert pos.cost_basis_usd == pytest.approx(9500.0, abs=100.2 * 1e-8 * 2)
    assert state.sleeves["s1"].cash_usd == pytest.approx(500.0, abs=100.2 * 1e-8 * 2)


def test_sizing_fixed_fraction_custom_value() -> None:
    state = make_state(capital=1000.0)
    rules = rules_for(state, sizing_value=0.5)
    run(state, [intent(1, 100.0)], rules)
    # 500 / 100.15005 = 4.9925..., step 0.1 -> 4.9
    assert state.sleeves["s1"].positions[SYM].quantity == 4.9


def test_sizing_fixed_usd() -> None:
    state = make_state(capital=1000.0)
    rules = rules_for(state, sizing_mode="fixed_usd", sizing_value=250.0)
    run(state, [intent(1, 100.0)], rules)
    pos = state.sleeves["s1"].positions[SYM]
    assert pos.quantity == 2.4  # 250 / 100.15005 = 2.496...
    assert pos.cost_basis_usd == pytest.approx(2.4 * 100.05 * 1.001, rel=1e-12)
    assert state.sleeves["s1"].cash_usd == pytest.approx(1000 - 2.4 * 100.05 * 1.001, rel=1e-12)


def test_sizing_fixed_usd_capped_by_cash() -> None:
    state = make_state(capital=100.0)
    rules = rules_for(state, sizing_mode="fixed_usd", sizing_value=5000.0)
    run(state, [intent(1, 10.0)], rules)
    pos = state.sleeves["s1"].positions[SYM]
    assert pos.quantity == 9.9  # 100 / (10.005 * 1.001) = 9.985...
    assert state.sleeves["s1"].cash_usd >= 0


def test_step_rejects_below_min_notional_with_a_reason() -> None:
    state = make_state(capital=4.0)
    events = run(state, [intent(1, 100.0)], rules_for(state), market=None)  # DEFAULT_RULES: min 5 USD
    rejected = only(events, "rejected")
    assert rejected.data["code"] == "BELOW_MIN_NOTIONAL"
    assert f"below {rejected.data['symbol']}'s minimum notional 5.00 USD" in rejected.data["detail"]  # not "*"
    assert state.sleeves["s1"].cash_usd == 4.0


def test_trade_seq_unique_and_increasing_across_sleeves() -> None:
    state = make_state("a", "b", "c")
    rules = rules_for(state)
    seqs: list[int] = []
    for cycle in range(1, 7):
        sig = 1 if cycle % 2 else -1
        price = 100.0 + cycle
        events = run(state, [intent(sig, price, sid=s) for s in ("a", "b", "c")], rules, cycle=cycle)
        seqs += [e.data["seq"] for e in events if e.kind == "fill"]
    assert seqs == list(range(1, 19))
    assert state.next_trade_seq == 19
    all_trades = sorted(t.seq for s in state.sleeves.values() for t in s.trades)
    assert all_trades == list(range(1, 19))
    assert all(s.trade_count == 6 for s in state.sleeves.values())


def test_recent_trades_are_capped_but_counted() -> None:
    state = make_state()
    rules = rules_for(state, recent_trades_kept=3)
    for cycle in range(1, 9):
        run(state, [intent(1 if cycle % 2 else -1, 100.0)], rules, cycle=cycle)
    sleeve = state.sleeves["s1"]
    assert [t.seq for t in sleeve.trades] == [6, 7, 8]
    assert sleeve.trade_count == 8


# ---------------------------------------------------------------------------------------------
# The drawdown kill switch


def _half_invested(capital: float = 1000.0) -> State:
    """Cash 500 plus 1 unit marked at 500: equity 1000 at the peak."""
    state = make_state(capital=capital)
    sleeve = state.sleeves["s1"]
    sleeve.cash_usd = 500.0
    sleeve.positions[SYM] = Position(symbol=SYM, quantity=1.0, entry_price=500.0, cost_basis_usd=500.0,
                                     entry_fee_usd=0.0, opened_at=T0, mark_price=500.0, mark_at=T0)
    return state


def test_drawdown_equal_to_the_limit_does_not_trip() -> None:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=25.0)
    events = run(state, [], rules, marks={SYM: Mark(250.0, T0)})
    assert events == []
    assert state.sleeves["s1"].risk.drawdown_pct == 25.0
    assert drawdown_block(state) is None


def test_drawdown_beyond_the_limit_trips_for_24h() -> None:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=25.0)
    events = run(state, [], rules, marks={SYM: Mark(249.99, T0)})
    block = only(events, "block")
    assert block.data["code"] == "MAX_DRAWDOWN"
    assert block.data["until"] == "2024-05-02T12:00:00Z"
    assert block.data["detail"] == "equity 749.99 USD is 25.00% below its peak 1000.00 USD (limit 25%)"
    b = drawdown_block(state)
    assert b is not None and (b.code, b.since, b.until) == ("MAX_DRAWDOWN", T0, T0 + timedelta(hours=24))
    assert state.sleeves["s1"].risk.drawdown_pct == pytest.approx(25.001, rel=1e-12)
    assert state.sleeves["s1"].positions[SYM].quantity == 1.0  # close_on_drawdown is off by default


def _tripped() -> tuple[State, dict[str, SleeveRules]]:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=25.0)
    run(state, [], rules, marks={SYM: Mark(200.0, T0)})
    assert drawdown_block(state) is not None
    return state, rules


def test_tripped_breaker_blocks_entries() -> None:
    state, rules = _tripped()
    later = T0 + timedelta(hours=23, minutes=59, seconds=59)
    events = run(state, [intent(1, 200.0, symbol="ETH/USDT", at=later)], rules, now=later, market=None)
    rejected = only(events, "rejected")
    assert rejected.data["code"] == "MAX_DRAWDOWN"
    assert rejected.data["detail"].startswith("entries blocked until 2024-05-02T12:00:00Z: equity 700.00 USD")
    assert "ETH/USDT" not in state.sleeves["s1"].positions
    assert state.sleeves["s1"].cash_usd == 500.0


def test_tripped_breaker_still_lets_exits_run() -> None:
    state, rules = _tripped()
    later = T0 + timedelta(hours=1)
    events = run(state, [intent(-1, 200.0, at=later)], rules, now=later, market=None)
    fill = only(events, "fill")
    assert fill.data["side"] == "sell" and fill.data["reason"] == "signal"
    assert state.sleeves["s1"].positions == {}
    assert state.sleeves["s1"].cash_usd == pytest.approx(500.0 + 200.0 * 0.9995 * 0.999, rel=1e-12)


def test_exit_runs_in_the_same_cycle_the_breaker_trips() -> None:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=25.0)
    events = run(state, [intent(-1, 200.0)], rules, market=None)
    assert kinds(events)[:2] == ["block", "fill"]
    assert events[1].data["side"] == "sell"
    assert state.sleeves["s1"].positions == {}


def test_breaker_lifts_at_the_exact_until() -> None:
    state, rules = _tripped()
    until = T0 + timedelta(hours=24)
    just_before = until - timedelta(microseconds=1)
    # The price has recovered; the block still holds until its time is up.
    ev = run(state, [intent(1, 500.0, symbol="ETH/USDT", at=just_before)], rules, now=just_before,
             marks={SYM: Mark(500.0, just_before)}, market=None)
    assert only(ev, "rejected").data["code"] == "MAX_DRAWDOWN"
    ev = run(state, [intent(1, 500.0, symbol="ETH/USDT", at=until)], rules, now=until,
             marks={SYM: Mark(500.0, until)}, market=None)
    assert only(ev, "unblock").data == {"code": "MAX_DRAWDOWN"}
    assert only(ev, "fill").data["symbol"] == "ETH/USDT"
    assert drawdown_block(state) is None


def test_close_on_drawdown_closes_every_position() -> None:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=25.0, close_on_drawdown=True)
    events = run(state, [], rules, marks={SYM: Mark(200.0, T0)})
    assert kinds(events) == ["block", "fill"]
    assert events[1].data["reason"] == "drawdown_close"
    assert events[1].data["quote_price"] == 200.0
    assert state.sleeves["s1"].positions == {}


def test_unpriced_position_makes_equity_unknown_and_never_trips() -> None:
    state = _half_invested()
    sleeve = state.sleeves["s1"]
    sleeve.positions[SYM].mark_price = None
    sleeve.positions[SYM].mark_at = None
    rules = rules_for(state, max_drawdown_pct=1.0)
    assert sleeve_equity(sleeve) is None
    events = run(state, [], rules, marks={SYM: Mark(None, T0)})
    assert events == []
    assert sleeve.risk.drawdown_pct is None
    assert drawdown_block(state) is None
    assert sleeve.risk.peak_equity_usd == 1000.0


@pytest.mark.parametrize("bad", [None, 0.0, -1.0, math.nan, math.inf])
def test_failed_price_fetch_never_fakes_a_drawdown(bad: float | None) -> None:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=1.0)
    events = run(state, [], rules, marks={SYM: Mark(bad, T0 + timedelta(minutes=5))})
    assert events == []
    assert state.sleeves["s1"].positions[SYM].mark_price == 500.0
    assert state.sleeves["s1"].risk.drawdown_pct == 0.0


def test_sleeve_equity_counts_cash_and_marked_positions() -> None:
    state = _half_invested()
    assert sleeve_equity(state.sleeves["s1"]) == 1000.0
    state.sleeves["s1"].positions[SYM].mark_price = 650.0
    assert sleeve_equity(state.sleeves["s1"]) == 1150.0


def test_peak_follows_new_highs() -> None:
    state = _half_invested()
    rules = rules_for(state, max_drawdown_pct=25.0)
    run(state, [], rules, marks={SYM: Mark(700.0, T0)})
    assert state.sleeves["s1"].risk.peak_equity_usd == 1200.0
    events = run(state, [], rules, marks={SYM: Mark(400.0, T0 + timedelta(hours=1))}, now=T0 + timedelta(hours=1))
    # 900 is 25 % below 1200: equal to the limit, no trip
    assert events == [] and state.sleeves["s1"].risk.drawdown_pct == 25.0


# ---------------------------------------------------------------------------------------------
# Properties, over the whole domain (buys of any size, sizing fractions up to 1).

signals = st.lists(
    st.tuples(st.sampled_from([1, -1, 0]), st.floats(min_value=0.01, max_value=1e6, allow_nan=False)),
    min_size=1, max_size=30,
)


def _value_at(state: State, price: float) -> float:
    sleeve = state.sleeves["s1"]
    pos = sleeve.positions.get(SYM)
    return sleeve.cash_usd + (pos.quantity * price if pos else 0.0)


@settings(max_examples=200, deadline=None)
@given(seq=signals, capital=st.floats(min_value=10.0, max_value=1e5))
def test_zero_costs_conserve_value_at_the_fill_price(seq: list[tuple[int, float]], capital: float) -> None:
    state = make_state(capital=capital)
    rules = rules_for(state, costs=FREE, max_drawdown_pct=100.0)
    for i, (sig, price) in enumerate(seq):
        now = T0 + timedelta(hours=i)
        before = _value_at(state, price)
        with deadline(HANG_S):
            events = run(state, [intent(sig, price, at=now)], rules, now=now, market=FINE, cycle=i + 1)
        after = _value_at(state, price)
        assert after == pytest.approx(before, rel=1e-12, abs=1e-9)
        for e in events:
            if e.kind == "fill":
                assert e.data["fill_price"] == price and e.data["fee_usd"] == 0.0
        assert state.sleeves["s1"].cash_usd >= 0.0


@settings(max_examples=200, deadline=None)
@given(seq=st.lists(st.sampled_from([1, -1, 0]), min_size=1, max_size=30),
       price=st.floats(min_value=0.01, max_value=1e6), capital=st.floats(min_value=10.0, max_value=1e5),
       fee_rate=st.floats(min_value=0.0, max_value=0.01))
def test_at_unchanged_prices_equity_loss_equals_fees(seq: list[int], price: float, capital: float,
                                                     fee_rate: float) -> None:
    state = make_state(capital=capital)
    rules = rules_for(state, costs=Costs(fee_rate=fee_rate, slippage_rate=0.0), max_drawdown_pct=100.0)
    fees = 0.0
    for i, sig in enumerate(seq):
        with deadline(HANG_S):
            events = run(state, [intent(sig, price)], rules, market=FINE, cycle=i + 1)
        fees += sum(e.data["fee_usd"] for e in events if e.kind == "fill")
        equity = sleeve_equity(state.sleeves["s1"])
        assert equity is not None
        assert capital - equity == pytest.approx(fees, rel=1e-9, abs=capital * 1e-12)
        assert state.sleeves["s1"].cash_usd >= 0.0
    assert state.sleeves["s1"].fees_paid_usd == pytest.approx(fees, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(seq=st.lists(st.sampled_from([1, -1, 0]), min_size=1, max_size=30),
       price=st.floats(min_value=0.01, max_value=1e6), capital=st.floats(min_value=10.0, max_value=1e5))
def test_at_unchanged_prices_equity_loss_equals_fees_plus_slippage(seq: list[int], price: float,
                                                                   capital: float) -> None:
    state = make_state(capital=capital)
    rules = rules_for(state, max_drawdown_pct=100.0)  # default 0.1 % fee, 0.05 % slippage
    costs = 0.0
    for i, sig in enumerate(seq):
        with deadline(HANG_S):
            events = run(state, [intent(sig, price)], rules, market=FINE, cycle=i + 1)
        for e in events:
            if e.kind == "fill":
                costs += e.data["fee_usd"] + abs(e.data["fill_price"] - price) * e.data["quantity"]
        equity = sleeve_equity(state.sleeves["s1"])
        assert equity is not None
        assert capital - equity == pytest.approx(costs, rel=1e-9, abs=capital * 1e-12)


@settings(max_examples=200, deadline=None)
@given(seq=signals, capital=st.floats(min_value=1.0, max_value=1e5),
       fraction=st.floats(min_value=0.01, max_value=1.0),
       step_size=st.sampled_from([1e-8, 1e-5, 0.001, 0.1, 1.0]))
def test_cash_never_goes_negative(seq: list[tuple[int, float]], capital: float, fraction: float,
                                  step_size: float) -> None:
    state = make_state(capital=capital)
    rules = rules_for(state, sizing_value=fraction, max_drawdown_pct=100.0)
    market = MarketRules(SYM, amount_step=step_size, min_amount=step_size, min_notional_usd=0.0)
    for i, (sig, price) in enumerate(seq):
        now = T0 + timedelta(hours=i)
        with deadline(HANG_S):
            run(state, [intent(sig, price, at=now)], rules, now=now, market=market, cycle=i + 1)
        assert state.sleeves["s1"].cash_usd >= 0.0
        for pos in state.sleeves["s1"].positions.values():
            assert pos.quantity > 0


@pytest.mark.timeout(20)
@pytest.mark.parametrize("quote,budget,costs", [
    (0.010000000000000002, 5456586267146067.0, fills.Costs(0.0, 0.0)),  # found by hypothesis: hung
    (0.01, 1e12, fills.Costs(0.001, 0.0005)),
    (608800.2359759423, 4376686801071850.5, fills.Costs(0.0, 0.0)),
])
def test_a_buy_huge_next_to_its_step_ends_and_spends_at_most_the_budget(quote: float, budget: float,
                                                                       costs: fills.Costs) -> None:
    # 5e25 steps of 1e-8: taking one step off a float quantity this large leaves it unchanged,
    # so the step-by-step correction of an overspend never ended
    got = fills.buy(quote, budget, costs, FINE)
    assert isinstance(got, fills.BuyFill)
    assert got.notional_usd + got.fee_usd <= budget
    assert got.notional_usd + got.fee_usd >= budget * (1 - 1e-12)  # and nearly all of it


def test_a_step_leaves_no_cycle_for_the_collector() -> None:
    """Everything a step builds (its book, the option desk, events) is freed by reference
    counting when it returns: a cycle per step would pile up until the cyclic collector ran
    (a long replay paid for that in collector passes)."""
    import gc

    state = make_state()
    rules = rules_for(state)
    was = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        for k in range(50):
            at = T0 + timedelta(hours=k)
            signal = 1 if k % 2 == 0 else -1  # a fill every step, and a block or two along the way
            step(state, [intent(signal, 100.0 + k, at=at)], {SYM: Mark(100.0 + k, at)}, rules, {SYM: FINE}, at, k)
        assert state.sleeves["s1"].trade_count > 10
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_a_sleeve_worth_nothing_keeps_its_peak_when_a_drawdown_block_ends_or_is_reset() -> None:
    """An options sleeve can owe cash (equity <= 0). Its drawdown peak must stay > 0 (the schema's
    rule, checked before every save): the cool-off's end and a reset keep the old peak."""
    from scheduler.engine.risk import reset_breaker

    state = State()
    state.sleeves["o"] = new_sleeve("o", "options", 1000.0)
    sleeve = state.sleeves["o"]
    sleeve.cash_usd = -50.0
    sleeve.risk.blocks["MAX_DRAWDOWN"] = Block(code="MAX_DRAWDOWN", detail="x", since=T0 - timedelta(days=2),
                                              until=T0 - timedelta(hours=1))
    step(state, [], {}, {"o": SleeveRules(costs=DEFAULT_COSTS, max_drawdown_pct=60.0)}, {}, T0, 1,
         **_no_account_limits())
    assert sleeve.risk.peak_equity_usd == 1000.0
    State.model_validate(state.model_dump())  # what every save checks first
    record = reset_breaker(state, "o", -50.0, T0, "test")
    assert sleeve.risk.peak_equity_usd == 1000.0 and "drawdown peak kept" in record.detail
    State.model_validate(state.model_dump())
