"""Option-chain values: Deribit option names, quotes, contracts, chains. Pure: no ccxt,
no I/O, no clock.

They live here, with the option math that reads them, so that options/ never imports
market/ (market/ builds them from the exchange's JSON: market.options_data).

Deribit names an option ``<UNDERLYING>-<D>MMMYY>-<STRIKE>-<C|P>``, for example
``BTC-27MAR26-70000-C``; linear USDC options read ``BTC_USDC-...`` and strikes
with a decimal point use ``d`` (``XRP_USDC-30MAY25-2d2-C`` is strike 2.2).
Every Deribit option expires at 08:00 UTC on its expiry date
(https://www.deribit.com/kb/deribit-introduction-policy: "expiry 08:00 UTC").
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

EXPIRY_HOUR_UTC = 8

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_NAME_RE = re.compile(
    r"^(?P<under>[A-Z0-9]+(?:_[A-Z0-9]+)?)-(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})"
    r"-(?P<strike>\d+(?:d\d+)?)-(?P<cp>[CP])$"
)

OptionType = Literal["call", "put"]


@dataclass(frozen=True)
class InstrumentSpec:
    """What a Deribit option name encodes."""

    underlying: str  # "BTC" (or "BTC_USDC" for linear options)
    expiry_ms: int  # 08:00 UTC on the expiry date
    strike: float
    option_type: OptionType


def expiry_ms_from_code(code: str) -> int:
    """UTC ms of 08:00 on the date in a Deribit expiry code such as ``27MAR26`` or ``5JAN26``.

    Raises ValueError for anything else.
    """
    m = re.fullmatch(r"(\d{1,2})([A-Z]{3})(\d{2})", code)
    if not m or m.group(2) not in _MONTHS:
        raise ValueError(f"not a Deribit expiry code: {code!r} (expected like '27MAR26')")
    day, month, year = int(m.group(1)), _MONTHS.index(m.group(2)) + 1, 2000 + int(m.group(3))
    try:
        dt = datetime(year, month, day, EXPIRY_HOUR_UTC, tzinfo=UTC)
    except ValueError as e:
        raise ValueError(f"not a Deribit expiry code: {code!r} ({e})") from e
    return int(dt.timestamp() * 1000)


@functools.lru_cache(maxsize=4096)
def expiry_code(expiry_ms: int) -> str:
    """Inverse of ``expiry_ms_from_code``: ``27MAR26`` (day without a leading zero)."""
    dt = datetime.fromtimestamp(expiry_ms / 1000, tz=UTC)
    return f"{dt.day}{_MONTHS[dt.month - 1]}{dt.year % 100:02d}"


def parse_instrument_name(name: str) -> InstrumentSpec:
    """Split a Deribit option name into underlying, expiry (08:00 UTC), strike and type.

    Raises ValueError with the expected shape when ``name`` is not an option name.
    """
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError(
            f"not a Deribit option name: {name!r} (expected like 'BTC-27MAR26-70000-C')"
        )
    expiry_ms = expiry_ms_from_code(m.group("day") + m.group("mon") + m.group("yy"))
    strike = float(m.group("strike").replace("d", "."))
    return InstrumentSpec(
        underlying=m.group("under"),
        expiry_ms=expiry_ms,
        strike=strike,
        option_type="call" if m.group("cp") == "C" else "put",
    )


def format_instrument_name(underlying: str, expiry_ms: int, strike: float, option_type: str) -> str:
    """Build a Deribit option name; the inverse of ``parse_instrument_name``."""
    strike_text = (
        f"{strike:.0f}" if float(strike).is_integer() else repr(float(strike)).replace(".", "d")
    )
    cp = "C" if option_type == "call" else "P"
    return f"{underlying}-{expiry_code(expiry_ms)}-{strike_text}-{cp}"


@dataclass(frozen=True)
class OptionQuote:
    """One option's quote. Prices are in coin units (Deribit inverse options).

    ``mark_iv_pct`` is Deribit's mark IV in percent (55.2 = 55.2 %).
    ``underlying_price`` is the forward the exchange prices the option on.
    Any field the exchange did not give is None, never 0.
    """

    instrument: str
    underlying: str
    expiry_ms: int
    strike: float
    option_type: OptionType
    bid: float | None = None
    ask: float | None = None
    mark: float | None = None
    mark_iv_pct: float | None = None
    underlying_price: float | None = None
    index_price: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    open_interest: float | None = None


@dataclass(frozen=True)
class OptionContract:
    """How one underlying's options trade: every Deribit BTC/ETH option is on
    ``contract_size`` coin, ordered in multiples of ``amount_step`` contracts from
    ``min_trade_amount``, priced in coin with the smallest tick ``tick_size``.

    ``source`` says where the numbers come from: ``"exchange"`` (``public/get_instruments``)
    or ``"deribit default"`` (the published values, for sources without instruments).
    """

    underlying: str
    contract_size: float
    min_trade_amount: float
    amount_step: float
    tick_size: float
    source: str


#: Deribit's published option contract values (https://www.deribit.com/kb/options):
#: 1 coin per contract, minimum (and step) 0.1 BTC or 1 ETH, tick 0.0001 coin.
DERIBIT_DEFAULT_CONTRACTS: dict[str, tuple[float, float, float, float]] = {
    "BTC": (1.0, 0.1, 0.1, 0.0001),
    "ETH": (1.0, 1.0, 1.0, 0.0001),
}


def default_contract(underlying: str) -> OptionContract | None:
    """Deribit's published contract values for ``underlying``; None for one it has none for."""
    values = DERIBIT_DEFAULT_CONTRACTS.get(underlying)
    return None if values is None else OptionContract(underlying, *values, source="deribit default")


@dataclass(frozen=True)
class OptionChain:
    """Every listed, unexpired option of one underlying at ``now_ms``.

    ``asof_ms`` is when the quotes were taken (the exchange's newest quote time, or a
    file snapshot's time), at or before ``now_ms``; None when the source does not say.
    ``contract`` is how the options trade (None when unknown). ``dropped`` says which
    quotes the source refused as implausible, and why.
    """

    underlying: str
    now_ms: int
    index_price: float | None
    quotes: tuple[OptionQuote, ...]
    asof_ms: int | None = None
    contract: OptionContract | None = None
    #: quotes the source dropped as implausible (``screen_quotes``): one "instrument: why" each
    dropped: tuple[str, ...] = ()

    def expiries_ms(self) -> tuple[int, ...]:
        """Distinct expiries, soonest first."""
        return tuple(sorted({q.expiry_ms for q in self.quotes}))

    def at_expiry(self, expiry_ms: int) -> tuple[OptionQuote, ...]:
        """Quotes of one expiry, by strike then calls before puts."""
        return tuple(
            sorted(
                (q for q in self.quotes if q.expiry_ms == expiry_ms),
                key=lambda q: (q.strike, q.option_type),
            )
        )

    def find(self, instrument: str) -> OptionQuote | None:
        return next((q for q in self.quotes if q.instrument == instrument), None)


def positive_or_none(value: Any) -> float | None:
    """A finite, strictly positive float, else None (a missing price is never 0)."""
    x = finite_or_none(value)
    return x if x is not None and x > 0 else None


def finite_or_none(value: Any) -> float | None:
    """A finite float, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


#: slack on the no-arbitrage bounds of ``screen_quotes`` (the forward vs the index, rounding)
PLAUSIBLE_SLACK = 0.05


def quote_problem(q: OptionQuote, index_price: float | None) -> str | None:
    """Why quote ``q`` cannot be a real quote of an inverse (coin-settled) option; None when it can.

    An inverse option pays ``max(S - K, 0) / S`` coin (call) or ``max(K - S, 0) / S`` (put) at
    expiry, so a call is worth less than 1 coin and a put at most ``K / S``; its price now is
    bounded by the same at the forward (``underlying_price``, else the index), with
    ``PLAUSIBLE_SLACK`` for the basis. A bid above the ask is a crossed book, never a quote.
    """
    bid, ask = positive_or_none(q.bid), positive_or_none(q.ask)
    if bid is not None and ask is not None and bid > ask:
        return f"crossed quote: bid {bid:g} > ask {ask:g}"
    forward = positive_or_none(q.underlying_price) or positive_or_none(q.index_price) or positive_or_none(index_price)
    if q.option_type == "call":
        bound, what = 1.0, "1 coin (an inverse call pays less than the coin)"
    elif forward is not None:
        bound, what = q.strike / forward * (1 + PLAUSIBLE_SLACK), f"strike / forward {q.strike / forward:.4g} coin"
    else:
        return None
    for name, value in (("mark", q.mark), ("bid", bid), ("ask", ask)):
        v = positive_or_none(value)
        if v is not None and v >= bound:
            return f"{name} {v:g} coin is not below {what}"
    return None


def screen_quotes(quotes: tuple[OptionQuote, ...] | list[OptionQuote], index_price: float | None
                  ) -> tuple[tuple[OptionQuote, ...], tuple[str, ...]]:
    """(the plausible quotes, "instrument: why" for each implausible one dropped); see ``quote_problem``."""
    kept, dropped = [], []
    for q in quotes:
        problem = quote_problem(q, index_price)
        if problem is None:
            kept.append(q)
        else:
            dropped.append(f"{q.instrument}: {problem}")
    return tuple(kept), tuple(dropped)
