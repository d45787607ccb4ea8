"""Spot fill maths (README: Paper execution). Pure functions.

- The fill price is the quote moved AGAINST the trader by the slippage:
  buys fill higher, sells lower. Never randomly favourable.
- The taker fee is charged on the fill notional. The entry fee is part of the
  cost basis; realized P&L is net of both fees, so a round trip that only
  lost its fees is a loss.
- Quantities are rounded DOWN to the market's amount step and must meet its
  minimum amount and minimum notional, or the order is rejected with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.engine.market_rules import MarketRules


@dataclass(frozen=True)
class Rejected:
    """A refused order or entry: a value with a reason code, not an exception."""

    code: str
    detail: str


@dataclass(frozen=True)
class Costs:
    fee_rate: float  # 0.001 = 0.1 %
    slippage_rate: float  # 0.0005 = 0.05 %


@dataclass(frozen=True)
class BuyFill:
    quantity: float
    fill_price: float
    notional_usd: float
    fee_usd: float

    @property
    def cost_usd(self) -> float:
        """Cash spent: notional plus fee (the position's cost basis)."""
        return self.notional_usd + self.fee_usd


@dataclass(frozen=True)
class SellFill:
    quantity: float
    fill_price: float
    notional_usd: float
    fee_usd: float
    realized_pnl_usd: float

    @property
    def proceeds_usd(self) -> float:
        return self.notional_usd - self.fee_usd


def valid_price(price: float | None) -> bool:
    """A usable price: a finite number > 0. Anything else is "no price"."""
    return isinstance(price, (int, float)) and math.isfinite(price) and price > 0


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)) + 1) + 2


def _whole_steps(quantity: float, step: float) -> int:
    return math.floor(quantity / step + 1e-9)  # tolerant of float noise just below a whole step


def _of_steps(n: int, step: float) -> float:
    return round(n * step, _decimals(step))


def round_down(quantity: float, step: float) -> float:
    """``quantity`` rounded down to a whole number of ``step`` (tolerant of float noise)."""
    if step <= 0:
        return quantity
    return _of_steps(_whole_steps(quantity, step), step)


def buy(quote: float, budget_usd: float, costs: Costs, rules: MarketRules) -> BuyFill | Rejected:
    """Buy as much as ``budget_usd`` pays for, fee included; never a cent more."""
    if not valid_price(quote):
        return Rejected("NO_PRICE", f"no usable price for {rules.symbol} (got {quote!r}); not buying")
    if not (math.isfinite(budget_usd) and budget_usd > 0):
        return Rejected("NO_CASH", f"no cash to spend (budget {budget_usd:.2f} USD)")
    fill_price = quote * (1 + costs.slippage_rate)
    step = rules.amount_step if rules.amount_step > 0 else 1e-12
    def fits(steps: int) -> bool:  # exactly what the cash will be charged
        notional = _of_steps(steps, step) * fill_price
        return notional + notional * costs.fee_rate <= budget_usd

    # Whole steps in integers. When the first guess overspends (float rounding), the largest
    # number of steps that fits is found by bisection: stepping down one at a time may never
    # change a quantity that is huge next to its step (1e17 steps of 1e-8).
    n = max(_whole_steps(budget_usd / (fill_price * (1 + costs.fee_rate)), step), 0)
    if n > 0 and not fits(n):
        lo, hi = 0, n  # fits(lo), not fits(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        n = lo
    qty = _of_steps(n, step) if n > 0 else 0.0
    notional = qty * fill_price
    fee = notional * costs.fee_rate
    if qty <= 0 or qty < rules.min_amount:
        return Rejected("BELOW_MIN_AMOUNT", f"{budget_usd:.2f} USD buys {qty} {rules.symbol}, below the "
                        f"minimum amount {rules.min_amount}")
    if notional < rules.min_notional_usd:
        return Rejected("BELOW_MIN_NOTIONAL", f"order of {notional:.2f} USD is below {rules.symbol}'s minimum "
                        f"notional {rules.min_notional_usd:.2f} USD")
    return BuyFill(qty, fill_price, notional, fee)


def sell(quote: float, quantity: float, cost_basis_usd: float, costs: Costs) -> SellFill | Rejected:
    """Sell ``quantity`` (a whole position whose cost basis includes its entry fee)."""
    if not valid_price(quote):
        return Rejected("NO_PRICE", f"no usable price (got {quote!r}); not selling at a made-up price")
    fill_price = quote * (1 - costs.slippage_rate)
    notional = quantity * fill_price
    fee = notional * costs.fee_rate
    return SellFill(quantity, fill_price, notional, fee, notional - fee - cost_basis_usd)
