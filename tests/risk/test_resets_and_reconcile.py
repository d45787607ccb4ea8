"""A person's resets (reset_breaker, reset_kill_switch) and reconcile() (REFERENCE sections 6, 11).

Resets lift only what their scope says, rebase the peak they must (else the rule would trip
again at once), never open or close a position, and leave an audit record with the state
before. reconcile() replays the trade log and names every field the books disagree on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.engine import risk
from scheduler.engine.models import State, Trade
from scheduler.engine.risk import Difference, reconcile, reset_breaker, reset_kill_switch
from scheduler.engine.step import account_equity, sleeve_equity
from tests.risk.helpers import (
    BTC,
    ETH,
    LOOSE,
    T0,
    buy,
    go,
    hold,
    make_state,
    restart,
    rules_for,
    sell,
)

T1 = T0 + timedelta(hours=1)


def _drawn_down() -> State:
    """Sleeve a: MAX_DRAWDOWN tripped at T0 (1 BTC fell from 500 to 200: equity 700, peak 1000)
    plus a CONSECUTIVE_LOSSES block and a streak of 2. Sleeve b: 1000 cash."""
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", BTC, 1.0, 500.0, cash=500.0)
    go(state, rules_for(state.sleeves, max_drawdown_pct=25.0), T0, prices={BTC: 200.0}, account_rules=LOOSE)
    r = state.sleeves["a"].risk
    risk.add_block(r.blocks, "CONSECUTIVE_LOSSES", "5 losing trades in a row", T0, T0 + timedelta(hours=1))
    r.consecutive_losses = 2
    assert sorted(r.blocks) == ["CONSECUTIVE_LOSSES", "MAX_DRAWDOWN"]
    return state


def test_reset_breaker_lifts_the_sleeves_blocks_and_rebases_its_peak() -> None:
    state = _drawn_down()
    a = state.sleeves["a"]
    positions_before, cash_before = a.model_dump()["positions"], a.cash_usd
    record = reset_breaker(state, "a", sleeve_equity(a), T1, "alice")

    assert (record.at, record.action, record.scope, record.by) == (T1, "reset_breaker", "a", "alice")
    assert record.detail == ("lifted CONSECUTIVE_LOSSES, MAX_DRAWDOWN on a; loss streak set to 0; "
                             "drawdown peak rebased to 700.00 USD; no position was opened or closed")
    assert record.before == {
        "blocks": {
            "MAX_DRAWDOWN": {"code": "MAX_DRAWDOWN", "since": "2024-05-01T12:00:00Z", "until": "2024-05-02T12:00:00Z",
                             "detail": "equity 700.00 USD is 30.00% below its peak 1000.00 USD (limit 25%)"},
            "CONSECUTIVE_LOSSES": {"code": "CONSECUTIVE_LOSSES", "since": "2024-05-01T12:00:00Z",
                                   "until": "2024-05-01T13:00:00Z", "detail": "5 losing trades in a row"},
        },
        "peak_equity_usd": 1000.0,
        "consecutive_losses": 2,
    }
    assert state.account.audit == [record]
    assert (a.risk.blocks, a.risk.consecutive_losses, a.risk.peak_equity_usd) == ({}, 0, 700.0)
    assert a.model_dump()["positions"] == positions_before and a.cash_usd == cash_before

    # At the same price the rebased peak does not trip again, and entries go through.
    rules = rules_for(state.sleeves, max_drawdown_pct=25.0)
    events = go(state, rules, T1, intents=[buy("a", ETH, 100.0, T1)], prices={BTC: 200.0}, account_rules=LOOSE)
    assert [e.kind for e in events] == ["fill"]
    equity = sleeve_equity(a)
    assert equity is not None and a.risk.blocks == {}
    assert a.risk.drawdown_pct == pytest.approx((700.0 - equity) / 700.0 * 100, rel=1e-9)  # only the buy's costs


def test_reset_breaker_leaves_account_blocks_and_other_sleeves() -> None:
    state = _drawn_down()
    risk.add_block(state.sleeves["b"].risk.blocks, "CONSECUTIVE_LOSSES", "b's own", T0, T1 + timedelta(hours=1))
    risk.add_block(state.account.blocks, "PORTFOLIO_KILL_SWITCH", "account", T0, None)
    reset_breaker(state, "a", sleeve_equity(state.sleeves["a"]), T1, "alice")
    assert sorted(state.account.blocks) == ["PORTFOLIO_KILL_SWITCH"]
    assert sorted(state.sleeves["b"].risk.blocks) == ["CONSECUTIVE_LOSSES"]
    events = go(state, rules_for(state.sleeves, max_drawdown_pct=25.0), T1, intents=[buy("a", ETH, 100.0, T1)],
                prices={BTC: 200.0}, account_rules=LOOSE)
    assert [(e.kind, e.data["code"]) for e in events] == [("rejected", "PORTFOLIO_KILL_SWITCH")]


def test_reset_breaker_without_a_drawdown_block_keeps_the_peak() -> None:
    state = make_state({"a": 1000.0})
    r = state.sleeves["a"].risk
    risk.add_block(r.blocks, "CONSECUTIVE_LOSSES", "streak", T0, T1)
    record = reset_breaker(state, "a", 900.0, T0, "alice")
    assert (r.blocks, r.peak_equity_usd) == ({}, 1000.0)
    assert record.detail == "lifted CONSECUTIVE_LOSSES on a; loss streak set to 0; no position was opened or closed"


def test_reset_breaker_with_an_unknown_equity_lifts_but_cannot_rebase() -> None:
    state = _drawn_down()
    reset_breaker(state, "a", None, T1, "alice")
    assert (state.sleeves["a"].risk.blocks, state.sleeves["a"].risk.peak_equity_usd) == ({}, 1000.0)


def test_reset_breaker_of_an_unknown_strategy_raises() -> None:
    state = make_state({"a": 1000.0})
    with pytest.raises(KeyError):
        reset_breaker(state, "nope", 1000.0, T0, "alice")
    assert state.account.audit == []


def _killed() -> State:
    """Default account rules: 2 BTC fell from 500 to 250 (account 2000 -> 1500), tripping
    DAILY_LOSS and PORTFOLIO_KILL_SWITCH at T0 + 1h."""
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", BTC, 2.0, 500.0, cash=0.0)
    rules = rules_for(state.sleeves)
    go(state, rules, T0, prices={BTC: 500.0})
    go(state, rules, T1, prices={BTC: 250.0})
    assert sorted(state.account.blocks) == ["DAILY_LOSS", "PORTFOLIO_KILL_SWITCH"]
    return state


def test_reset_kill_switch_lifts_only_the_kill_switch_and_rebases_the_account_peak() -> None:
    state = _killed()
    rules = rules_for(state.sleeves)
    positions_before = {sid: s.model_dump()["positions"] for sid, s in state.sleeves.items()}
    before_blocks = {k: v.model_dump(mode="json") for k, v in state.account.blocks.items()}
    t = T1 + timedelta(minutes=30)
    record = reset_kill_switch(state, account_equity(state, ["a", "b"]), t, "bob")

    assert (record.at, record.action, record.scope, record.by) == (t, "reset_kill_switch", "account", "bob")
    assert record.before == {"blocks": before_blocks, "peak_equity_usd": 2000.0}
    assert before_blocks["PORTFOLIO_KILL_SWITCH"]["until"] is None
    assert record.detail == ("lifted PORTFOLIO_KILL_SWITCH; account peak rebased to 1500.00 USD; other blocks stay; "
                             "no position was opened or closed")
    assert sorted(state.account.blocks) == ["DAILY_LOSS"]
    assert state.account.peak_equity_usd == 1500.0
    assert {sid: s.model_dump()["positions"] for sid, s in state.sleeves.items()} == positions_before
    assert state.account.audit == [record]

    # The same price does not trip it again; the daily loss still blocks until midnight.
    events = go(state, rules, t, intents=[buy("b", ETH, 100.0, t)], prices={BTC: 250.0})
    assert [(e.kind, e.data["code"]) for e in events] == [("rejected", "DAILY_LOSS")]
    midnight = T0.replace(hour=0) + timedelta(days=1)
    events = go(state, rules, midnight, intents=[buy("b", ETH, 100.0, midnight)], prices={BTC: 250.0})
    assert [e.kind for e in events] == ["unblock", "fill"]


def test_reset_kill_switch_when_not_active_says_so() -> None:
    state = make_state({"a": 1000.0})
    record = reset_kill_switch(state, 1000.0, T0, "bob")
    assert record.detail == ("the kill switch was not active; account peak rebased to 1000.00 USD; other blocks "
                             "stay; no position was opened or closed")
    assert record.before == {"blocks": {}, "peak_equity_usd": None}


def test_resets_and_their_audit_survive_a_restart(tmp_path: Path) -> None:
    state = _killed()
    record = reset_kill_switch(state, 1500.0, T1, "bob")
    loaded = restart(state, tmp_path)
    assert loaded.account.audit == [record]
    assert sorted(loaded.account.blocks) == ["DAILY_LOSS"] and loaded.account.peak_equity_usd == 1500.0


def test_audit_keeps_the_most_recent_fifty() -> None:
    state = make_state({"a": 1000.0})
    for i in range(55):
        reset_breaker(state, "a", 1000.0, T0 + timedelta(minutes=i), f"person{i}")
    assert len(state.account.audit) == 50
    assert [r.by for r in state.account.audit[:2]] == ["person5", "person6"]
    assert state.account.audit[-1].by == "person54"


# ---------------------------------------------------------------------------------------------
# reconcile()


def _history() -> tuple[State, list[Trade]]:
    """Three sleeves trading two symbols for 9 cycles (wins, losses, some positions left open)."""
    state = make_state({"a": 1000.0, "b": 2000.0, "c": 1500.0})
    rules = rules_for(state.sleeves, recent_trades_kept=10_000)
    prices = [100.0, 110.0, 95.0, 120.0, 90.0, 101.0, 130.0, 70.0, 99.0]
    for i, p in enumerate(prices):
        now = T0 + timedelta(hours=i)
        quotes = {BTC: p, ETH: p / 10}
        intents = []
        for sid, sym in (("a", BTC), ("b", ETH), ("c", BTC if i < 4 else ETH)):
            held = next(iter(state.sleeves[sid].positions), None)  # alternate: sell what is held, else buy
            intents.append(sell(sid, held, quotes[held], now) if held else buy(sid, sym, quotes[sym], now))
        go(state, rules, now, intents=intents, prices=quotes, account_rules=LOOSE, cycle=i + 1)
    trades = [t for s in state.sleeves.values() for t in s.trades]
    assert len(trades) == 27
    assert sum(s.risk.wins for s in state.sleeves.values()) > 0
    assert sum(s.risk.losses for s in state.sleeves.values()) > 0
    assert all(s.positions for s in state.sleeves.values())  # 9 cycles: each ends long
    return state, trades


def test_a_clean_replay_has_no_differences(tmp_path: Path) -> None:
    state, trades = _history()
    assert reconcile(state, trades) == []
    assert reconcile(restart(state, tmp_path), list(reversed(trades))) == []  # order comes from seq


def _bump_cash(s: State) -> None:
    s.sleeves["a"].cash_usd += 1.0


def _double_qty(s: State) -> None:
    s.sleeves["c"].positions[ETH].quantity *= 2


def _bump_count(s: State) -> None:
    s.sleeves["b"].trade_count += 1


def _bump_wins(s: State) -> None:
    s.sleeves["b"].risk.wins += 1


@pytest.mark.parametrize("alter,sid,field", [
    (_bump_cash, "a", "cash_usd"),
    (_double_qty, "c", f"positions[{ETH}]"),
    (_bump_count, "b", "trade_count"),
    (_bump_wins, "b", "wins"),
])
def test_an_altered_field_is_reported(alter: Callable[[State], None], sid: str, field: str) -> None:
    state, trades = _history()
    clean = state.model_copy(deep=True)
    alter(state)
    diffs = reconcile(state, trades)
    assert [(d.strategy_id, d.field) for d in diffs] == [(sid, field)]
    d = diffs[0]
    if field == "cash_usd":
        assert d.in_state == clean.sleeves[sid].cash_usd + 1.0
        assert d.from_log == pytest.approx(clean.sleeves[sid].cash_usd, rel=1e-12)
    elif field.startswith("positions"):
        qty = clean.sleeves[sid].positions[ETH].quantity
        assert (d.in_state, d.from_log) == (2 * qty, pytest.approx(qty, rel=1e-12))
    elif field == "trade_count":
        assert (d.in_state, d.from_log) == (10, 9)
    else:
        assert (d.in_state, d.from_log) == (clean.sleeves[sid].risk.wins + 1, clean.sleeves[sid].risk.wins)
    assert str(d).startswith(f"{sid}.{field}: state.json says {d.in_state!r}, the trade log gives ")


def test_a_fill_missing_from_the_log_is_reported() -> None:
    state, trades = _history()
    last_of_a = max((t for t in trades if t.strategy_id == "a"), key=lambda t: t.seq)
    assert last_of_a.side == "buy"
    diffs = reconcile(state, [t for t in trades if t is not last_of_a])
    assert [(d.strategy_id, d.field) for d in diffs] == [
        ("a", "cash_usd"), ("a", f"positions[{BTC}]"), ("a", "trade_count"), ("a", "fees_paid_usd")]
    assert (diffs[1].in_state, diffs[1].from_log) == (last_of_a.quantity, None)


def test_trades_of_a_strategy_not_in_state_are_reported() -> None:
    state, trades = _history()
    stray = trades[0].model_copy(update={"strategy_id": "gone", "seq": 999})
    assert reconcile(state, [*trades, stray]) == [
        Difference("gone", "sleeve", None, "1 trades in the log for a strategy not in state")]


def test_reconcile_counts_losses_and_realized_pnl() -> None:
    state, trades = _history()
    state.sleeves["a"].risk.losses += 1
    state.sleeves["a"].realized_pnl_usd += 5.0
    assert [d.field for d in reconcile(state, trades)] == ["losses", "realized_pnl_usd"]
