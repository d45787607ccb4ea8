"""The options phases of a step (REFERENCE section 7): marks, expiry, theta harvest, closes, entries.

Cash: a buy pays ``premium_usd x quantity + fee``, a sell receives ``premium_usd x
quantity - fee`` (option_fills). Equity counts longs at +mark x quantity and shorts at
-mark x quantity (step.sleeve_equity). Margin (margin.py) is a reservation on cash for
entries, not a payment.

Expiry (08:00 UTC, the instrument's ``expiry``): at the first step at or after it, the
position settles at the caller's delivery price ``delivery_prices[underlying][expiry_ms]``
(Deribit's: the average of the index over the last 30 minutes before expiry). Without one
the position stays open and a ``settlement_pending`` event says so, every step: never a
guessed price. Settlement is a Trade (reason "expiry") at the intrinsic value V per
contract: a long sells at V (cash += V q - delivery fee), a short buys back at V (cash -=
V q + delivery fee); out of the money V = 0 and the fee is 0 (capped at 12.5 % of V).

The wheel's assignment, a short option with ``assign`` that expires in the money, is
settled in cash as above, then delivers the coin through the sleeve's spot position
``OptionRules.spot_symbol``, at the delivery price D and without a fee (a Trade with
reason "assignment"), so that in total the sleeve traded the coin at the strike K:

- A put (D < K) is cash-settled (cash -= (K - D) q + fee, its realized P&L booked on the
  option), and then the sleeve buys q coin at D (cash -= D q). In total cash falls by
  K q + fee and the sleeve holds q coin: exactly buying at the strike, with the put's
  loss (K - D) q counted once, on the put, and the coin's cost basis at D, its market
  value then. When the cash left cannot pay for all q, the sleeve buys what it can
  (rounded down to the spot market's step) and the event says so; a cash-secured put
  (the default) has reserved K q, so this happens only after other losses.
- A call (D > K) is cash-settled (cash -= (D - K) q + fee, booked on the call), and then
  the sleeve sells the coin that covered it at D (cash += D q), the sale booked as the
  spot engine books any sell (step._Book.sell: realized P&L against the coin's cost
  basis, the trade kept, the loss streak counted). In total cash rises by K q - fee and
  the coin is gone: exactly selling at the strike, so the wheel sells puts again. It
  sells min(q, the coin held less what covers the sleeve's other open short calls, per
  margin.allocate_cover), so delivering one call never strips another's cover; with
  less than q the fill's note says how much, with none an ``assignment_skipped`` event
  says why.

Position ids are ``"<strategy_id>:<seq>"`` with the account-wide seq of the opening fill,
so they never collide. A close names one position by id, or by instrument (and side);
none or more than one is a rejection. Opening the opposite side of a held instrument is
refused (close it instead), so one instrument is never long and short at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from scheduler.engine import margin, option_risk, risk
from scheduler.engine.fills import Costs, Rejected, round_down, valid_price
from scheduler.engine.models import (
    OptionFill,
    OptionPosition,
    Position,
    Sleeve,
    Trade,
    utc_from_ms,
    utc_iso,
)
from scheduler.engine.option_fills import (
    OptionIntent,
    OptionLeg,
    OptionLimits,
    OptionMark,
    OptionRules,
    PremiumFill,
    contract_quantity,
    delivery_fee_usd,
    intrinsic_usd,
    price,
)

if TYPE_CHECKING:
    from scheduler.engine.step import Event, _Book

DEFAULT_OPTION_RULES = OptionRules()
_NO_COSTS = Costs(fee_rate=0.0, slippage_rate=0.0)  # an assignment delivers at the delivery price, no fee
_EPS = 1e-9


def expiry_ms(pos: OptionPosition) -> int:
    return round(pos.expiry.timestamp() * 1000)


class OptionDesk:
    """One step's options work, on the step's ``_Book`` (state, clock, events, trade seqs)."""

    def __init__(self, book: _Book, rules: Mapping[str, OptionRules], quotes: Mapping[str, OptionMark],
                 index_prices: Mapping[str, float], delivery_prices: Mapping[str, Mapping[int, float]],
                 account_limits: OptionLimits, sleeve_equity: Callable[[Sleeve], float | None],
                 account_equity: Callable[[], float | None], spot_marks: Mapping[str, Any] | None = None) -> None:
        """``spot_marks``: the step's spot marks by symbol (step.Mark: ``price``, ``at``), the
        prices an assignment's coin is marked at (``_assign_put``); the step sets them once
        it has merged its marks (``desk.spot_marks = by_symbol``)."""
        self.book, self.rules, self.quotes = book, rules, quotes
        self.index_prices, self.delivery_prices = index_prices, delivery_prices
        self.account_limits = account_limits
        self.sleeve_equity, self.account_equity = sleeve_equity, account_equity
        self.spot_marks: Mapping[str, Any] = spot_marks if spot_marks is not None else {}

    def rules_for(self, sid: str) -> OptionRules:
        return self.rules.get(sid, DEFAULT_OPTION_RULES)

    def quote(self, instrument: str, underlying: str) -> OptionMark | None:
        """The instrument's quote, its index filled in from ``index_prices`` when it has none."""
        mark = self.quotes.get(instrument)
        if mark is not None and not valid_price(mark.index_usd) and valid_price(self.index_prices.get(underlying)):
            mark = replace(mark, index_usd=float(self.index_prices[underlying]))
        return mark

    def _refresh_margin(self, sleeve: Sleeve) -> None:
        r = self.rules_for(sleeve.id)
        margin.refresh_margin(sleeve, r.spot_symbol, r.cash_secured_assignment, r.margin)

    # -- marks ------------------------------------------------------------------------------
    def mark(self, sleeve: Sleeve) -> None:
        """Mark every position from the exchange's mark (coin x index); refresh greeks and margin."""
        for pos in sleeve.option_positions:
            m = self.quote(pos.instrument, pos.underlying)
            if m is None or not valid_price(m.mark_coin) or not valid_price(m.index_usd):
                continue
            if pos.mark_at is not None and m.at < pos.mark_at:
                continue  # an older quote never replaces a newer mark
            pos.mark_coin, pos.index_usd = float(m.mark_coin), float(m.index_usd)  # type: ignore[arg-type]
            pos.mark_usd, pos.mark_at = pos.mark_coin * pos.index_usd, m.at
            pos.mark_iv_pct = float(m.mark_iv_pct) if valid_price(m.mark_iv_pct) else None
            pos.greeks = m.greeks()  # what this quote says; none given = greeks unknown, not stale ones
        self._refresh_margin(sleeve)

    # -- expiry -----------------------------------------------------------------------------
    def settle(self, sleeve: Sleeve) -> None:
        """Settle every position whose expiry has come, at the delivery price (module doc)."""
        now_ms = round(self.book.now.timestamp() * 1000)
        for pos in sorted((p for p in sleeve.option_positions if expiry_ms(p) <= now_ms), key=expiry_ms):
            delivery = self.delivery_prices.get(pos.underlying, {}).get(expiry_ms(pos))
            if not valid_price(delivery):
                self.book.emit("settlement_pending", sleeve.id, position_id=pos.id, symbol=pos.instrument,
                               expiry=utc_iso(pos.expiry), detail=f"{pos.instrument} expired at "
                               f"{utc_iso(pos.expiry)}; waiting for its delivery price (got {delivery!r}) to settle")
                continue
            self._settle_one(sleeve, pos, float(delivery))  # type: ignore[arg-type]
        self._refresh_margin(sleeve)

    def _settle_one(self, sleeve: Sleeve, pos: OptionPosition, delivery: float) -> None:
        rules = self.rules_for(sleeve.id)
        value = intrinsic_usd(pos.option_type, pos.strike, delivery)
        q = pos.quantity
        fee = delivery_fee_usd(delivery, value, q, rules.fees)
        if pos.side == "long":
            cash_change = value * q - fee
            pnl = cash_change - (pos.entry_premium_usd * q + pos.entry_fee_usd)
        else:
            cash_change = -(value * q + fee)
            pnl = pos.entry_premium_usd * q - pos.entry_fee_usd + cash_change
        trade = self._trade(sleeve, pos, "sell" if pos.side == "long" else "buy", q, value, value * q, fee, pnl,
                            "expiry", "close", value / delivery, delivery, "delivery")
        assigned = pos.assign and pos.side == "short" and value > 0
        # read while the call is still open: the cover the others held next to it
        cover_by_others = self._cover_of_others(sleeve, pos) if assigned and pos.option_type == "call" else 0.0
        sleeve.option_positions.remove(pos)
        self._book_close(sleeve, trade, cash_change, pnl).data["delivery_price"] = delivery
        if assigned and pos.option_type == "put":
            self._assign_put(sleeve, pos, delivery)
        elif assigned:
            self._assign_call(sleeve, pos, delivery, cover_by_others)

    def _assign_put(self, sleeve: Sleeve, pos: OptionPosition, delivery: float) -> None:
        from scheduler.engine.step import DEFAULT_RULES  # noqa: I001  (spot market rules live with the spot engine)

        symbol = self.rules_for(sleeve.id).spot_symbol.format(underlying=pos.underlying)
        step = self.book.market_rules.get(symbol, DEFAULT_RULES).amount_step
        q = pos.quantity
        if delivery * q > sleeve.cash_usd + _EPS:
            q = round_down(max(sleeve.cash_usd, 0.0) / delivery, step)
        if q <= 0:
            self.book.emit("assignment_skipped", sleeve.id, position_id=pos.id, symbol=symbol,
                           detail=f"the put was cash-settled, but {sleeve.cash_usd:.2f} USD cash buys no {symbol} "
                           f"at {delivery:.2f}")
            return
        notional = delivery * q
        trade = Trade(seq=self.book.state.next_trade_seq, cycle=self.book.cycle, strategy_id=sleeve.id, symbol=symbol,
                      side="buy", quantity=q, quote_price=delivery, fill_price=delivery, notional_usd=notional,
                      fee_usd=0.0, reason="assignment", at=self.book.now)
        sleeve.cash_usd -= notional
        held = sleeve.positions.get(symbol)
        if held is None:
            mark_price, mark_at = self._coin_mark(symbol, pos, delivery)
            sleeve.positions[symbol] = Position(symbol=symbol, quantity=q, entry_price=delivery,
                                                cost_basis_usd=notional, entry_fee_usd=0.0, opened_at=self.book.now,
                                                mark_price=mark_price, mark_at=mark_at)
        else:  # adds to the coin already held, at the average price
            held.quantity += q
            held.cost_basis_usd += notional
            held.entry_price = held.cost_basis_usd / held.quantity
        self.book.record(sleeve, trade).data["note"] = (
            f"assigned: {pos.id} expired in the money; bought {q} {symbol} at the delivery price {delivery:.2f}"
            + (f" (cash paid for {q} of {pos.quantity})" if q < pos.quantity else ""))

    def _coin_mark(self, symbol: str, pos: OptionPosition, delivery: float) -> tuple[float, Any]:
        """(price, as of) to mark an assignment's new coin at: the step's own mark of ``symbol``
        when it has one taken at or after the expiry (fresher than the delivery price, which is
        the index's average of the 30 minutes before it), so the sleeve's equity this cycle
        values the coin as every other holding of it is valued; else the delivery price. The cost basis stays the delivery price either way (that is what was paid)."""
        m = self.spot_marks.get(symbol)
        if m is not None and valid_price(getattr(m, "price", None)) and getattr(m, "at", None) is not None \
                and m.at >= pos.expiry:
            return float(m.price), m.at
        return delivery, self.book.now

    def _cover_of_others(self, sleeve: Sleeve, pos: OptionPosition) -> float:
        """Spot of ``pos``'s underlying allocated (margin.allocate_cover) to the other open
        short calls: the coin an assigned call must not deliver, or they turn naked."""
        cover = margin.allocate_cover(sleeve, self.rules_for(sleeve.id).spot_symbol)
        others = {p.id for p in sleeve.option_positions if p is not pos and p.underlying == pos.underlying}
        return sum(q for pid, q in cover.items() if pid in others)

    def _assign_call(self, sleeve: Sleeve, pos: OptionPosition, delivery: float, cover_by_others: float) -> None:
        """The wheel's other half: an assigned call sells its coin at the delivery price (module doc)."""
        symbol = self.rules_for(sleeve.id).spot_symbol.format(underlying=pos.underlying)
        held = sleeve.positions.get(symbol)
        held_q = held.quantity if held is not None else 0.0
        q = round(min(pos.quantity, held_q - cover_by_others), 12)  # no float dust in a quantity
        if q <= 1e-12:
            why = (f"the sleeve holds no {symbol}" if held_q <= 0 else f"all {held_q} {symbol} held covers other "
                   f"open short calls ({cover_by_others} of it)")
            self.book.emit("assignment_skipped", sleeve.id, position_id=pos.id, symbol=symbol,
                           detail=f"{pos.id} was cash-settled in the money at {delivery:.2f}, but {why}; no coin "
                           "to deliver, nothing sold")
            return
        fill = self.book.sell(sleeve, symbol, q, delivery, "assignment", _NO_COSTS)
        if fill is None:  # fills.sell refuses only a bad price, and the delivery price is valid
            return
        short = "" if q >= pos.quantity - 1e-12 else (
            f" (only {q} of {pos.quantity}: the sleeve holds {held_q} {symbol}"
            + (f", {cover_by_others} of it covering other open short calls)" if cover_by_others > 0 else ")"))
        fill.data["note"] = (f"assigned: {pos.id} expired in the money; sold {q} {symbol} at the delivery price "
                             f"{delivery:.2f}{short}")

    # -- closes -----------------------------------------------------------------------------
    def harvest(self, sleeve: Sleeve) -> None:
        """Theta harvest: buy back a sold option at its profit target, loss stop or minimum DTE."""
        h = self.rules_for(sleeve.id).harvest
        if h is None:
            return
        for pos in list(sleeve.option_positions):
            if pos.side != "short" or pos.expiry <= self.book.now or pos.mark_usd is None:
                continue
            entry, mark = pos.entry_premium_usd, pos.mark_usd
            reason = None
            if h.profit_target_pct is not None and (entry - mark) / entry * 100.0 >= h.profit_target_pct:
                reason = "profit_target"
            elif h.loss_stop_pct is not None and (mark - entry) / entry * 100.0 >= h.loss_stop_pct:
                reason = "loss_stop"
            elif h.min_dte_days is not None and pos.expiry - self.book.now <= timedelta(days=h.min_dte_days):
                reason = "min_dte"
            if reason:
                self.close(sleeve, pos, pos.quantity, reason)

    def close(self, sleeve: Sleeve, pos: OptionPosition, quantity: float, reason: Any) -> bool:
        """Close ``quantity`` of ``pos`` at the bid (a long) or the ask (a short)."""
        side = "sell" if pos.side == "long" else "buy"
        if pos.expiry <= self.book.now:
            self._rejected(sleeve, side, pos.instrument, "EXPIRED", f"{pos.id} expired at {utc_iso(pos.expiry)}; it "
                           "settles at the delivery price, it cannot be closed", position_id=pos.id)
            return False
        fill = price(self.quote(pos.instrument, pos.underlying), side, quantity,  # type: ignore[arg-type]
                     self.rules_for(sleeve.id), self.book.now)
        if isinstance(fill, Rejected):
            self._rejected(sleeve, side, pos.instrument, fill.code, fill.detail, position_id=pos.id)
            return False
        share = quantity / pos.quantity
        fee_share = pos.entry_fee_usd * share
        if pos.side == "long":
            pnl = fill.cash_change_usd - (pos.entry_premium_usd * quantity + fee_share)
        else:
            pnl = pos.entry_premium_usd * quantity - fee_share + fill.cash_change_usd
        trade = self._trade(sleeve, pos, side, quantity, fill.premium_usd, fill.notional_usd, fill.fee_usd, pnl,
                            reason, "close", fill.premium_coin, fill.index_usd, fill.price_source)
        if quantity >= pos.quantity - 1e-12:
            sleeve.option_positions.remove(pos)
        else:
            pos.quantity = round(pos.quantity - quantity, 12)
            pos.entry_fee_usd -= fee_share
            pos.covered_quantity = min(pos.covered_quantity, pos.quantity)
        self._book_close(sleeve, trade, fill.cash_change_usd, pnl)
        self._refresh_margin(sleeve)
        return True

    def apply_closes(self, intent: OptionIntent) -> None:
        sleeve = self.book.state.sleeves[intent.strategy_id]
        for leg in (leg for leg in intent.legs if leg.action == "close"):
            pos = self.match(sleeve, leg)
            if isinstance(pos, Rejected):
                self._rejected(sleeve, "close", leg.instrument, pos.code, pos.detail)
                continue
            q: float | Rejected = pos.quantity
            if isinstance(leg.quantity, (int, float)) and leg.quantity < pos.quantity:
                q = contract_quantity(leg.quantity, pos.underlying, self.rules_for(sleeve.id))
            if isinstance(q, Rejected):
                self._rejected(sleeve, "close", leg.instrument, q.code, q.detail, position_id=pos.id)
                continue
            self.close(sleeve, pos, min(q, pos.quantity), "manual" if intent.reason == "manual" else "signal")

    @staticmethod
    def match(sleeve: Sleeve, leg: OptionLeg) -> OptionPosition | Rejected:
        """The one position a close leg means: by id, else by exact instrument (and side)."""
        if leg.position_id is not None:
            found = [p for p in sleeve.option_positions if p.id == leg.position_id]
            if found and leg.instrument and found[0].instrument != leg.instrument:
                return Rejected("CLOSE_MISMATCH", f"position {leg.position_id} is {found[0].instrument}, not "
                                f"{leg.instrument}; nothing closed")
            what = f"id {leg.position_id}"
        else:
            found = [p for p in sleeve.option_positions
                     if p.instrument == leg.instrument and (leg.side is None or p.side == leg.side)]
            what = f"{leg.instrument}" + (f" ({leg.side})" if leg.side else "")
        if not found:
            return Rejected("NO_SUCH_POSITION", f"no open option position matches {what}; nothing closed")
        if len(found) > 1:
            return Rejected("AMBIGUOUS_CLOSE", f"{len(found)} positions match {what} ({', '.join(p.id for p in found)})"
                            "; name one by position_id")
        return found[0]

    # -- entries ----------------------------------------------------------------------------
    def apply_entries(self, intent: OptionIntent) -> None:
        """Open the intent's buy/sell legs together, or none of them (one rejection says why)."""
        legs = [leg for leg in intent.legs if leg.action in ("buy", "sell")]
        if not legs:
            return
        sleeve = self.book.state.sleeves[intent.strategy_id]
        priced = self._price_entries(sleeve, legs)
        if isinstance(priced, tuple):
            leg, why = priced
            self._rejected(sleeve, leg.action, leg.instrument, why.code, why.detail,
                           legs=[x.instrument for x in legs])
            return
        for leg, fill, mark, covered in priced:
            self._open(sleeve, leg, fill, mark, covered, "manual" if intent.reason == "manual" else "signal")
        self._refresh_margin(sleeve)

    def _price_entries(self, sleeve: Sleeve, legs: Sequence[OptionLeg]
                       ) -> list[tuple[OptionLeg, PremiumFill, OptionMark, float]] | tuple[OptionLeg, Rejected]:
        rules = self.rules_for(sleeve.id)
        first = legs[0]
        if sleeve.type != "options":
            return first, Rejected("NOT_OPTIONS_SLEEVE", f"{sleeve.id} is a {sleeve.type} sleeve; options trade "
                                   "only in an options sleeve")
        blocks = {**self.book.state.account.blocks, **sleeve.risk.blocks}
        if blocks:
            b = next(iter(blocks.values()))
            return first, Rejected(b.code, f"entries blocked until {utc_iso(b.until) if b.until else 'a manual reset'}"
                                   f": {b.detail}")
        now_ms = round(self.book.now.timestamp() * 1000)
        spot_left: dict[str, float] = {}
        out: list[tuple[OptionLeg, PremiumFill, OptionMark, float]] = []
        new_margin = 0.0
        for leg in legs:
            bad = _bad_leg(leg, now_ms)
            if bad is not None:
                return leg, bad
            held_side = "short" if leg.action == "buy" else "long"
            if any(p.instrument == leg.instrument and p.side == held_side for p in sleeve.option_positions):
                return leg, Rejected("OPPOSITE_POSITION", f"{leg.instrument} is held {held_side}; close that position "
                                     f"instead of opening the other side")
            q = contract_quantity(leg.quantity, leg.underlying, rules)
            if isinstance(q, Rejected):
                return leg, q
            mark = self.quote(leg.instrument, leg.underlying)
            fill = price(mark, leg.action, q, rules, self.book.now)  # type: ignore[arg-type]
            if isinstance(fill, Rejected):
                return leg, Rejected(fill.code, f"{leg.instrument}: {fill.detail}")
            covered = 0.0
            if leg.action == "sell" and leg.option_type == "call" and leg.covered_quantity > 0:
                if leg.underlying not in spot_left:
                    spot_left[leg.underlying] = margin.free_spot(sleeve, leg.underlying, rules.spot_symbol)
                covered = min(leg.covered_quantity, q, spot_left[leg.underlying])
                spot_left[leg.underlying] -= covered
            if leg.action == "sell":
                new_margin += margin.short_margin_usd(leg.option_type, leg.strike, fill.index_usd,
                                                      float(mark.mark_coin), q, covered, leg.assign,  # type: ignore[union-attr, arg-type]
                                                      rules.cash_secured_assignment, rules.margin)
            out.append((leg, fill, mark, covered))  # type: ignore[arg-type]
        free = margin.free_cash_usd(sleeve)
        net_cash = sum(f.cash_change_usd for _, f, _, _ in out)
        if free + net_cash < -_EPS:
            return first, Rejected("INSUFFICIENT_CASH", f"the legs cost {-net_cash:.2f} USD net (premium and fees), "
                                   f"more than the {free:.2f} USD free (cash {sleeve.cash_usd:.2f} less margin in use "
                                   f"{margin.sleeve_margin_usd(sleeve):.2f})")
        if free + net_cash - new_margin < -_EPS:
            return first, Rejected("INSUFFICIENT_MARGIN", f"the short legs need {new_margin:.2f} USD initial margin; "
                                   f"{free + net_cash:.2f} USD is free after their premiums and fees (cash "
                                   f"{sleeve.cash_usd:.2f} less margin in use {margin.sleeve_margin_usd(sleeve):.2f}); give the "
                                   f"strategy more capital, or trade fewer contracts")
        limit = self._check_limits(sleeve, rules, out)
        return (first, limit) if limit is not None else out

    def _check_limits(self, sleeve: Sleeve, rules: OptionRules,
                      priced: Sequence[tuple[OptionLeg, PremiumFill, OptionMark, float]]) -> Rejected | None:
        adding = [option_risk.GreekLeg(leg.underlying, f.quantity if leg.action == "buy" else -f.quantity,
                                       m.greeks(), f.index_usd) for leg, f, m, _ in priced]
        premium = sum(f.notional_usd for leg, f, _, _ in priced if leg.action == "buy")
        held = sleeve.option_positions
        why = option_risk.check_limits(sleeve.id, [option_risk.leg_of(p) for p in held], adding, rules.limits,
                                       option_risk.premium_at_risk_usd(held), premium,
                                       self.sleeve_equity(sleeve) if rules.limits.max_premium_at_risk_pct else None)
        if why is not None:
            return why
        everyone = [p for sid in self.book.ids for p in self.book.state.sleeves[sid].option_positions]
        lim = self.account_limits
        return option_risk.check_limits("account", [option_risk.leg_of(p) for p in everyone], adding, lim,
                                        option_risk.premium_at_risk_usd(everyone), premium,
                                        self.account_equity() if lim.max_premium_at_risk_pct else None)

    def _open(self, sleeve: Sleeve, leg: OptionLeg, fill: PremiumFill, mark: OptionMark, covered: float,
              reason: Any) -> None:
        seq = self.book.state.next_trade_seq
        pos = OptionPosition(
            id=f"{sleeve.id}:{seq}", instrument=leg.instrument, underlying=leg.underlying,
            option_type=leg.option_type, strike=float(leg.strike), expiry=utc_from_ms(leg.expiry_ms),
            side="long" if leg.action == "buy" else "short", quantity=fill.quantity,
            entry_premium_coin=fill.premium_coin, entry_premium_usd=fill.premium_usd, entry_fee_usd=fill.fee_usd,
            entry_index_usd=fill.index_usd, covered_quantity=covered, assign=bool(leg.assign and leg.action == "sell"),
            opened_at=self.book.now, greeks=mark.greeks(), mark_coin=float(mark.mark_coin),  # type: ignore[arg-type]
            mark_usd=float(mark.mark_coin) * fill.index_usd, index_usd=fill.index_usd,  # type: ignore[arg-type]
            mark_iv_pct=float(mark.mark_iv_pct) if valid_price(mark.mark_iv_pct) else None,
            mark_at=mark.at, score=leg.score, score_reason=leg.score_reason)
        trade = self._trade(sleeve, pos, leg.action, fill.quantity, fill.premium_usd, fill.notional_usd, fill.fee_usd,
                            None, reason, "open", fill.premium_coin, fill.index_usd, fill.price_source,
                            score=leg.score, score_reason=leg.score_reason)
        sleeve.cash_usd += fill.cash_change_usd
        sleeve.option_positions.append(pos)
        fill_event = self.book.record(sleeve, trade)
        if leg.action == "sell" and leg.option_type == "call" and leg.covered_quantity > covered + 1e-12:
            fill_event.data["note"] = (f"asked {leg.covered_quantity} covered, but only {covered} of the sleeve's "
                                       "spot is free to cover it; the rest is margined as naked")

    # -- shared -----------------------------------------------------------------------------
    def _trade(self, sleeve: Sleeve, pos: OptionPosition, side: Any, quantity: float, price_usd: float,
               notional_usd: float, fee_usd: float, pnl: float | None, reason: Any, effect: Any, premium_coin: float,
               index_usd: float, source: Any, score: float | None = None, score_reason: str | None = None) -> Trade:
        info = OptionFill(position_id=pos.id, effect=effect, position_side=pos.side, underlying=pos.underlying,
                          option_type=pos.option_type, strike=pos.strike, expiry=pos.expiry, premium_coin=premium_coin,
                          index_usd=index_usd, price_source=source, score=score, score_reason=score_reason)
        return Trade(seq=self.book.state.next_trade_seq, cycle=self.book.cycle, strategy_id=sleeve.id,
                     symbol=pos.instrument, side=side, quantity=quantity, quote_price=price_usd, fill_price=price_usd,
                     notional_usd=notional_usd, fee_usd=fee_usd, realized_pnl_usd=pnl, reason=reason, at=self.book.now,
                     option=info)

    def _book_close(self, sleeve: Sleeve, trade: Trade, cash_change: float, pnl: float) -> Event:
        """Book a close's cash and P&L; return its fill event (a block it trips comes after it)."""
        sleeve.cash_usd += cash_change
        sleeve.realized_pnl_usd += pnl
        fill = self.book.record(sleeve, trade)
        srules = self.book.rules[sleeve.id]
        tripped = risk.record_close(sleeve, pnl, self.book.now, srules.consecutive_losses, srules.loss_cooldown)
        if tripped:
            from scheduler.engine.step import _block_event

            self.book.events.append(_block_event(sleeve.id, tripped))
        return fill

    def _rejected(self, sleeve: Sleeve, side: str, instrument: str, code: str, detail: str, **more: Any) -> None:
        self.book.emit("rejected", sleeve.id, side=side, symbol=instrument, code=code, detail=detail, **more)


def _bad_leg(leg: OptionLeg, now_ms: int) -> Rejected | None:
    """A leg that cannot be opened as written."""
    if leg.option_type not in ("call", "put") or not valid_price(leg.strike) or not isinstance(leg.expiry_ms, int):
        return Rejected("BAD_LEG", f"leg {leg.instrument}: option_type {leg.option_type!r}, strike {leg.strike!r}, "
                        f"expiry_ms {leg.expiry_ms!r}: expected 'call'/'put', a strike > 0 and integer ms")
    if leg.expiry_ms <= now_ms:
        return Rejected("EXPIRED", f"{leg.instrument} expired at {utc_iso(utc_from_ms(leg.expiry_ms))}; not opening it")
    if leg.covered_quantity and not (leg.action == "sell" and leg.option_type == "call"):
        return Rejected("BAD_LEG", f"covered_quantity is for sold calls, not a {leg.action} {leg.option_type}")
    if leg.covered_quantity < 0:
        return Rejected("BAD_LEG", f"covered_quantity {leg.covered_quantity} is negative")
    if leg.assign and leg.action != "sell":
        return Rejected("BAD_LEG", f"assign is for sold options (the wheel: a put buys the coin, a call sells it), "
                        f"not a {leg.action} {leg.option_type}")
    return None
