"""The options-data contract (OptionsSource) and Deribit JSON -> option values. Pure: no
ccxt, no I/O, no clock: the adapters hand the decoded JSON in.

The values themselves (OptionQuote, OptionChain, ...) are options.chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from options.chain import (
    OptionChain,
    OptionContract,
    OptionQuote,
    finite_or_none,
    parse_instrument_name,
    positive_or_none,
    screen_quotes,
)


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
    kept, dropped = screen_quotes(quotes, index_price)  # implausible quotes never reach a strategy
    return OptionChain(underlying, now_ms, index_price, kept, dropped=dropped)


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
