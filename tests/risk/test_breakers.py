"""Each breaker (REFERENCE section 6): the exact trigger bar, the exact release time, survival
across a restart (save_state -> load_state) in the middle of a block, and the UTC day roll.

Clock: a manual one. Every step's time is written out; nothing reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from scheduler.engine import risk
from scheduler.engine.models import State
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import SleeveRules
from tests.risk.helpers import (
    BTC,
    ETH,
    LOOSE,
    T0,
    buy,
    fills_of,
    go,
    hold,
    make_state,
    of_kind,
    only,
    restart,
    rules_for,
    sell,
)

US = timedelta(microseconds=1)
MIDNIGHT = datetime(2024, 5, 2, 0, 0, tzinfo=UTC)


def _kinds(events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.kind for e in events]


# ---------------------------------------------------------------------------------------------
# MAX_DRAWDOWN (per sleeve): strictly more than the limit; blocked for 24 h from the trip


def _half_invested_pair() -> State:
    """Sleeve a: 500 cash + 1 BTC marked 500 (equity 1000 = its peak). Sleeve b: 1000 cash."""
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", BTC, 1.0, 500.0, cash=500.0)
    return state


@pytest.mark.parametrize("restart_mid_block", [False, True], ids=["no_restart", "restart"])
def test_max_drawdown_trigger_bar_and_release(restart_mid_block: bool, tmp_path: Path) -> None:
    state = _half_invested_pair()
    rules = rules_for(state.sleeves, max_drawdown_pct=25.0)
    assert go(state, rules, T0, prices={BTC: 500.0}, account_rules=LOOSE) == []

    # One step before the bar: exactly 25 % below the peak equals the limit, no block.
    t1 = T0 + timedelta(hours=1)
    assert go(state, rules, t1, prices={BTC: 250.0}, account_rules=LOOSE) == []
    assert state.sleeves["a"].risk.drawdown_pct == 25.0
    assert state.sleeves["a"].risk.blocks == {}

    # At the bar: strictly more than the limit.
    t2 = T0 + timedelta(hours=2)
    events = go(state, rules, t2, prices={BTC: 249.99}, account_rules=LOOSE)
    block = only(events, "block")
    assert block.strategy_id == "a"
    assert block.data == {"code": "MAX_DRAWDOWN", "until": "2024-05-02T14:00:00Z",
                          "detail": "equity 749.99 USD is 25.00% below its peak 1000.00 USD (limit 25%)"}
    stored = state.sleeves["a"].risk.blocks["MAX_DRAWDOWN"]
    assert (stored.since, stored.until) == (t2, t2 + timedelta(hours=24))
    assert state.sleeves["b"].risk.blocks == {} and state.account.blocks == {}

    if restart_mid_block:
        state = restart(state, tmp_path)
        stored_after = state.sleeves["a"].risk.blocks["MAX_DRAWDOWN"]
        assert (stored_after.since, stored_after.until) == (t2, t2 + timedelta(hours=24))

    want_detail = ("entries blocked until 2024-05-02T14:00:00Z: equity 749.99 USD is 25.00% below its peak "
                   "1000.00 USD (limit 25%)")
    t3 = t2 + timedelta(hours=1)
    events = go(state, rules, t3, intents=[buy("a", ETH, 100.0, t3)], prices={BTC: 249.99}, account_rules=LOOSE)
    assert _kinds(events) == ["rejected"]
    assert (events[0].data["code"], events[0].data["detail"]) == ("MAX_DRAWDOWN", want_detail)

    # The price has recovered, but the block holds until its time is up...
    until = t2 + timedelta(hours=24)
    events = go(state, rules, until - US, intents=[buy("a", ETH, 100.0, until - US)], prices={BTC: 500.0},
                account_rules=LOOSE)
    assert _kinds(events) == ["rejected"]
    assert (events[0].data["code"], events[0].data["detail"]) == ("MAX_DRAWDOWN", want_detail)
    assert sorted(state.sleeves["a"].positions) == [BTC]
    # ...and lifts exactly at since + 24 h.
    events = go(state, rules, until, intents=[buy("a", ETH, 100.0, until)], prices={BTC: 500.0},
                account_rules=LOOSE)
    assert _kinds(events) == ["unblock", "fill"]
    assert (events[0].strategy_id, events[0].data) == ("a", {"code": "MAX_DRAWDOWN"})
    assert events[1].data["symbol"] == ETH and events[1].data["side"] == "buy"
    assert state.sleeves["a"].risk.blocks == {}


def test_max_drawdown_block_is_the_sleeves_own() -> None:
    state = _half_invested_pair()
    rules = rules_for(state.sleeves, max_drawdown_pct=25.0)
    go(state, rules, T0, prices={BTC: 200.0}, account_rules=LOOSE)
    assert sorted(state.sleeves["a"].risk.blocks) == ["MAX_DRAWDOWN"]
    t = T0 + timedelta(minutes=1)
    events = go(state, rules, t, intents=[buy("a", ETH, 100.0, t), buy("b", ETH, 100.0, t)],
                prices={BTC: 200.0}, account_rules=LOOSE)
    assert [(e.kind, e.strategy_id) for e in events] == [("rejected", "a"), ("fill", "b")]


# ---------------------------------------------------------------------------------------------
# CONSECUTIVE_LOSSES (per sleeve): trips on the 5th losing close in a row, for 60 minutes


def _round_trip(state: State, rules: dict[str, SleeveRules], at: datetime, exit_price: float) -> list:  # type: ignore[type-arg]
    """Buy BTC at 100 at ``at``, sell it at ``exit_price`` 5 minutes later; the sell step's events."""
    opened = go(state, rules, at, intents=[buy("a", BTC, 100.0, at)], account_rules=LOOSE)
    assert [e.data["side"] for e in fills_of(opened)] == ["buy"]
    later = at + timedelta(minutes=5)
    return go(state, rules, later, intents=[sell("a", BTC, exit_price, later)], account_rules=LOOSE)


@pytest.mark.parametrize("restart_at", [None, "mid_streak", "mid_block"])
def test_consecutive_losses_trip_on_the_fifth_and_release_after_60_minutes(restart_at: str | None,
                                                                            tmp_path: Path) -> None:
    state = make_state({"a": 1000.0})
    rules = rules_for(state.sleeves)
    for i in range(4):  # a round trip at an unchanged price loses its fees and slippage: a loss
        events = _round_trip(state, rules, T0 + timedelta(minutes=10 * i), 100.0)
        assert _kinds(events) == ["fill"] and events[0].data["realized_pnl_usd"] < 0
        if i == 2 and restart_at == "mid_streak":
            state = restart(state, tmp_path)
    risk = state.sleeves["a"].risk
    assert (risk.consecutive_losses, risk.losses, risk.wins, risk.blocks) == (4, 4, 0, {})

    fifth_exit = T0 + timedelta(minutes=45)
    events = _round_trip(state, rules, T0 + timedelta(minutes=40), 100.0)
    assert _kinds(events) == ["fill", "block"]
    pnl = events[0].data["realized_pnl_usd"]
    assert events[1].strategy_id == "a"
    assert events[1].data == {"code": "CONSECUTIVE_LOSSES", "until": "2024-05-01T13:45:00Z",
                              "detail": f"5 losing trades in a row (limit 5); last loss {pnl:.2f} USD"}
    risk = state.sleeves["a"].risk
    assert (risk.consecutive_losses, risk.losses, risk.wins) == (0, 5, 0)  # tripping restarts the streak
    stored = risk.blocks["CONSECUTIVE_LOSSES"]
    assert (stored.since, stored.until) == (fifth_exit, fifth_exit + timedelta(minutes=60))

    if restart_at == "mid_block":
        state = restart(state, tmp_path)

    until = fifth_exit + timedelta(minutes=60)
    events = go(state, rules, until - US, intents=[buy("a", BTC, 100.0, until - US)], account_rules=LOOSE)
    assert _kinds(events) == ["rejected"]
    assert events[0].data["code"] == "CONSECUTIVE_LOSSES"
    assert events[0].data["detail"] == ("entries blocked until 2024-05-01T13:45:00Z: 5 losing trades in a row "
                                        f"(limit 5); last loss {pnl:.2f} USD")
    assert state.sleeves["a"].positions == {}
    events = go(state, rules, until, intents=[buy("a", BTC, 100.0, until)], account_rules=LOOSE)
    assert _kinds(events) == ["unblock", "fill"]
    assert events[0].data == {"code": "CONSECUTIVE_LOSSES"}
    assert state.sleeves["a"].risk.blocks == {}


def test_a_win_restarts_the_loss_streak() -> None:
    state = make_state({"a": 1000.0})
    rules = rules_for(state.sleeves)
    t = T0
    for exit_price in [100.0] * 4 + [110.0] + [100.0] * 4:
        events = _round_trip(state, rules, t, exit_price)
        assert "block" not in _kinds(events)
        t += timedelta(minutes=10)
    risk = state.sleeves["a"].risk
    assert (risk.consecutive_losses, risk.wins, risk.losses, risk.blocks) == (4, 1, 8, {})
    events = _round_trip(state, rules, t, 100.0)
    assert only(events, "block").data["code"] == "CONSECUTIVE_LOSSES"


def test_exits_run_while_the_loss_streak_blocks_entries() -> None:
    state = make_state({"a": 1000.0})
    hold(state, "a", ETH, 1.0, 100.0, cash=1000.0)
    rules = rules_for(state.sleeves)
    for i in range(5):
        events = _round_trip(state, rules, T0 + timedelta(minutes=10 * i), 100.0)
    assert only(events, "block").data["code"] == "CONSECUTIVE_LOSSES"
    t = T0 + timedelta(minutes=50)
    events = go(state, rules, t, intents=[sell("a", ETH, 100.0, t), buy("a", BTC, 100.0, t)], account_rules=LOOSE)
    assert [(e.kind, e.data["side"]) for e in events] == [("fill", "sell"), ("rejected", "buy")]
    assert events[1].data["code"] == "CONSECUTIVE_LOSSES"
    assert state.sleeves["a"].positions == {}
    assert state.sleeves["a"].risk.consecutive_losses == 1  # the exit's loss starts a new streak


def test_loss_limit_comes_from_the_rules() -> None:
    state = make_state({"a": 1000.0})
    rules = rules_for(state.sleeves, consecutive_losses=2, loss_cooldown=timedelta(minutes=7))
    assert _kinds(_round_trip(state, rules, T0, 100.0)) == ["fill"]
    events = _round_trip(state, rules, T0 + timedelta(minutes=10), 100.0)
    assert _kinds(events) == ["fill", "block"]
    assert events[1].data["until"] == "2024-05-01T12:22:00Z"  # exit at 12:15 + 7 minutes


# ---------------------------------------------------------------------------------------------
# DAILY_LOSS (account): at or below 5 % under the UTC day-start equity; until the next 00:00 UTC


@pytest.mark.parametrize("restart_mid_block", [False, True], ids=["no_restart", "restart"])
def test_daily_loss_trigger_bar_and_release_at_midnight(restart_mid_block: bool, tmp_path: Path) -> None:
    state = _half_invested_pair()  # account equity 2000 with BTC at 500
    rules = rules_for(state.sleeves)
    assert go(state, rules, T0, prices={BTC: 500.0}) == []
    acct = state.account
    assert (acct.day, acct.day_start_equity_usd, acct.peak_equity_usd) == ("2024-05-01", 2000.0, 2000.0)

    # One step before the bar: 1900.01 is 4.9995 % below the day start.
    assert go(state, rules, T0 + timedelta(hours=1), prices={BTC: 400.01}) == []
    assert state.account.blocks == {}

    # At the bar: 1900.00 is exactly 5 % below.
    t2 = T0 + timedelta(hours=2)
    events = go(state, rules, t2, prices={BTC: 400.0})
    block = only(events, "block")
    assert block.strategy_id == "account"
    assert block.data == {"code": "DAILY_LOSS", "until": "2024-05-02T00:00:00Z",
                          "detail": "account equity 1900.00 USD is 5.00% below today's start 2000.00 USD "
                                    "(limit 5%)"}
    stored = state.account.blocks["DAILY_LOSS"]
    assert (stored.since, stored.until) == (t2, MIDNIGHT)
    assert state.sleeves["a"].risk.blocks == {} and state.sleeves["b"].risk.blocks == {}

    if restart_mid_block:
        state = restart(state, tmp_path)
        assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-01", 2000.0)
        assert (state.account.blocks["DAILY_LOSS"].since, state.account.blocks["DAILY_LOSS"].until) == (t2, MIDNIGHT)

    # The price has recovered; every sleeve's entries stay blocked until 00:00 UTC.
    last = MIDNIGHT - US
    events = go(state, rules, last, intents=[buy("a", ETH, 100.0, last), buy("b", ETH, 100.0, last)],
                prices={BTC: 500.0})
    assert [(e.kind, e.strategy_id, e.data["code"]) for e in events] == [
        ("rejected", "a", "DAILY_LOSS"), ("rejected", "b", "DAILY_LOSS")]
    assert events[1].data["detail"] == ("entries blocked until 2024-05-02T00:00:00Z: account equity 1900.00 USD "
                                        "is 5.00% below today's start 2000.00 USD (limit 5%)")
    events = go(state, rules, MIDNIGHT, intents=[buy("b", ETH, 100.0, MIDNIGHT)], prices={BTC: 500.0})
    assert _kinds(events) == ["unblock", "fill"]
    assert (events[0].strategy_id, events[0].data) == ("account", {"code": "DAILY_LOSS"})
    assert state.account.blocks == {}
    assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-02", 2000.0)


# ---------------------------------------------------------------------------------------------
# The UTC day roll: the day-start equity is re-captured at the first step of a new UTC day


@pytest.mark.parametrize("restart_before_midnight", [False, True], ids=["no_restart", "restart"])
def test_day_start_is_recaptured_at_the_first_step_of_a_new_utc_day(restart_before_midnight: bool,
                                                                     tmp_path: Path) -> None:
    state = _half_invested_pair()
    rules = rules_for(state.sleeves)
    go(state, rules, MIDNIGHT - timedelta(hours=1), prices={BTC: 500.0})
    assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-01", 2000.0)

    assert go(state, rules, MIDNIGHT - timedelta(minutes=1), prices={BTC: 450.0}) == []  # 23:59
    assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-01", 2000.0)
    if restart_before_midnight:
        state = restart(state, tmp_path)

    assert go(state, rules, MIDNIGHT, prices={BTC: 460.0}) == []  # 00:00: equity 1960
    assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-02", 1960.0)
    assert state.account.peak_equity_usd == 2000.0

    # 1900 would be 5 % below yesterday's start, but is 3.06 % below today's: no block.
    assert go(state, rules, MIDNIGHT + timedelta(minutes=1), prices={BTC: 400.0}) == []
    assert state.account.day_start_equity_usd == 1960.0
    # 1862 = 1960 * 0.95: today's bar.
    events = go(state, rules, MIDNIGHT + timedelta(minutes=2), prices={BTC: 362.0})
    assert only(events, "block").data["detail"] == (
        "account equity 1862.00 USD is 5.00% below today's start 1960.00 USD (limit 5%)")


def test_a_daily_loss_at_23_59_is_lifted_at_00_00_without_tripping_again() -> None:
    state = _half_invested_pair()
    rules = rules_for(state.sleeves)
    go(state, rules, MIDNIGHT - timedelta(hours=1), prices={BTC: 500.0})
    events = go(state, rules, MIDNIGHT - timedelta(minutes=1), prices={BTC: 380.0})  # 1880: 6 % down
    assert only(events, "block").data["until"] == "2024-05-02T00:00:00Z"
    events = go(state, rules, MIDNIGHT, intents=[buy("b", ETH, 100.0, MIDNIGHT)], prices={BTC: 380.0})
    assert _kinds(events) == ["unblock", "fill"]  # the loss stays, but it is yesterday's
    assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-02", 1880.0)
    assert state.account.blocks == {}


def test_the_day_is_the_utc_day_not_the_local_one() -> None:
    state = _half_invested_pair()
    rules = rules_for(state.sleeves)
    go(state, rules, MIDNIGHT - timedelta(hours=2), prices={BTC: 500.0})  # 22:00 UTC
    cest = timezone(timedelta(hours=2))
    local_after_midnight = datetime(2024, 5, 2, 1, 30, tzinfo=cest)  # 23:30 UTC on 1 May
    assert go(state, rules, local_after_midnight, prices={BTC: 450.0}) == []
    assert (state.account.day, state.account.day_start_equity_usd) == ("2024-05-01", 2000.0)
    events = go(state, rules, local_after_midnight + timedelta(minutes=10), prices={BTC: 400.0})
    assert only(events, "block").data["until"] == "2024-05-02T00:00:00Z"


# ---------------------------------------------------------------------------------------------
# PORTFOLIO_KILL_SWITCH (account): at or below 25 % under the peak; never lifts by itself

KILL_ONLY = AccountRules(daily_loss_pct=100.0)  # isolate the kill switch from the daily loss


def _two_btc_and_cash() -> State:
    """Sleeve a: 2 BTC marked 500, no cash. Sleeve b: 1000 cash. Account equity 2000."""
    state = make_state({"a": 1000.0, "b": 1000.0})
    hold(state, "a", BTC, 2.0, 500.0, cash=0.0)
    return state


@pytest.mark.parametrize("restart_mid_block", [False, True], ids=["no_restart", "restart"])
def test_kill_switch_trigger_bar_and_no_release_by_itself(restart_mid_block: bool, tmp_path: Path) -> None:
    state = _two_btc_and_cash()
    rules = rules_for(state.sleeves)
    assert go(state, rules, T0, prices={BTC: 500.0}, account_rules=KILL_ONLY) == []
    assert state.account.peak_equity_usd == 2000.0

    assert go(state, rules, T0 + timedelta(hours=1), prices={BTC: 250.005}, account_rules=KILL_ONLY) == []  # 1500.01
    assert state.account.blocks == {}

    t2 = T0 + timedelta(hours=2)
    events = go(state, rules, t2, prices={BTC: 250.0}, account_rules=KILL_ONLY)  # 1500 = 2000 * 0.75
    block = only(events, "block")
    assert block.strategy_id == "account"
    want = ("account equity 1500.00 USD is 25.00% below its peak 2000.00 USD (limit 25%); "
            "a person must reset it")
    assert block.data == {"code": "PORTFOLIO_KILL_SWITCH", "until": None, "detail": want}
    stored = state.account.blocks["PORTFOLIO_KILL_SWITCH"]
    assert (stored.since, stored.until) == (t2, None)

    if restart_mid_block:
        state = restart(state, tmp_path)
        stored = state.account.blocks["PORTFOLIO_KILL_SWITCH"]
        assert (stored.since, stored.until, stored.detail) == (t2, None, want)

    # A year on, with the account at a new high, it still holds: only a person lifts it.
    later = t2 + timedelta(days=400)
    events = go(state, rules, later, intents=[buy("b", ETH, 100.0, later)], prices={BTC: 1000.0},
                account_rules=KILL_ONLY)
    assert _kinds(events) == ["rejected"]
    assert events[0].data["code"] == "PORTFOLIO_KILL_SWITCH"
    assert events[0].data["detail"] == f"entries blocked until a manual reset: {want}"
    assert state.account.peak_equity_usd == 3000.0
    assert sorted(state.account.blocks) == ["PORTFOLIO_KILL_SWITCH"]


def test_daily_loss_lifts_at_midnight_but_the_kill_switch_stays() -> None:
    state = _two_btc_and_cash()
    rules = rules_for(state.sleeves)
    go(state, rules, T0, prices={BTC: 500.0})
    events = go(state, rules, T0 + timedelta(hours=1), prices={BTC: 250.0})
    assert [e.data["code"] for e in of_kind(events, "block")] == ["DAILY_LOSS", "PORTFOLIO_KILL_SWITCH"]
    events = go(state, rules, MIDNIGHT, intents=[buy("b", ETH, 100.0, MIDNIGHT)], prices={BTC: 250.0})
    assert [(e.kind, e.data["code"]) for e in events] == [("unblock", "DAILY_LOSS"),
                                                          ("rejected", "PORTFOLIO_KILL_SWITCH")]
    assert sorted(state.account.blocks) == ["PORTFOLIO_KILL_SWITCH"]


def test_exits_run_under_every_block_at_once() -> None:
    state = _two_btc_and_cash()
    hold(state, "b", ETH, 1.0, 100.0, cash=900.0)
    rules = rules_for(state.sleeves, max_drawdown_pct=10.0)
    go(state, rules, T0, prices={BTC: 500.0, ETH: 100.0})
    t = T0 + timedelta(hours=1)
    events = go(state, rules, t, prices={BTC: 250.0, ETH: 100.0})
    assert sorted(state.account.blocks) == ["DAILY_LOSS", "PORTFOLIO_KILL_SWITCH"]
    assert sorted(state.sleeves["a"].risk.blocks) == ["MAX_DRAWDOWN"]
    risk.add_block(state.sleeves["b"].risk.blocks, "CONSECUTIVE_LOSSES", "test", t, t + timedelta(hours=1))
    t2 = t + timedelta(minutes=1)
    events = go(state, rules, t2, intents=[sell("a", BTC, 250.0, t2), sell("b", ETH, 100.0, t2),
                                           buy("a", ETH, 100.0, t2)], prices={BTC: 250.0, ETH: 100.0})
    sells = fills_of(events, side="sell")
    assert [(e.strategy_id, e.data["symbol"], e.data["quantity"]) for e in sells] == [("a", BTC, 2.0), ("b", ETH, 1.0)]
    assert state.sleeves["a"].positions == {} and state.sleeves["b"].positions == {}
    assert state.sleeves["a"].cash_usd == pytest.approx(2 * 250.0 * 0.9995 * 0.999, rel=1e-12)
    assert [(e.strategy_id, e.data["code"]) for e in of_kind(events, "rejected")] == [("a", "DAILY_LOSS")]


def test_removing_a_strategy_from_the_config_is_not_an_account_loss() -> None:
    state = make_state({"a": 1000.0, "b": 1000.0, "c": 1000.0})
    go(state, rules_for(["a", "b", "c"]), T0)
    assert (state.account.peak_equity_usd, state.account.day_start_equity_usd) == (3000.0, 3000.0)
    # The user drops strategy c from config.json and restarts: its sleeve stays in state.json, not run.
    t = T0 + timedelta(hours=1)
    events = go(state, rules_for(["a", "b"]), t, intents=[buy("a", ETH, 100.0, t)])
    assert of_kind(events, "block") == []
    assert state.account.blocks == {}
    assert [e.kind for e in events] == ["rebase", "fill"]
    assert state.account.members == ["a", "b"] and state.account.day_start_equity_usd == 2000.0
