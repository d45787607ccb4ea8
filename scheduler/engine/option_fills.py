"""Option fill maths (REFERENCE section 7, Paper accounting): value types and pure functions.

Deribit's BTC and ETH options are inverse: a contract is on 1 coin, its price is quoted
in coin and converted to USD at the index price (``premium_usd = premium_coin x index``).

- Fills: a buy at the ask, a sell at the bid, where the quote has them; otherwise at the
  mark moved against the trader by ``OptionRules.no_side_spread`` (mark x (1 + spread)
  for buys, mark x (1 - spread) for sells), and the fill says which (``price_source``).
  No fill without a real quote: a missing quote, or a mark or index that is not a finite
  number > 0, is ``Rejected("NO_QUOTE")``; so is a quote older than ``max_quote_age``
  (``STALE_QUOTE``).
- Trading fee, per contract: 0.03 % of the underlying (``0.0003 x index`` USD), capped at
  12.5 % of the option's price (``0.125 x premium_usd``). Deribit, "Fees"
  (https://support.deribit.com/hc/en-us/articles/25944746248989-Fees): "0.03% of the
  underlying or 0.0003 BTC per options contract (Capped at 12.5% of the options price)".
- Delivery fee at expiry, per contract: 0.015 % of the delivery price, capped at 12.5 %
  of the option's value at settlement (its intrinsic value), so an option that expires
  worthless pays none (REFERENCE section 7).
- Settlement value (cash-settled, as Deribit): per contract, in USD at the delivery
  price D, ``max(D - K, 0)`` for a call and ``max(K - D, 0)`` for a put (the inverse
  option pays that over D in coin, which is worth exactly this at D).

Every rate is a field of ``OptionFees`` / ``OptionRules`` with these defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from scheduler.engine.fills import Rejected, round_down, valid_price
from scheduler.engine.margin import MarginRules

PriceSource = Literal["ask", "bid", "mark+spread", "mark-spread", "delivery"]
GREEK_NAMES = ("delta", "gamma", "theta", "vega")


@dataclass(frozen=True)
class ContractRules:
    """What Deribit accepts for one underlying's options: amounts in coin."""

    underlying: str
    min_amount: float
    amount_step: float


#: Deribit's listed minimum and step (public/get_instruments: min_trade_amount, contract_size 1)
DEFAULT_CONTRACTS: Mapping[str, ContractRules] = {
    "BTC": ContractRules("BTC", min_amount=0.1, amount_step=0.1),
    "ETH": ContractRules("ETH", min_amount=1.0, amount_step=1.0),
}


@dataclass(frozen=True)
class OptionFees:
    trade_rate: float = 0.0003  # of the index, per contract (0.03 %)
    trade_cap: float = 0.125  # of the option's price (12.5 %)
    delivery_rate: float = 0.00015  # of the delivery price, per contract (0.015 %)
    delivery_cap: float = 0.125  # of the option's value at settlement


@dataclass(frozen=True)
class HarvestRules:
    """Theta harvest on sold options (REFERENCE section 7); None switches a trigger off.

    - profit target: the mark (USD per contract) has fallen to ``(1 - target/100)`` of the
      entry premium, i.e. ``(entry - mark) / entry x 100 >= profit_target_pct``;
    - loss stop: ``(mark - entry) / entry x 100 >= loss_stop_pct``;
    - minimum DTE: ``(expiry - now)`` in days ``<= min_dte_days`` (before the expiry).
    The trigger reads the mark; the close buys back at the ask, like any close.
    """

    profit_target_pct: float | None = None
    loss_stop_pct: float | None = None
    min_dte_days: float | None = None


@dataclass(frozen=True)
class OptionLimits:
    """Entry limits on the options book (scheduler/engine/option_risk.py); None: no limit.

    Units: ``max_abs_delta_usd`` on the dollar delta (sum of signed quantity x delta x
    index), ``max_abs_gamma_usd`` on the dollar gamma per 1 % move (signed quantity x gamma
    x index^2 / 100), ``max_abs_vega_usd`` on USD per vol point, ``max_premium_at_risk_pct``
    on the premium paid for open long options as a percent of equity.
    """

    max_abs_delta_usd: float | None = None
    max_abs_gamma_usd: float | None = None
    max_abs_vega_usd: float | None = None
    max_premium_at_risk_pct: float | None = None


@dataclass(frozen=True)
class OptionRules:
    """Everything the engine needs to trade one sleeve's options."""

    fees: OptionFees = OptionFees()
    contracts: Mapping[str, ContractRules] = field(default_factory=lambda: dict(DEFAULT_CONTRACTS))
    margin: MarginRules = MarginRules()
    no_side_spread: float = 0.05  # mark +/- 5 % where the quote has no ask/bid
    max_quote_age: timedelta = timedelta(hours=1)
    harvest: HarvestRules | None = None
    limits: OptionLimits = OptionLimits()
    #: an assigning short put (the wheel) reserves the strike x quantity it may have to pay
    cash_secured_assignment: bool = True
    spot_symbol: str = "{underlying}/USDT"  # the spot market an assignment delivers into


@dataclass(frozen=True)
class OptionMark:
    """One option's quote as the exchange gave it at ``at``; prices in coin, None = not given."""

    mark_coin: float | None
    index_usd: float | None
    at: datetime
    bid_coin: float | None = None
    ask_coin: float | None = None
    mark_iv_pct: float | None = None
    underlying_price: float | None = None  # the forward the exchange prices on
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None

    @classmethod
    def from_quote(cls, quote: Any, at: datetime, index_usd: float | None = None) -> OptionMark:
        """From a options.chain.OptionQuote (or anything with its fields)."""
        return cls(mark_coin=quote.mark, index_usd=quote.index_price or index_usd, at=at, bid_coin=quote.bid,
                   ask_coin=quote.ask, mark_iv_pct=quote.mark_iv_pct, underlying_price=quote.underlying_price,
                   delta=quote.delta, gamma=quote.gamma, theta=quote.theta, vega=quote.vega)

    def greeks(self) -> dict[str, float]:
        """The finite greeks the quote carries."""
        out = {}
        for name in GREEK_NAMES:
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[name] = float(v)
        return out


@dataclass(frozen=True)
class OptionLeg:
    """One leg of an options proposal.

    ``action``: "buy" opens a long, "sell" opens a short, "close" closes one held position:
    the one named by ``position_id``, else the only one on ``instrument`` (and ``side``,
    when given); none or several is a rejection. ``covered_quantity``: for a sold call,
    the part covered by spot the sleeve holds (no margin; only spot actually held counts).
    ``assign``: for a sold option (the wheel), an in-the-money expiry delivers the coin: a
    put buys it, a call sells the spot that covered it (see option_book.settle).
    """

    action: Literal["buy", "sell", "close"]
    instrument: str
    underlying: str
    option_type: Literal["call", "put"]
    strike: float
    expiry_ms: int
    quantity: float
    covered_quantity: float = 0.0
    assign: bool = False
    position_id: str | None = None
    side: Literal["long", "short"] | None = None  # closes: which side to match
    score: float | None = None
    score_reason: str | None = None


@dataclass(frozen=True)
class OptionIntent:
    """A strategy's options proposal: its entry legs fill together or not at all."""

    strategy_id: str
    legs: tuple[OptionLeg, ...]
    reason: Literal["signal", "manual"] = "signal"


@dataclass(frozen=True)
class PremiumFill:
    """A priced option fill. Per contract: ``premium_coin`` and ``premium_usd``."""

    side: Literal["buy", "sell"]
    quantity: float
    premium_coin: float
    premium_usd: float
    index_usd: float
    price_source: PriceSource
    fee_usd: float

    @property
    def notional_usd(self) -> float:
        return self.premium_usd * self.quantity

    @property
    def cash_change_usd(self) -> float:
        """What the fill does to cash: a buy pays premium and fee, a sell receives premium less fee."""
        return -(self.notional_usd + self.fee_usd) if self.side == "buy" else self.notional_usd - self.fee_usd


def intrinsic_usd(option_type: str, strike: float, price_usd: float) -> float:
    """Value at expiry per contract, USD: max(D - K, 0) for a call, max(K - D, 0) for a put."""
    return max(price_usd - strike, 0.0) if option_type == "call" else max(strike - price_usd, 0.0)


def trade_fee_usd(index_usd: float, premium_usd: float, quantity: float, fees: OptionFees) -> float:
    """Deribit's option trading fee: min(0.03 % of the index, 12.5 % of the price) per contract."""
    return min(fees.trade_rate * index_usd, fees.trade_cap * premium_usd) * quantity


def delivery_fee_usd(delivery_usd: float, value_usd: float, quantity: float, fees: OptionFees) -> float:
    """Deribit's delivery fee: min(0.015 % of the delivery price, 12.5 % of the value) per contract."""
    return min(fees.delivery_rate * delivery_usd, fees.delivery_cap * value_usd) * quantity


def contract_quantity(quantity: float, underlying: str, rules: OptionRules) -> float | Rejected:
    """``quantity`` rounded down to the listed step; rejected below the minimum or unlisted."""
    contract = rules.contracts.get(underlying)
    if contract is None:
        return Rejected("NO_CONTRACT_RULES", f"no contract rules for {underlying!r} options (known: "
                        f"{', '.join(sorted(rules.contracts)) or 'none'}); add them to the option rules")
    if not (isinstance(quantity, (int, float)) and math.isfinite(quantity) and quantity > 0):
        return Rejected("BAD_QUANTITY", f"quantity {quantity!r} is not a finite number > 0")
    q = round_down(quantity, contract.amount_step)
    if q < contract.min_amount - 1e-12:
        return Rejected("BELOW_MIN_AMOUNT", f"{quantity} {underlying} options round down to {q}, below the "
                        f"minimum {contract.min_amount} (step {contract.amount_step})")
    return q


def usable_mark(mark: OptionMark | None, now: datetime, rules: OptionRules) -> Rejected | None:
    """None when ``mark`` is a real, fresh quote with a usable index; else why not."""
    if mark is None or not valid_price(mark.mark_coin) or not valid_price(mark.index_usd):
        got = None if mark is None else f"mark {mark.mark_coin!r} coin, index {mark.index_usd!r} USD"
        return Rejected("NO_QUOTE", f"no usable quote (got {got}); no fill without a real mark and index")
    if now - mark.at > rules.max_quote_age:
        return Rejected("STALE_QUOTE", f"quote from {mark.at.isoformat()} is older than {rules.max_quote_age}")
    return None


def price(mark: OptionMark, side: Literal["buy", "sell"], quantity: float, rules: OptionRules,
          now: datetime) -> PremiumFill | Rejected:
    """Fill ``quantity`` contracts at the ask (buy) or bid (sell), or at mark +/- spread."""
    bad = usable_mark(mark, now, rules)
    if bad is not None:
        return bad
    mark_coin, index = float(mark.mark_coin), float(mark.index_usd)  # type: ignore[arg-type]
    source: PriceSource
    if side == "buy":
        premium, source = ((float(mark.ask_coin), "ask") if valid_price(mark.ask_coin)
                           else (mark_coin * (1 + rules.no_side_spread), "mark+spread"))
    else:
        premium, source = ((float(mark.bid_coin), "bid") if valid_price(mark.bid_coin)
                           else (mark_coin * (1 - rules.no_side_spread), "mark-spread"))
    if not valid_price(premium):
        return Rejected("NO_QUOTE", f"no bid, and mark {mark_coin} less the {rules.no_side_spread:.0%} spread "
                        "leaves no price to sell at")
    premium_usd = premium * index
    fee = trade_fee_usd(index, premium_usd, quantity, rules.fees)
    return PremiumFill(side, quantity, premium, premium_usd, index, source, fee)
