"""The texts of notifications: pure functions of the states and events they describe.

One commit (a cycle, a manual trade, a reset) makes at most one message, its events
listed one a line, so a burst of 30 fills is one readable message (split at the
channel's limit when it is long), not 30 pings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from scheduler.engine.models import State
from scheduler.engine.step import Event, account_equity, sleeve_equity

#: decimals the engine keeps in a quantity (scheduler/engine: amount steps, ``round(q, 12)``)
QUANTITY_DECIMALS = 12


def quantity(v: float) -> str:
    """A quantity exactly as held: its shortest round-trip digits (float noise below the 12th
    decimal dropped), no trailing zeros, never in scientific notation. 61.99947 -> "61.99947",
    1e-07 -> "0.0000001", 2e6 -> "2000000"."""
    text = format(Decimal(repr(round(float(v), QUANTITY_DECIMALS))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def price(v: float | None) -> str:
    """A price in USD with all its digits (a price of 0.00001234 stays so), at least two decimals,
    thousands grouped: 66916.8612 -> "$66,916.8612", 61.5 -> "$61.50"."""
    if v is None:
        return "unknown"
    whole, _, frac = quantity(abs(v)).partition(".")
    return f"{'-' if v < 0 else ''}${int(whole):,}.{frac.ljust(2, '0')}"


def usd(v: float | None) -> str:
    """An amount of money (value, P&L, fee), to the cent."""
    return "unknown" if v is None else f"${v:,.2f}"


def signed_usd(v: float) -> str:
    return f"{'+' if v >= 0 else '-'}${abs(v):,.2f}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _fill_line(sid: str, d: dict[str, Any]) -> str:
    option = d.get("option")
    if isinstance(option, dict) and option.get("premium_coin") is not None:  # as Deribit quotes it: in coin
        at = f"{quantity(option['premium_coin'])} {option.get('underlying', '')} ({usd(d['fill_price'])} a contract)"
    else:
        at = price(d["fill_price"])
    text = f"{sid}: {d['side'].upper()} {quantity(d['quantity'])} {d['symbol']} @ {at}"
    if d.get("realized_pnl_usd") is not None:
        text += f", P&L {signed_usd(d['realized_pnl_usd'])}"
    text += f" (fee {usd(d.get('fee_usd', 0.0))}"
    if d.get("reason") not in (None, "signal"):
        text += f", {d['reason']}"
    return text + ")"


def event_line(e: Event) -> str | None:
    """One event as a line, or None for what is not worth a message (holds)."""
    sid, d = e.strategy_id, e.data
    scope = "ALL strategies" if sid == "account" else sid
    if e.kind == "fill":
        return _fill_line(sid, d)
    if e.kind == "rejected":
        return f"{scope}: entry rejected [{d.get('code')}]: {d.get('detail')}"
    if e.kind == "block":
        return f"{scope}: entries BLOCKED [{d.get('code')}] until {d.get('until') or 'a manual reset'}: {d.get('detail')}"
    if e.kind == "unblock":
        return f"{scope}: block {d.get('code')} ended; entries allowed again"
    return None


def check_streak_lines(prev: State, new: State, streak: int) -> list[str]:
    """Update ``new.notify.failure_streaks`` from the checks that ran (their ``last_check``
    changed) and say when a streak reaches ``streak`` failures, and when it ends."""
    lines = []
    for sid, sleeve in new.sleeves.items():
        check = sleeve.last_check
        before = prev.sleeves.get(sid)
        if check is None or (before is not None and before.last_check is not None and before.last_check.at == check.at):
            continue  # did not run in this commit
        count = new.notify.failure_streaks.get(sid, 0)
        if check.ok:
            if count >= streak:
                lines.append(f"{sid}: checks work again after {count} consecutive failures")
            new.notify.failure_streaks.pop(sid, None)
            continue
        count += 1
        new.notify.failure_streaks[sid] = count
        if count == streak:
            lines.append(f"{sid}: {count} consecutive check failures ({check.error_class}): {check.error}")
    return lines


def audit_lines(prev: State, new: State) -> list[str]:
    """People's interventions this commit made (resets)."""
    old = len(prev.account.audit)
    fresh = new.account.audit[old:] if len(new.account.audit) > old else []
    return [f"{a.action} [{a.scope}] by {a.by}: {a.detail}" for a in fresh]


def commit_message(prev: State, new: State, events: Sequence[Event], streak: int) -> str | None:
    """The one message a commit makes, or None when nothing in it is worth telling."""
    lines = [line for e in events if (line := event_line(e))]
    lines += check_streak_lines(prev, new, streak)
    lines += audit_lines(prev, new)
    if not lines:
        return None
    fills = sum(e.kind == "fill" for e in events)
    head = f"go-trader cycle {new.cycle_count}" if new.cycle_count != prev.cycle_count else "go-trader"
    if fills:
        head += f": {fills} fill{'s' if fills != 1 else ''}"
    return head + "\n" + "\n".join(f"• {line}" for line in lines)


def summary_message(state: State, strategy_ids: Iterable[str], now: datetime) -> str:
    """A periodic summary: account and every strategy, with its P&L and blocks."""
    ids = [sid for sid in strategy_ids if sid in state.sleeves]
    equity = account_equity(state, ids)
    capital = sum(state.sleeves[sid].initial_capital_usd for sid in ids)
    lines = [f"go-trader summary at {now:%Y-%m-%d %H:%M} UTC, cycle {state.cycle_count}",
             f"Account: {usd(equity)}" + (f" ({signed_usd(equity - capital)} since start)" if equity is not None else "")]
    if state.account.blocks:
        lines.append("Account blocks: " + ", ".join(state.account.blocks))
    for sid in ids:
        sl = state.sleeves[sid]
        eq = sleeve_equity(sl)
        held = ", ".join([*sorted(sl.positions),
                          *([_count(len(sl.option_positions), "option leg")] if sl.option_positions else [])])
        line = (f"• {sid}: {usd(eq)}" + (f" ({signed_usd(eq - sl.initial_capital_usd)})" if eq is not None else "")
                + f", {_count(sl.trade_count, 'trade')}, realized {signed_usd(sl.realized_pnl_usd)}"
                + (f", holding {held}" if held else ""))
        if sl.risk.blocks:
            line += f", BLOCKED: {', '.join(sl.risk.blocks)}"
        lines.append(line)
    return "\n".join(lines)
