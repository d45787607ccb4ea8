"""The engine's one transition: ``step(state, intents, marks, bars, rules, ...) -> events``.

Order inside a step:
1. expired blocks are lifted; positions are marked to market;
2. protective stops are checked against every closed candle since the last
   check (fill at the stop, or at the open when the candle gapped through it);
3. per-strategy breakers (drawdown kill switch, optional force-close), then the
   account's (UTC day roll, daily loss, portfolio kill switch);
4. the cycle's sells (exits always run), then its buys, each entry through the
   blocks, the sizing mode and the account caps;
5. when anything filled after a sleeve's breakers ran, the breakers of 3 again on the
   equity after the fills (with nothing filled they would find what they found).

Options (scheduler/engine/option_book.py) go through the same step: in 1, option
positions are marked from ``option_quotes`` (greeks and margin refreshed); after the
stops, expired options settle at ``delivery_prices`` and sold options are bought back by
the theta-harvest rules; in 4, option closes run with the sells and option entries after
the spot buys, through the blocks, cash, margin and the options limits.

``state`` is mutated in place: pass a copy you own. Nothing here reads the
clock, the network or files; everything comes in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from scheduler.engine import fills, margin, risk
from scheduler.engine.fills import Costs, Rejected
from scheduler.engine.market_rules import MarketRules
from scheduler.engine.models import Block, Position, Sleeve, State, Trade, utc_iso
from scheduler.engine.option_book import OptionDesk
from scheduler.engine.option_fills import OptionIntent, OptionLimits, OptionMark, OptionRules
from scheduler.engine.risk import ACCOUNT, AccountRules
from scheduler.engine.timeframes import timeframe_ms

DEFAULT_RULES = MarketRules("*", amount_step=1e-8, min_amount=1e-8, min_notional_usd=5.0)


@lru_cache(maxsize=256)
def default_rules(symbol: str) -> MarketRules:
    """``DEFAULT_RULES`` for a symbol whose market rules the source did not give (a refusal
    names the symbol, not "*")."""
    return replace(DEFAULT_RULES, symbol=symbol)
Reason = Literal["signal", "stop", "drawdown_close", "manual"]  # the spot reasons
SellReason = Literal["signal", "stop", "drawdown_close", "manual", "assignment"]  # a wheel's call delivers spot


@dataclass(frozen=True)
class SleeveRules:
    """Everything the engine needs to know about one strategy's sleeve."""

    costs: Costs
    max_drawdown_pct: float
    drawdown_block: timedelta = timedelta(hours=24)
    close_on_drawdown: bool = False
    consecutive_losses: int = 5
    loss_cooldown: timedelta = timedelta(minutes=60)
    sizing_mode: Literal["fixed_fraction", "fixed_usd", "risk_based"] = "fixed_fraction"
    sizing_value: float = 0.95  # the fraction, the USD amount, or the risk percent
    risk_cap_pct: float = 15.0  # risk_based: at most this % of the sleeve's equity per position
    stop_loss_pct: float | None = None  # attach a protective stop this far below every entry fill
    timeframe: str = "1h"
    max_quote_age: timedelta = timedelta(hours=2)
    recent_trades_kept: int = 200


@dataclass(frozen=True)
class SpotIntent:
    """A decision for one strategy: 1 buy, -1 sell, 0 hold, at a quote."""

    strategy_id: str
    symbol: str
    signal: int
    price: float | None
    price_at: datetime  # when the price was had: the ticker's time, or a hold's candle close time
    stop_price: float | None = None  # a strategy's protective stop, relative to ``price``
    reason: Literal["signal", "manual"] = "signal"


@dataclass(frozen=True)
class Mark:
    price: float | None
    at: datetime


@dataclass(frozen=True)
class Bar:
    """One closed candle: what stops are checked against."""

    open_ms: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class Event:
    """Something that happened; every state change is one. JSON-ready via ``as_json``."""

    kind: str  # fill | rejected | block | unblock | hold
    strategy_id: str  # or "account"
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "strategy": self.strategy_id, "at": utc_iso(self.at), **self.data}


def _block_event(scope: str, b: Block) -> Event:
    return Event("block", scope, b.since, {"code": b.code, "detail": b.detail,
                                          "until": utc_iso(b.until) if b.until else None})


# ---------------------------------------------------------------------------------------------
# Valuation


def sleeve_equity(sleeve: Sleeve) -> float | None:
    """Cash plus positions at their marks (option longs +mark x quantity, shorts -mark x
    quantity); None when any position has no price."""
    total = sleeve.cash_usd
    for pos in sleeve.positions.values():
        if not fills.valid_price(pos.mark_price):  # None, 0, negative, NaN: no price, never a value
            return None
        total += pos.quantity * pos.mark_price  # type: ignore[operator]
    for opt in sleeve.option_positions:
        if opt.mark_usd is None:
            return None
        value = opt.mark_usd * opt.quantity  # mark_usd is per contract (1 coin)
        total += value if opt.side == "long" else -value
    return total


def account_equity(state: State, ids: Sequence[str]) -> float | None:
    total = 0.0
    for sid in ids:
        value = sleeve_equity(state.sleeves[sid])
        if value is None:
            return None
        total += value
    return total


def exposure_usd(state: State, ids: Sequence[str]) -> float:
    """Marked value of every open position (unpriced ones make the account unknown first)."""
    return sum(p.quantity * (p.mark_price or 0.0) for sid in ids for p in state.sleeves[sid].positions.values())


def apply_marks(sleeve: Sleeve, marks: Mapping[str, Mark]) -> None:
    """Refresh position marks from valid prices; an invalid price leaves the old mark."""
    for symbol, pos in sleeve.positions.items():
        mark = marks.get(symbol)
        if mark is not None and fills.valid_price(mark.price) and (pos.mark_at is None or mark.at >= pos.mark_at):
            pos.mark_price = float(mark.price)  # type: ignore[arg-type]
            pos.mark_at = mark.at


# ---------------------------------------------------------------------------------------------
# Orders


class _Book:
    """One step's working context: the state, the rules, and the events so far."""

    def __init__(self, state: State, rules: Mapping[str, SleeveRules], account_rules: AccountRules,
                 market_rules: Mapping[str, MarketRules], now: datetime, cycle: int) -> None:
        self.state, self.rules, self.account_rules = state, rules, account_rules
        self.market_rules, self.now, self.cycle = market_rules, now, cycle
        self.ids = [sid for sid in rules if sid in state.sleeves]
        self.events: list[Event] = []
        self.fills = 0  # fills booked so far in this step
        self.options: OptionDesk | None = None  # set by step

    def emit(self, kind: str, scope: str, **data: Any) -> Event:
        event = Event(kind, scope, self.now, data)
        self.events.append(event)
        return event

    def record(self, sleeve: Sleeve, trade: Trade) -> Event:
        """Book ``trade`` in the sleeve's recent trades and counters; return its fill event."""
        self.state.next_trade_seq += 1
        self.fills += 1
        sleeve.trades.append(trade)
        keep = self.rules[sleeve.id].recent_trades_kept
        if len(sleeve.trades) > keep:
            del sleeve.trades[: len(sleeve.trades) - keep]
        sleeve.trade_count += 1
        sleeve.fees_paid_usd += trade.fee_usd
        return self.emit("fill", sleeve.id, **trade.model_dump(mode="json", exclude={"at", "strategy_id"}))

    def close(self, sleeve: Sleeve, symbol: str, quote: float | None, reason: Reason) -> bool:
        """Sell the whole spot position at ``quote``, with the sleeve's slippage and fee."""
        return self.sell(sleeve, symbol, sleeve.positions[symbol].quantity, quote, reason,
                         self.rules[sleeve.id].costs) is not None

    def sell(self, sleeve: Sleeve, symbol: str, quantity: float, quote: float | None, reason: SellReason,
             costs: Costs) -> Event | None:
        """Sell ``quantity`` of a spot position (all of it at most) at ``quote`` with ``costs``;
        return the fill event, or None when refused (the rejection is an event).

        A part sale takes its share of the cost basis and of the entry fee, so the realized
        P&L of the parts adds up to that of one whole sale; the rest stays open."""
        pos = sleeve.positions[symbol]
        whole = quantity >= pos.quantity - 1e-12  # float noise never leaves a dust position
        q = pos.quantity if whole else quantity
        share = 1.0 if whole else q / pos.quantity
        result = fills.sell(quote, q, pos.cost_basis_usd * share, costs)  # type: ignore[arg-type]
        if isinstance(result, Rejected):
            self.emit("rejected", sleeve.id, side="sell", symbol=symbol, code=result.code, detail=result.detail)
            return None
        trade = Trade(seq=self.state.next_trade_seq, cycle=self.cycle, strategy_id=sleeve.id, symbol=symbol,
                      side="sell", quantity=result.quantity, quote_price=float(quote),  # type: ignore[arg-type]
                      fill_price=result.fill_price, notional_usd=result.notional_usd, fee_usd=result.fee_usd,
                      realized_pnl_usd=result.realized_pnl_usd, reason=reason, at=self.now)
        sleeve.cash_usd += result.proceeds_usd
        sleeve.realized_pnl_usd += result.realized_pnl_usd
        if whole:
            del sleeve.positions[symbol]
        else:
            pos.quantity = round(pos.quantity - q, 12)
            pos.cost_basis_usd -= pos.cost_basis_usd * share
            pos.entry_fee_usd -= pos.entry_fee_usd * share
        fill = self.record(sleeve, trade)
        rules = self.rules[sleeve.id]
        tripped = risk.record_close(sleeve, result.realized_pnl_usd, self.now, rules.consecutive_losses,
                                    rules.loss_cooldown)
        if tripped:
            self.events.append(_block_event(sleeve.id, tripped))
        return fill

    def _reject(self, sleeve: Sleeve, intent: SpotIntent, code: str, detail: str) -> None:
        self.emit("rejected", sleeve.id, side="buy", symbol=intent.symbol, code=code, detail=detail)

    def _budget(self, sleeve: Sleeve, rules: SleeveRules, fill_price: float, stop: float | None) -> float | str:
        """Cash to spend (fee included) by the sizing mode, or a rejection detail."""
        if rules.sizing_mode == "fixed_usd":
            return min(rules.sizing_value, margin.free_cash_usd(sleeve))
        if rules.sizing_mode == "fixed_fraction":
            return margin.free_cash_usd(sleeve) * rules.sizing_value  # margin reserved for shorts is not spent
        equity = sleeve_equity(sleeve)
        if stop is None:
            return "risk-based sizing needs a protective stop, and this entry has none (set stop_loss_pct)"
        if equity is None:
            return "risk-based sizing needs the sleeve's equity, and a position is unpriced"
        distance = fill_price - stop
        if distance <= 0:
            return f"stop {stop:.2f} is not below the fill {fill_price:.2f}"
        notional = min(equity * rules.sizing_value / 100 / distance * fill_price, equity * rules.risk_cap_pct / 100)
        return min(notional * (1 + rules.costs.fee_rate), margin.free_cash_usd(sleeve))

    def open(self, sleeve: Sleeve, intent: SpotIntent) -> None:
        rules = self.rules[sleeve.id]
        blocks = {**self.state.account.blocks, **sleeve.risk.blocks}
        if blocks:
            b = next(iter(blocks.values()))
            until = utc_iso(b.until) if b.until else "a manual reset"
            return self._reject(sleeve, intent, b.code, f"entries blocked until {until}: {b.detail}")
        equity = account_equity(self.state, self.ids)
        if equity is None:
            return self._reject(sleeve, intent, "ACCOUNT_VALUE_UNKNOWN",
                                "a position somewhere has no price, so the account caps cannot be checked")
        quote = float(intent.price)  # type: ignore[arg-type]
        fill_price = quote * (1 + rules.costs.slippage_rate)
        stop_frac = (1 - intent.stop_price / quote) if intent.stop_price else (
            rules.stop_loss_pct / 100 if rules.stop_loss_pct else None)
        stop = fill_price * (1 - stop_frac) if stop_frac and 0 < stop_frac < 1 else None
        budget = self._budget(sleeve, rules, fill_price, stop)
        if isinstance(budget, str):
            return self._reject(sleeve, intent, "NO_STOP" if "stop" in budget else "SIZING", budget)
        cap, cap_code = risk.entry_cap_usd(equity, exposure_usd(self.state, self.ids), self.account_rules)
        capped_by = None
        if budget / (1 + rules.costs.fee_rate) > cap:
            if cap <= 0:
                return self._reject(sleeve, intent, cap_code, f"no room left under {cap_code} ({cap:.2f} USD)")
            budget, capped_by = cap * (1 + rules.costs.fee_rate), cap_code
        market = self.market_rules.get(intent.symbol) or default_rules(intent.symbol)
        result = fills.buy(quote, budget, rules.costs, market)
        if isinstance(result, Rejected):
            code = capped_by if capped_by and result.code.startswith("BELOW_MIN") else result.code
            return self._reject(sleeve, intent, code, result.detail + (f" (after {capped_by} cap)" if capped_by else ""))
        tf_ms = timeframe_ms(rules.timeframe)
        trade = Trade(seq=self.state.next_trade_seq, cycle=self.cycle, strategy_id=sleeve.id, symbol=intent.symbol,
                      side="buy", quantity=result.quantity, quote_price=quote, fill_price=result.fill_price,
                      notional_usd=result.notional_usd, fee_usd=result.fee_usd, reason=intent.reason, at=self.now)
        sleeve.cash_usd -= result.cost_usd
        sleeve.positions[intent.symbol] = Position(
            symbol=intent.symbol, quantity=result.quantity, entry_price=result.fill_price,
            cost_basis_usd=result.cost_usd, entry_fee_usd=result.fee_usd, opened_at=self.now,
            stop_price=result.fill_price * (1 - stop_frac) if stop is not None and stop_frac else None,
            stop_checked_to_ms=int(intent.price_at.timestamp() * 1000) - tf_ms,
            mark_price=quote, mark_at=intent.price_at,
        )
        self.record(sleeve, trade)
        if capped_by:
            self.events[-1].data["capped_by"] = capped_by

    # -- the phases of a step -----------------------------------------------------------------
    def check_stops(self, sleeve: Sleeve, bars: Mapping[tuple[str, str], Sequence[Bar]]) -> None:
        tf = self.rules[sleeve.id].timeframe
        for symbol in list(sleeve.positions):
            pos = sleeve.positions[symbol]
            if pos.stop_price is None:
                continue
            seen = pos.stop_checked_to_ms if pos.stop_checked_to_ms is not None else -1
            for bar in (b for b in bars.get((symbol, tf), ()) if b.open_ms > seen):
                pos.stop_checked_to_ms = bar.open_ms
                if bar.open <= pos.stop_price or bar.low <= pos.stop_price:
                    price = bar.open if bar.open <= pos.stop_price else pos.stop_price  # gapped through: the open
                    self.close(sleeve, symbol, price, "stop")
                    break

    def sleeve_breakers(self, sleeve: Sleeve) -> None:
        rules = self.rules[sleeve.id]
        equity = sleeve_equity(sleeve)
        r = sleeve.risk
        if equity is None:
            r.drawdown_pct = None  # unknown value: no fake drawdown, no breaker
            return
        r.peak_equity_usd = max(r.peak_equity_usd, equity)
        r.drawdown_pct = (r.peak_equity_usd - equity) / r.peak_equity_usd * 100.0
        if r.drawdown_pct <= rules.max_drawdown_pct:
            return
        detail = (f"equity {equity:.2f} USD is {r.drawdown_pct:.2f}% below its peak {r.peak_equity_usd:.2f} USD "
                  f"(limit {rules.max_drawdown_pct:g}%)")
        b = risk.add_block(r.blocks, "MAX_DRAWDOWN", detail, self.now, self.now + rules.drawdown_block)
        if b:
            self.events.append(_block_event(sleeve.id, b))
            if rules.close_on_drawdown:
                for symbol in list(sleeve.positions):
                    self.close(sleeve, symbol, sleeve.positions[symbol].mark_price, "drawdown_close")
                for opt in list(sleeve.option_positions) if self.options else ():
                    self.options.close(sleeve, opt, opt.quantity, "drawdown_close")  # type: ignore[union-attr]

    def account_breakers(self) -> None:
        before = list(self.state.account.members)
        blocks = risk.account_checks(self.state, self.ids, account_equity(self.state, self.ids), self.account_rules,
                                     self.now)
        if self.state.account.members != before and before:
            self.emit("rebase", ACCOUNT, detail=f"the configured strategies changed ({len(before)} -> "
                      f"{len(self.state.account.members)}); account peak and day-start rebased to the new sum")
        for b in blocks:
            self.events.append(_block_event(ACCOUNT, b))

    def apply(self, intent: SpotIntent) -> None:
        sleeve = self.state.sleeves[intent.strategy_id]
        rules = self.rules[intent.strategy_id]
        data = {"symbol": intent.symbol, "signal": intent.signal, "price": intent.price}
        if intent.signal == 0:
            self.emit("hold", sleeve.id, **data)
        elif not fills.valid_price(intent.price):
            self.emit("rejected", sleeve.id, **data, code="NO_PRICE", detail=f"no usable price (got {intent.price!r})")
        elif self.now - intent.price_at > rules.max_quote_age:
            self.emit("rejected", sleeve.id, **data, code="STALE_PRICE",
                      detail=f"quote from {utc_iso(intent.price_at)} is older than {rules.max_quote_age}")
        elif intent.signal < 0:
            if intent.symbol in sleeve.positions:
                self.close(sleeve, intent.symbol, intent.price, "manual" if intent.reason == "manual" else "signal")
            else:
                self.emit("hold", sleeve.id, **data, note="sell signal with no position (long-only)")
        elif intent.symbol in sleeve.positions:
            self.emit("hold", sleeve.id, **data, note="buy signal while already long")
        else:
            self.open(sleeve, intent)


def step(
    state: State,
    intents: Sequence[SpotIntent],
    marks: Mapping[str, Mark],
    rules: Mapping[str, SleeveRules],
    market_rules: Mapping[str, MarketRules],
    now: datetime,
    cycle: int,
    *,
    bars: Mapping[tuple[str, str], Sequence[Bar]] | None = None,
    account_rules: AccountRules | None = None,
    option_intents: Sequence[OptionIntent] = (),
    option_quotes: Mapping[str, OptionMark] | None = None,
    index_prices: Mapping[str, float] | None = None,
    delivery_prices: Mapping[str, Mapping[int, float]] | None = None,
    option_rules: Mapping[str, OptionRules] | None = None,
    account_option_limits: OptionLimits | None = None,
) -> list[Event]:
    """Advance ``state`` (in place) by one cycle's marks, candles and signals; return what happened.

    ``rules`` names the sleeves that take part (the configured strategies); the
    account is their sum. Options: ``option_quotes`` by instrument name,
    ``index_prices`` by underlying (USD; used where a quote has no index),
    ``delivery_prices[underlying][expiry_ms]`` for settling expired options,
    ``option_rules`` by strategy id (defaults: ``OptionRules()``), and the account-wide
    ``account_option_limits`` (default: none).
    """
    book = _Book(state, rules, account_rules or AccountRules(), market_rules, now, cycle)
    desk = OptionDesk(book, option_rules or {}, option_quotes or {}, index_prices or {}, delivery_prices or {},
                      account_option_limits or OptionLimits(), sleeve_equity,
                      lambda: account_equity(state, book.ids))
    book.options = desk
    try:
        return _phases(book, desk, state, intents, marks, bars, option_intents, now)
    finally:
        # the book and the desk refer to each other: cut that here, so the step's objects are
        # freed by reference counting when it returns (a cycle per step would wait for the
        # cyclic collector, which a 75,000-bar replay paid ~10 % of its time for)
        book.options = None


def _phases(book: _Book, desk: OptionDesk, state: State, intents: Sequence[SpotIntent], marks: Mapping[str, Mark],
            bars: Mapping[tuple[str, str], Sequence[Bar]] | None, option_intents: Sequence[OptionIntent],
            now: datetime) -> list[Event]:
    """The phases of ``step`` in the order its docstring gives."""
    by_symbol: dict[str, Mark] = dict(marks)
    for intent in intents:  # a checker's closed-candle price is a mark too, unless a fresher one exists
        if fills.valid_price(intent.price):
            current = by_symbol.get(intent.symbol)
            if current is None or not fills.valid_price(current.price) or current.at < intent.price_at:
                by_symbol[intent.symbol] = Mark(intent.price, intent.price_at)
    desk.spot_marks = by_symbol  # an assigned coin is marked at the step's price, not the older delivery
    for b in risk.lift_expired(state.account.blocks, now):
        book.emit("unblock", ACCOUNT, code=b.code)
    changed = False  # whether a fill after a sleeve's breaker pass needs the passes run again
    for sid in book.ids:
        sleeve = state.sleeves[sid]
        apply_marks(sleeve, by_symbol)
        if sleeve.option_positions:  # (with none, the desk has nothing to mark, settle or harvest)
            desk.mark(sleeve)
        for b in risk.lift_expired(sleeve.risk.blocks, now):
            book.emit("unblock", sid, code=b.code)
            equity = sleeve_equity(sleeve)
            if b.code == "MAX_DRAWDOWN" and equity is not None and equity > 0:
                # a fresh start after the cool-off (see risk.py); a sleeve worth nothing (an options
                # one that owes cash) has no peak to start from: the old one stays, and it trips again
                sleeve.risk.peak_equity_usd = equity
        book.check_stops(sleeve, bars or {})
        if sleeve.option_positions:
            desk.settle(sleeve)  # expiries and the theta harvest are exits: they always run
            desk.harvest(sleeve)
        before = book.fills
        book.sleeve_breakers(sleeve)
        changed = changed or book.fills > before  # a drawdown close after the drawdown was taken
    book.account_breakers()
    known = [i for i in option_intents if i.strategy_id in book.ids]
    for oi in option_intents:
        if oi.strategy_id not in book.ids:
            book.emit("rejected", oi.strategy_id, side="options", code="UNKNOWN_STRATEGY",
                      detail=f"no configured sleeve {oi.strategy_id!r} for this options intent")
    before_orders = book.fills
    for intent in sorted(intents, key=lambda i: i.signal >= 0):  # exits before entries
        if intent.signal >= 0:
            break
        book.apply(intent)
    for oi in known:
        desk.apply_closes(oi)
    for intent in intents:
        if intent.signal >= 0:
            book.apply(intent)
    for oi in known:
        desk.apply_entries(oi)
    if changed or book.fills > before_orders:  # the breakers again, on the equity after the fills
        for sid in {i.strategy_id for i in intents} | {i.strategy_id for i in known}:
            book.sleeve_breakers(state.sleeves[sid])
        book.account_breakers()
    return book.events
