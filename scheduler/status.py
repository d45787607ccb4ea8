"""The /status document: built from committed state only (README: State, logs, status)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from scheduler.config import Config
from scheduler.engine import option_risk
from scheduler.engine.models import OptionPosition, State, utc_iso
from scheduler.engine.step import account_equity, exposure_usd, sleeve_equity


def _opt_iso(t: datetime | None) -> str | None:
    return utc_iso(t) if t else None


RECENT_TRADES_SHOWN = 10


def _option_leg(o: OptionPosition) -> dict[str, Any]:
    """One option position as held, with its value and unrealized P&L at the last mark
    (a short's value is negative: buying it back costs that)."""
    sign = 1.0 if o.side == "long" else -1.0
    value = None if o.mark_usd is None else sign * o.mark_usd * o.quantity
    entry = sign * o.entry_premium_usd * o.quantity
    return {**o.model_dump(mode="json"), "value_usd": value,
            "unrealized_pnl_usd": None if value is None else value - entry - o.entry_fee_usd}


def build_status(state: State, config: Config, prices: Mapping[str, float | None], *,
                 started_at: datetime, halted: str | None, controls_enabled: bool = False,
                 notifications: dict[str, Any] | None = None) -> dict[str, Any]:
    strategies = []
    total: float | None = 0.0
    for s in config.strategies:
        sleeve = state.sleeves.get(s.id)
        if sleeve is None:
            continue
        equity = sleeve_equity(sleeve)
        total = None if equity is None or total is None else total + equity
        positions = []
        for p in sleeve.positions.values():
            value = p.quantity * p.mark_price if p.mark_price is not None else None
            positions.append({
                "symbol": p.symbol, "quantity": p.quantity, "entry_price": p.entry_price,
                "cost_basis_usd": p.cost_basis_usd, "mark_price": p.mark_price, "mark_at": _opt_iso(p.mark_at),
                "value_usd": value, "unrealized_pnl_usd": None if value is None else value - p.cost_basis_usd,
                "stop_price": p.stop_price, "opened_at": utc_iso(p.opened_at),
            })
        interval = config.interval_for(s)
        strategies.append({
            "id": s.id, "type": s.type, "strategy": s.strategy_name, "args": s.args,
            "cash_usd": sleeve.cash_usd, "initial_capital_usd": sleeve.initial_capital_usd,
            "positions": positions,
            "option_positions": [_option_leg(o) for o in sleeve.option_positions],
            "options": option_risk.sleeve_summary(sleeve) if s.type == "options" else None,
            "portfolio_value_usd": equity,
            "value_note": None if equity is not None else "unknown: a position has no price",
            "pnl_usd": None if equity is None else equity - sleeve.initial_capital_usd,
            "pnl_pct": None if equity is None else (equity / sleeve.initial_capital_usd - 1) * 100,
            "realized_pnl_usd": sleeve.realized_pnl_usd, "fees_paid_usd": sleeve.fees_paid_usd,
            "trade_count": sleeve.trade_count,
            "recent_trades": [t.model_dump(mode="json", exclude={"strategy_id"})
                              for t in sleeve.trades[-RECENT_TRADES_SHOWN:]],
            "risk": {
                "peak_equity_usd": sleeve.risk.peak_equity_usd, "drawdown_pct": sleeve.risk.drawdown_pct,
                "max_drawdown_pct": s.drawdown_pct, "consecutive_losses": sleeve.risk.consecutive_losses,
                "wins": sleeve.risk.wins, "losses": sleeve.risk.losses,
                "blocks": [b.model_dump(mode="json") for b in sleeve.risk.blocks.values()],
                "entries_blocked": bool(sleeve.risk.blocks or state.account.blocks),
            },
            "interval_seconds": interval,
            "last_run_at": _opt_iso(sleeve.last_run_at),
            "next_run_at": _opt_iso(sleeve.last_run_at + timedelta(seconds=interval)) if sleeve.last_run_at else None,
            "last_check": sleeve.last_check.model_dump(mode="json") if sleeve.last_check else None,
        })
    ids = [s.id for s in config.strategies if s.id in state.sleeves]
    equity = account_equity(state, ids)
    acct = state.account
    account = {
        "equity_usd": equity, "peak_equity_usd": acct.peak_equity_usd,
        "exposure_usd": exposure_usd(state, ids) if equity is not None else None,
        "day": acct.day, "day_start_equity_usd": acct.day_start_equity_usd,
        "blocks": [b.model_dump(mode="json") for b in acct.blocks.values()],
        "recent_audit": [a.model_dump(mode="json") for a in acct.audit[-10:]],
        "last_reconcile": state.last_reconcile,
        "options": option_risk.account_summary(state, ids),
    }
    return {
        "cycle_count": state.cycle_count, "last_cycle_at": _opt_iso(state.last_cycle_at),
        "started_at": utc_iso(started_at), "halted": halted, "market": config.market.source,
        "synthetic_market": config.market.source == "synthetic",
        "controls_enabled": controls_enabled,
        "prices": dict(prices), "total_value_usd": total, "account": account, "strategies": strategies,
        "notifications": notifications or {"enabled": False},
    }
