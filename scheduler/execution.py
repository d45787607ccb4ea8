"""The daemon's side of the execution contract (README "Paper execution").

Decisions use closed candles only (the checker's signal, price and indicators come from
the last closed candle), but an order fills at the market when it is placed: the quote
the cycle's fetch step recorded (``quotes``, market.quotes), the ask for a buy and the bid
for a sell (the last price where that side is missing), as of the quote's time. The engine
then moves it against the trader by the slippage. An order with no quote is rejected
(``NO_QUOTE``), never filled at the candle's close. Cycles and manual trades both go
through ``at_market``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from market.quotes import Quote
from scheduler.engine.models import utc_from_ms
from scheduler.engine.step import Event, SpotIntent

NO_QUOTE = "NO_QUOTE"


def at_market(intents: Sequence[SpotIntent], quotes: Mapping[str, Any] | None
              ) -> tuple[list[SpotIntent], dict[tuple[str, str], str]]:
    """Each buy or sell priced at its side of the symbol's quote; holds are left as they are.

    A strategy's protective stop keeps its distance: it is moved with the price (the engine
    reads ``stop_price`` relative to ``price``). Returns the priced intents and, for each
    order that had no quote, ``(strategy id, symbol) -> why``; those go on with no price, so
    the engine refuses them, and ``name_no_quotes`` says why.
    """
    quotes = quotes or {}
    priced: list[SpotIntent] = []
    unquoted: dict[tuple[str, str], str] = {}
    for intent in intents:
        if intent.signal == 0:
            priced.append(intent)
            continue
        quote = Quote.from_json(quotes.get(intent.symbol))
        price = quote.order_price(intent.signal) if quote is not None else None
        if quote is None or price is None:
            unquoted[(intent.strategy_id, intent.symbol)] = (
                f"no {'ask' if intent.signal == 1 else 'bid'} or last price for {intent.symbol} "
                "from this cycle's ticker; orders fill at the market when placed, never at a candle's close")
            priced.append(replace(intent, price=None, stop_price=None))
            continue
        stop = intent.stop_price
        if stop is not None and intent.price:
            stop = stop * price / intent.price
        priced.append(replace(intent, price=price, stop_price=stop,
                              price_at=utc_from_ms(quote.at_ms)))
    return priced, unquoted


def name_no_quotes(events: Iterable[Event], unquoted: Mapping[tuple[str, str], str]) -> None:
    """The engine refuses an order without a price as ``NO_PRICE``; say ``NO_QUOTE`` and why
    for the orders ``at_market`` found no quote for."""
    for e in events:
        why = unquoted.get((e.strategy_id, e.data.get("symbol", "")))
        if e.kind == "rejected" and why is not None and e.data.get("code") == "NO_PRICE":
            e.data["code"], e.data["detail"] = NO_QUOTE, why
