"""The engine's one transition: ``step(state, intents, marks, ...) -> events``.

Order inside a step, for every sleeve: expired blocks are lifted, positions
are marked to market, protective stops and the drawdown kill switch are
checked (exits first, always allowed), then the cycle's signals are applied:
sells close longs, buys open them if no rule blocks the entry.

``state`` is mutated in place: pass a copy you own. Nothing here reads the
clock, the network or files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from market.rules import MarketRules
from scheduler.engine import fills
from scheduler.engine.fills import Costs, Rejected
from scheduler.engine.models import Block, Position, Sleeve, State, Trade, utc_iso

DEFAULT_RULES = MarketRules("*", amount_step=1e-8, min_amount=1e-8, min_notional_usd=5.0)


@dataclass(frozen=True)
class SleeveRules:
    """Everything the engine needs to know about one strategy's sleeve."""

    costs: Costs
    max_drawdown_pct: float
    drawdown_block: timedelta = timedelta(hours=24)
    close_on_drawdown: bool = False
    sizing_mode: Literal["fixed_fraction", "fixed_usd"] = "fixed_fraction"
    sizing_value: float = 0.95
    max_quote_age: timedelta = timedelta(hours=2)
    recent_trades_kept: int = 200


@dataclass(frozen=True)
class SpotIntent:
    """A checker's decision for one strategy: 1 buy, -1 sell, 0 hold, at a quote."""

    strategy_id: str
    symbol: str
    signal: int
    price: float | None
    price_at: datetime  # close time of the candle the price comes from
    stop_price: float | None = None


@dataclass(frozen=True)
class Mark:
    price: float | None
    at: datetime


@dataclass(frozen=True)
class Event:
    """Something that happened; every state change is one. JSON-ready via ``as_json``."""

    kind: str  # fill | rejected | block | unblock | hold | skip
    strategy_id: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "strategy": self.strategy_id, "at": utc_iso(self.at), **self.data}


# ---------------------------------------------------------------------------------------------
# Valuation


def sleeve_equity(sleeve: Sleeve) -> float | None:
    """Cash plus positions at their marks; None when any position has no price."""
    total = sleeve.cash_usd
    for pos in sleeve.positions.values():
        if pos.mark_price is None:
            return None
        total += pos.quantity * pos.mark_price
    for opt in sleeve.option_positions:
        if opt.mark_usd is None:
            return None
        total += opt.mark_usd if opt.side == "long" else -opt.mark_usd
    return total


def apply_marks(sleeve: Sleeve, marks: Mapping[str, Mark]) -> None:
    """Refresh position marks from valid prices; an invalid price leaves the old mark."""
    for symbol, pos in sleeve.positions.items():
        mark = marks.get(symbol)
        if mark is not None and fills.valid_price(mark.price) and (pos.mark_at is None or mark.at >= pos.mark_at):
            pos.mark_price = float(mark.price)  # type: ignore[arg-type]
            pos.mark_at = mark.at


def _update_drawdown(sleeve: Sleeve, rules: SleeveRules, now: datetime) -> list[Event]:
    """Track the equity peak; trip the kill switch when drawdown exceeds the limit."""
    equity = sleeve_equity(sleeve)
    risk = sleeve.risk
    if equity is None:
        risk.drawdown_pct = None  # unknown value: no fake drawdown, no breaker
        return []
    risk.peak_equity_usd = max(risk.peak_equity_usd, equity)
    risk.drawdown_pct = (risk.peak_equity_usd - equity) / risk.peak_equity_usd * 100.0
    if risk.drawdown_pct <= rules.max_drawdown_pct or (risk.block and risk.block.code == "MAX_DRAWDOWN"):
        return []
    detail = (f"equity {equity:.2f} USD is {risk.drawdown_pct:.2f}% below its peak "
              f"{risk.peak_equity_usd:.2f} USD (limit {rules.max_drawdown_pct:g}%)")
    risk.block = Block(code="MAX_DRAWDOWN", detail=detail, since=now, until=now + rules.drawdown_block)
    return [Event("block", sleeve.id, now, {"code": "MAX_DRAWDOWN", "detail": detail,
                                           "until": utc_iso(now + rules.drawdown_block)})]


def _lift_expired(sleeve: Sleeve, now: datetime) -> list[Event]:
    block = sleeve.risk.block
    if block is None or block.until is None or block.until > now:
        return []
    sleeve.risk.block = None
    return [Event("unblock", sleeve.id, now, {"code": block.code})]


# ---------------------------------------------------------------------------------------------
# Orders


def _record(state: State, sleeve: Sleeve, trade: Trade, rules: SleeveRules) -> None:
    state.next_trade_seq += 1
    sleeve.trades.append(trade)
    if len(sleeve.trades) > rules.recent_trades_kept:
        del sleeve.trades[: len(sleeve.trades) - rules.recent_trades_kept]
    sleeve.trade_count += 1
    sleeve.fees_paid_usd += trade.fee_usd


def _close(state: State, sleeve: Sleeve, symbol: str, quote: float | None, rules: SleeveRules,
           now: datetime, cycle: int, reason: Literal["signal", "stop", "drawdown_close", "manual"]) -> Event:
    pos = sleeve.positions[symbol]
    result = fills.sell(quote, pos.quantity, pos.cost_basis_usd, rules.costs)  # type: ignore[arg-type]
    if isinstance(result, Rejected):
        return Event("rejected", sleeve.id, now, {"side": "sell", "symbol": symbol, "code": result.code,
                                                  "detail": result.detail})
    trade = Trade(seq=state.next_trade_seq, cycle=cycle, strategy_id=sleeve.id, symbol=symbol, side="sell",
                  quantity=result.quantity, quote_price=float(quote), fill_price=result.fill_price,  # type: ignore[arg-type]
                  notional_usd=result.notional_usd, fee_usd=result.fee_usd,
                  realized_pnl_usd=result.realized_pnl_usd, reason=reason, at=now)
    sleeve.cash_usd += result.proceeds_usd
    sleeve.realized_pnl_usd += result.realized_pnl_usd
    risk = sleeve.risk
    if result.realized_pnl_usd < 0:  # a loss: net realized P&L below zero, fees included
        risk.losses += 1
        risk.consecutive_losses += 1
    else:
        risk.wins += 1
        risk.consecutive_losses = 0
    del sleeve.positions[symbol]
    _record(state, sleeve, trade, rules)
    return Event("fill", sleeve.id, now, trade.model_dump(mode="json"))


def _entry_budget(sleeve: Sleeve, rules: SleeveRules) -> float:
    if rules.sizing_mode == "fixed_usd":
        return min(rules.sizing_value, sleeve.cash_usd)
    return sleeve.cash_usd * rules.sizing_value


def _open(state: State, sleeve: Sleeve, intent: SpotIntent, rules: SleeveRules, market: MarketRules,
          now: datetime, cycle: int) -> Event:
    block = sleeve.risk.block
    if block is not None:
        until = utc_iso(block.until) if block.until else "a manual reset"
        return Event("rejected", sleeve.id, now, {"side": "buy", "symbol": intent.symbol, "code": block.code,
                                                  "detail": f"entries blocked until {until}: {block.detail}"})
    result = fills.buy(intent.price, _entry_budget(sleeve, rules), rules.costs, market)  # type: ignore[arg-type]
    if isinstance(result, Rejected):
        return Event("rejected", sleeve.id, now, {"side": "buy", "symbol": intent.symbol, "code": result.code,
                                                  "detail": result.detail})
    trade = Trade(seq=state.next_trade_seq, cycle=cycle, strategy_id=sleeve.id, symbol=intent.symbol,
                  side="buy", quantity=result.quantity, quote_price=float(intent.price),  # type: ignore[arg-type]
                  fill_price=result.fill_price, notional_usd=result.notional_usd, fee_usd=result.fee_usd,
                  reason="signal", at=now)
    sleeve.cash_usd -= result.cost_usd
    sleeve.positions[intent.symbol] = Position(
        symbol=intent.symbol, quantity=result.quantity, entry_price=result.fill_price,
        cost_basis_usd=result.cost_usd, entry_fee_usd=result.fee_usd, opened_at=now,
        stop_price=intent.stop_price, mark_price=float(intent.price), mark_at=intent.price_at,  # type: ignore[arg-type]
    )
    _record(state, sleeve, trade, rules)
    return Event("fill", sleeve.id, now, trade.model_dump(mode="json"))


def _apply_intent(state: State, sleeve: Sleeve, intent: SpotIntent, rules: SleeveRules,
                  market: MarketRules, now: datetime, cycle: int) -> Event:
    data = {"symbol": intent.symbol, "signal": intent.signal, "price": intent.price}
    if intent.signal == 0:
        return Event("hold", sleeve.id, now, data)
    if not fills.valid_price(intent.price):
        return Event("rejected", sleeve.id, now, {**data, "code": "NO_PRICE",
                                                  "detail": f"no usable price (got {intent.price!r})"})
    if now - intent.price_at > rules.max_quote_age:
        return Event("rejected", sleeve.id, now, {**data, "code": "STALE_PRICE",
                                                  "detail": f"quote from {utc_iso(intent.price_at)} is older than "
                                                            f"{rules.max_quote_age}"})
    held = intent.symbol in sleeve.positions
    if intent.signal < 0:
        if not held:
            return Event("hold", sleeve.id, now, {**data, "note": "sell signal with no position (long-only)"})
        return _close(state, sleeve, intent.symbol, intent.price, rules, now, cycle, "signal")
    if held:
        return Event("hold", sleeve.id, now, {**data, "note": "buy signal while already long"})
    return _open(state, sleeve, intent, rules, market, now, cycle)


def _protective_exits(state: State, sleeve: Sleeve, rules: SleeveRules, now: datetime, cycle: int) -> list[Event]:
    events: list[Event] = []
    for symbol in list(sleeve.positions):
        pos = sleeve.positions[symbol]
        if pos.stop_price is not None and pos.mark_price is not None and pos.mark_price <= pos.stop_price:
            events.append(_close(state, sleeve, symbol, pos.mark_price, rules, now, cycle, "stop"))
    if rules.close_on_drawdown and sleeve.risk.block and sleeve.risk.block.code == "MAX_DRAWDOWN" \
            and sleeve.risk.block.since == now:
        for symbol in list(sleeve.positions):
            events.append(_close(state, sleeve, symbol, sleeve.positions[symbol].mark_price, rules, now, cycle,
                                 "drawdown_close"))
    return events


def step(
    state: State,
    intents: Sequence[SpotIntent],
    marks: Mapping[str, Mark],
    rules: Mapping[str, SleeveRules],
    market_rules: Mapping[str, MarketRules],
    now: datetime,
    cycle: int,
) -> list[Event]:
    """Advance ``state`` (in place) by one cycle's marks and signals; return what happened."""
    events: list[Event] = []
    by_symbol: dict[str, Mark] = dict(marks)
    for intent in intents:  # a checker's closed-candle price is a mark too, unless a fresher one exists
        if fills.valid_price(intent.price):
            current = by_symbol.get(intent.symbol)
            if current is None or not fills.valid_price(current.price) or current.at < intent.price_at:
                by_symbol[intent.symbol] = Mark(intent.price, intent.price_at)
    for sid, sleeve in state.sleeves.items():
        if sid not in rules:
            continue
        events += _lift_expired(sleeve, now)
        apply_marks(sleeve, by_symbol)
        events += _update_drawdown(sleeve, rules[sid], now)
        events += _protective_exits(state, sleeve, rules[sid], now, cycle)
    for intent in intents:
        sleeve = state.sleeves[intent.strategy_id]
        market = market_rules.get(intent.symbol, DEFAULT_RULES)
        events.append(_apply_intent(state, sleeve, intent, rules[intent.strategy_id], market, now, cycle))
    for sid in {i.strategy_id for i in intents}:
        events += _update_drawdown(state.sleeves[sid], rules[sid], now)
    return events
