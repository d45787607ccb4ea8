"""Option-chain values and the options-data contract. Pure: no ccxt, no I/O, no clock.

Deribit names an option ``<UNDERLYING>-<D>MMMYY>-<STRIKE>-<C|P>``, for example
``BTC-27MAR26-70000-C``; linear USDC options read ``BTC_USDC-...`` and strikes
with a decimal point use ``d`` (``XRP_USDC-30MAY25-2d2-C`` is strike 2.2).
Every Deribit option expires at 08:00 UTC on its expiry date
(https://www.deribit.com/kb/deribit-introduction-policy: "expiry 08:00 UTC").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

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


def contract_from_instruments(
    underlying: str, rows: Sequence[Mapping[str, Any]]
) -> OptionContract | None:
    """The contract values of ``underlying``'s options from ``public/get_instruments`` rows
    (``contract_size``, ``min_trade_amount``, ``tick_size``): the most common value of each
    among its option rows (they are uniform on Deribit; a stray row must not decide), or
    None when no row has all three as positive numbers."""
    seen: dict[tuple[float, float, float], int] = {}
    for row in rows:
        name = row.get("instrument_name")
        try:
            if not isinstance(name, str) or parse_instrument_name(name).underlying != underlying:
                continue
        except ValueError:
            continue
        key = tuple(positive_or_none(row.get(k)) for k in ("contract_size", "min_trade_amount", "tick_size"))
        if all(v is not None for v in key):
            seen[key] = seen.get(key, 0) + 1  # type: ignore[index]
    if not seen:
        return None
    size, min_amount, tick = max(seen, key=lambda k: seen[k])
    return OptionContract(underlying, size, min_amount, min_amount, tick, source="exchange")


@dataclass(frozen=True)
class OptionChain:
    """Every listed, unexpired option of one underlying at ``now_ms``.

    ``asof_ms`` is when the quotes were taken (the exchange's newest quote time, or a
    file snapshot's time), at or before ``now_ms``; None when the source does not say.
    ``contract`` is how the options trade (None when unknown).
    """

    underlying: str
    now_ms: int
    index_price: float | None
    quotes: tuple[OptionQuote, ...]
    asof_ms: int | None = None
    contract: OptionContract | None = None

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


class OptionsSource(Protocol):
    """What the options checkers need: chain, index price, DVOL history.

    A source that can give the exchange's own delivery (settlement) price also has
    ``fetch_delivery_price(underlying, expiry_ms) -> float | None`` (None: the exchange has
    no record of that expiry, or not yet); it is optional, so not part of this protocol:
    the fetch step (market.prefetch) looks for it and otherwise averages spot candles.
    """

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> OptionChain:
        """Unexpired options of ``underlying`` ("BTC"), with marks and mark IV."""
        ...

    def fetch_index_price(self, underlying: str) -> float | None:
        """The exchange's index price (USD); None when it could not be had."""
        ...

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Daily DVOL closes ``(day open ts_ms, close)`` of days closed by ``end_ms``."""
        ...


# --- Deribit JSON -> values (pure; the adapter hands the decoded JSON in) ---


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


def quote_from_deribit(
    row: Mapping[str, Any], greeks: Mapping[str, Any] | None = None
) -> OptionQuote:
    """An OptionQuote from one ``public/get_book_summary_by_currency`` row or a
    ``public/ticker`` result (which names bid/ask ``best_bid_price``/``best_ask_price``
    and carries ``greeks``). Raises ValueError for a row that is not an option.
    """
    name = row.get("instrument_name")
    if not isinstance(name, str):
        raise ValueError(f"option row without an instrument_name: {dict(row)!r:.200}")
    spec = parse_instrument_name(name)
    greeks = greeks if greeks is not None else (row.get("greeks") or {})
    bid = row.get("bid_price", row.get("best_bid_price"))
    ask = row.get("ask_price", row.get("best_ask_price"))
    index = row.get("index_price", row.get("estimated_delivery_price"))
    return OptionQuote(
        instrument=name,
        underlying=spec.underlying,
        expiry_ms=spec.expiry_ms,
        strike=spec.strike,
        option_type=spec.option_type,
        bid=positive_or_none(bid),
        ask=positive_or_none(ask),
        mark=positive_or_none(row.get("mark_price")),
        mark_iv_pct=positive_or_none(row.get("mark_iv")),
        underlying_price=positive_or_none(row.get("underlying_price")),
        index_price=positive_or_none(index),
        delta=finite_or_none(greeks.get("delta")),
        gamma=finite_or_none(greeks.get("gamma")),
        theta=finite_or_none(greeks.get("theta")),
        vega=finite_or_none(greeks.get("vega")),
        open_interest=finite_or_none(row.get("open_interest")),
    )


def chain_from_book_summary(
    underlying: str, rows: Sequence[Mapping[str, Any]], *, now_ms: int, index_price: float | None
) -> OptionChain:
    """Build the chain of ``underlying`` from book-summary rows, dropping expired options
    (expiry at or before ``now_ms``) and rows that are not this underlying's options.

    ``index_price`` None: use the median of the rows' ``estimated_delivery_price``
    (Deribit reports the current index there), or None when no row has one.
    """
    quotes = []
    for row in rows:
        try:
            q = quote_from_deribit(row)
        except ValueError:
            continue  # futures/combos in a mixed response are not options
        if q.underlying == underlying and q.expiry_ms > now_ms:
            quotes.append(q)
    quotes.sort(key=lambda q: (q.expiry_ms, q.strike, q.option_type))
    if index_price is None:
        idx = sorted(q.index_price for q in quotes if q.index_price is not None)
        index_price = idx[len(idx) // 2] if idx else None
    return OptionChain(underlying, now_ms, index_price, tuple(quotes))


def dvol_closes(
    data: Sequence[Sequence[Any]], *, start_ms: int, end_ms: int
) -> list[tuple[int, float]]:
    """``(ts_ms, close)`` from ``public/get_volatility_index_data`` rows
    ``[ts, open, high, low, close]`` at 1D resolution: only days that had closed
    by ``end_ms`` (the forming day is dropped), within ``[start_ms, end_ms]``, sorted,
    de-duplicated; rows with a missing or non-positive close are skipped.
    """
    day_ms = 86_400_000
    out: dict[int, float] = {}
    for row in data:
        if not isinstance(row, Sequence) or len(row) < 5:
            continue
        ts, close = row[0], positive_or_none(row[4])
        if not isinstance(ts, int | float) or close is None:
            continue
        ts = int(ts)
        if start_ms <= ts and ts + day_ms <= end_ms:
            out[ts] = close
    return sorted(out.items())
