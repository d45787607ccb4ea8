"""Risk rules (README: Risk rules): pure functions on the state models.

Rules block new entries only; exits, stops and expiries always run. Every
block is a ``Block`` stored under its reason code, with a detail and an
``until`` (None: until a person resets it), so nothing is ever stuck silently.

Thresholds and their exact semantics:
- MAX_DRAWDOWN (sleeve): equity more than ``max_drawdown_pct`` below the
  sleeve's peak (strictly more) blocks entries for ``drawdown_block``. When the
  block lifts, the peak is rebased to the equity then, so the sleeve may trade
  again (a sleeve in cash cannot recover by itself: without the rebase the
  block would return at once, forever).
- CONSECUTIVE_LOSSES (sleeve): the Nth losing close in a row (N = 5) blocks
  entries for ``loss_cooldown`` (60 min). A loss is net realized P&L < 0, fees
  included; a win (P&L > 0) resets the streak, and so does tripping the breaker.
- The account is the sum of the configured strategies. When that set changes
  (a strategy added to or removed from the config), the account's peak and
  day-start values are rebased to the new sum: a config change is not a loss.
- DAILY_LOSS (account): equity at or below ``daily_loss_pct`` under the UTC
  day-start equity blocks entries until the next 00:00 UTC.
- PORTFOLIO_KILL_SWITCH (account): equity at or below ``portfolio_kill_pct``
  under the account's peak blocks all entries until a person resets it.
- Caps on each entry (account-wide): a position is at most ``max_position_pct``
  of account equity and ``max_position_usd``; total exposure at most
  ``max_exposure_pct`` of account equity. An entry is shrunk to fit; one that
  cannot fit above the market's minimum is rejected with the cap's code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from scheduler.engine.models import AuditRecord, Block, Sleeve, State, Trade, utc_iso

ACCOUNT = "account"


@dataclass(frozen=True)
class AccountRules:
    max_position_pct: float = 20.0
    max_position_usd: float = 5000.0
    max_exposure_pct: float = 80.0
    daily_loss_pct: float = 5.0
    portfolio_kill_pct: float = 25.0


def next_utc_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@lru_cache(maxsize=512)
def utc_day(t: datetime) -> str:
    """The UTC day of ``t``, YYYY-MM-DD (cached: every step asks for its day twice, and a
    replay asks for the same days again and again)."""
    return t.astimezone(UTC).date().isoformat()


def lift_expired(blocks: dict[str, Block], now: datetime) -> list[Block]:
    """Remove blocks whose ``until`` has come; return them."""
    gone = [b for b in blocks.values() if b.until is not None and b.until <= now]
    for b in gone:
        del blocks[b.code]
    return gone


def add_block(blocks: dict[str, Block], code: str, detail: str, now: datetime,
              until: datetime | None) -> Block | None:
    """Add a block unless one with this code is already active; return the new one."""
    if code in blocks:
        return None
    blocks[code] = Block(code=code, detail=detail, since=now, until=until)
    return blocks[code]


def record_close(sleeve: Sleeve, pnl_usd: float, now: datetime, max_losses: int,
                 cooldown: timedelta) -> Block | None:
    """Count a closed trade; trip the consecutive-loss breaker on the Nth loss in a row."""
    risk = sleeve.risk
    if pnl_usd < 0:
        risk.losses += 1
        risk.consecutive_losses += 1
    elif pnl_usd > 0:
        risk.wins += 1
        risk.consecutive_losses = 0
    if risk.consecutive_losses < max_losses:
        return None
    block = add_block(risk.blocks, "CONSECUTIVE_LOSSES",
                      f"{risk.consecutive_losses} losing trades in a row (limit {max_losses}); last loss "
                      f"{pnl_usd:.2f} USD", now, now + cooldown)
    if block is not None:  # the streak restarts with the block; during an active one it keeps counting
        risk.consecutive_losses = 0
    return block


def account_checks(state: State, members: list[str], equity: float | None, rules: AccountRules,
                   now: datetime) -> list[Block]:
    """Roll the UTC day, track the peak, trip the daily-loss and kill-switch blocks."""
    acct = state.account
    if sorted(members) != acct.members:
        if equity is None:
            return []  # rebase once the new set of strategies can be valued
        acct.members = sorted(members)
        acct.peak_equity_usd = acct.day_start_equity_usd = None  # a different account: new baselines
    day = utc_day(now)
    if acct.day != day:
        acct.day, acct.day_start_equity_usd = day, equity
    elif acct.day_start_equity_usd is None:
        acct.day_start_equity_usd = equity
    if equity is None:
        return []  # unknown value: no fake loss, no breaker
    acct.peak_equity_usd = max(acct.peak_equity_usd or equity, equity)
    new: list[Block] = []
    start = acct.day_start_equity_usd
    # a percentage loss needs a positive base: an options sleeve that owes cash can start a day below 0
    if start is not None and start > 0 and equity <= start * (1 - rules.daily_loss_pct / 100):
        b = add_block(acct.blocks, "DAILY_LOSS",
                      f"account equity {equity:.2f} USD is {(1 - equity / start) * 100:.2f}% below today's start "
                      f"{start:.2f} USD (limit {rules.daily_loss_pct:g}%)", now, next_utc_midnight(now))
        new += [b] if b else []
    peak = acct.peak_equity_usd
    if equity <= peak * (1 - rules.portfolio_kill_pct / 100):
        b = add_block(acct.blocks, "PORTFOLIO_KILL_SWITCH",
                      f"account equity {equity:.2f} USD is {(1 - equity / peak) * 100:.2f}% below its peak "
                      f"{peak:.2f} USD (limit {rules.portfolio_kill_pct:g}%); a person must reset it", now, None)
        new += [b] if b else []
    return new


def entry_cap_usd(account_equity: float, exposure_usd: float, rules: AccountRules) -> tuple[float, str]:
    """The largest position notional an entry may have now, and the code of the binding cap."""
    caps = {
        "MAX_POSITION_PCT": account_equity * rules.max_position_pct / 100,
        "MAX_POSITION_USD": rules.max_position_usd,
        "MAX_EXPOSURE": account_equity * rules.max_exposure_pct / 100 - exposure_usd,
    }
    code = min(caps, key=caps.__getitem__)
    return caps[code], code


# ---------------------------------------------------------------------------------------------
# A person's resets


def reset_breaker(state: State, strategy_id: str, equity_usd: float | None, now: datetime, by: str) -> AuditRecord:
    """Lift every block of one strategy. Positions are neither closed nor reopened.

    MAX_DRAWDOWN's peak is rebased to the current equity (else it would trip again at
    once) and the loss streak restarts at 0. Raises KeyError for an unknown strategy.
    """
    sleeve = state.sleeves[strategy_id]
    risk = sleeve.risk
    before = {"blocks": {k: v.model_dump(mode="json") for k, v in risk.blocks.items()},
              "peak_equity_usd": risk.peak_equity_usd, "consecutive_losses": risk.consecutive_losses}
    lifted = sorted(risk.blocks)
    risk.blocks.clear()
    risk.consecutive_losses = 0
    rebased = equity_usd is not None and equity_usd > 0 and "MAX_DRAWDOWN" in lifted  # a peak is > 0
    if rebased:
        risk.peak_equity_usd = equity_usd
    detail = (f"lifted {', '.join(lifted) or 'no active block'} on {strategy_id}; loss streak set to 0"
              + (f"; drawdown peak rebased to {equity_usd:.2f} USD" if rebased else "")
              + (f"; drawdown peak kept: the equity {equity_usd:.2f} USD is no peak" if equity_usd is not None
                 and equity_usd <= 0 and "MAX_DRAWDOWN" in lifted else "")
              + "; no position was opened or closed")
    return _audit(state, now, "reset_breaker", strategy_id, by, detail, before)


def reset_kill_switch(state: State, equity_usd: float | None, now: datetime, by: str) -> AuditRecord:
    """Lift the portfolio kill switch and rebase the account peak to the current equity.

    Other blocks (daily loss, per-strategy breakers) stay. Positions are untouched.
    """
    acct = state.account
    before = {"blocks": {k: v.model_dump(mode="json") for k, v in acct.blocks.items()},
              "peak_equity_usd": acct.peak_equity_usd}
    was = acct.blocks.pop("PORTFOLIO_KILL_SWITCH", None)
    if equity_usd is not None:
        acct.peak_equity_usd = equity_usd
    detail = ("lifted PORTFOLIO_KILL_SWITCH" if was else "the kill switch was not active") + (
        f"; account peak rebased to {equity_usd:.2f} USD" if equity_usd is not None else "") + (
        "; other blocks stay; no position was opened or closed")
    return _audit(state, now, "reset_kill_switch", ACCOUNT, by, detail, before)


def _audit(state: State, now: datetime, action: str, scope: str, by: str, detail: str,
           before: dict[str, Any]) -> AuditRecord:
    record = AuditRecord(at=now, action=action, scope=scope, by=by, detail=detail, before=before)
    state.account.audit.append(record)
    del state.account.audit[:-50]
    return record


# ---------------------------------------------------------------------------------------------
# Reconciliation


@dataclass(frozen=True)
class Difference:
    strategy_id: str
    field: str
    in_state: Any
    from_log: Any

    def __str__(self) -> str:
        return f"{self.strategy_id}.{self.field}: state.json says {self.in_state!r}, the trade log gives {self.from_log!r}"


def rebuild(sleeve: Sleeve, trades: Iterable[Trade]) -> dict[str, Any]:
    """A sleeve's books replayed from its fills alone.

    Every trade moves cash the same way (a buy pays notional + fee, a sell receives
    notional - fee), options and their expiries included. Spot trades move the spot
    holdings; option trades open or close the option position they name
    (``option.position_id``; quantities signed long +, short -). Any trade with a
    realized P&L (a spot sell, an option close or expiry) counts as a win or a loss.
    """
    cash, held = sleeve.initial_capital_usd, {}
    options: dict[str, float] = {}
    count = wins = losses = 0
    realized = fees = 0.0
    for t in trades:
        count += 1
        fees += t.fee_usd
        cash += -(t.notional_usd + t.fee_usd) if t.side == "buy" else t.notional_usd - t.fee_usd
        if t.option is None:
            held[t.symbol] = held.get(t.symbol, 0.0) + (t.quantity if t.side == "buy" else -t.quantity)
        else:
            sign = 1.0 if t.option.position_side == "long" else -1.0
            pid = t.option.position_id
            options[pid] = options.get(pid, 0.0) + (sign * t.quantity if t.option.effect == "open" else -sign * t.quantity)
        if t.realized_pnl_usd is not None:
            pnl = t.realized_pnl_usd
            realized += pnl
            wins, losses = wins + (pnl > 0), losses + (pnl < 0)
    return {"cash_usd": cash, "positions": {s: q for s, q in held.items() if abs(q) > 1e-12},
            "option_positions": {i: q for i, q in options.items() if abs(q) > 1e-9},
            "trade_count": count, "wins": wins, "losses": losses, "realized_pnl_usd": realized,
            "fees_paid_usd": fees}


def reconcile(state: State, trades: Iterable[Trade], tolerance_usd: float = 1e-6) -> list[Difference]:
    """Compare every sleeve of ``state`` with its replay from the trade log."""
    by_sleeve: dict[str, list[Trade]] = {}
    for t in sorted(trades, key=lambda t: t.seq):
        by_sleeve.setdefault(t.strategy_id, []).append(t)
    diffs: list[Difference] = []
    for sid, sleeve in state.sleeves.items():
        book = rebuild(sleeve, by_sleeve.pop(sid, []))
        have = {"cash_usd": sleeve.cash_usd, "trade_count": sleeve.trade_count, "wins": sleeve.risk.wins,
                "losses": sleeve.risk.losses, "realized_pnl_usd": sleeve.realized_pnl_usd,
                "fees_paid_usd": sleeve.fees_paid_usd,
                "positions": {s: p.quantity for s, p in sleeve.positions.items()},
                "option_positions": {p.id: (p.quantity if p.side == "long" else -p.quantity)
                                     for p in sleeve.option_positions}}
        for key, want in book.items():
            got = have[key]
            if isinstance(want, dict):
                field = "positions" if key == "positions" else "option_positions"
                tol = 1e-12 if key == "positions" else 1e-9
                for sym in sorted(set(want) | set(got)):
                    if abs(want.get(sym, 0.0) - got.get(sym, 0.0)) > tol:
                        diffs.append(Difference(sid, f"{field}[{sym}]", got.get(sym), want.get(sym)))
            elif isinstance(want, float) and abs(want - got) > tolerance_usd * max(1.0, abs(want)) or isinstance(want, int) and want != got:
                diffs.append(Difference(sid, key, got, want))
    for sid, orphan in by_sleeve.items():
        diffs.append(Difference(sid, "sleeve", None, f"{len(orphan)} trades in the log for a strategy not in state"))
    return diffs


def blocks_summary(blocks: Mapping[str, Block]) -> str:
    return ", ".join(f"{b.code} until {utc_iso(b.until) if b.until else 'reset'}" for b in blocks.values())
