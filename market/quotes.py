"""A symbol's top of book when an order is placed: the price an order fills at.

Standard library only: the daemon (which imports no numpy) reads the fetch step's
``quotes`` with it.

The execution contract (README "Paper execution"): a market order fills at the ask when
it buys and at the bid when it sells, where the source has them, else at its last price;
the engine then moves that price against the trader by the slippage. A source that replays
history (synthetic, files) quotes the open of the candle starting at the clock time, with
bid = ask = last (no spread invented), which is the price a backtest fills at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def _price(value: Any) -> float | None:
    """A finite, strictly positive float, else None (a missing price is never 0)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    x = float(value)
    return x if math.isfinite(x) and x > 0 else None


@dataclass(frozen=True)
class Quote:
    """Bid, ask and last price of one symbol, and when they were current (``at_ms``, UTC).

    Any price the source did not give is None, never 0.
    """

    bid: float | None
    ask: float | None
    last: float | None
    at_ms: int

    def __post_init__(self) -> None:
        for name in ("bid", "ask", "last"):
            value = getattr(self, name)
            if value is not None and _price(value) is None:
                raise ValueError(f"quote {name} must be a finite positive price or None, got {value!r}")
        if isinstance(self.at_ms, bool) or not isinstance(self.at_ms, int):
            raise ValueError(f"quote at_ms must be an integer (UTC ms), got {self.at_ms!r}")

    @classmethod
    def flat(cls, price: float | None, at_ms: int) -> Quote | None:
        """bid = ask = last = ``price`` (a replayed market's quote); None without a price."""
        p = _price(price)
        return None if p is None else cls(p, p, p, int(at_ms))

    def order_price(self, signal: int) -> float | None:
        """What a market order fills at before slippage: the ask for a buy (signal 1), the
        bid for a sell (-1), the last price when that side is missing; None without either."""
        if signal not in (1, -1):
            raise ValueError(f"an order is a buy (1) or a sell (-1), got signal {signal!r}")
        side = self.ask if signal == 1 else self.bid
        return side if side is not None else self.last

    def as_json(self) -> dict[str, Any]:
        return {"bid": self.bid, "ask": self.ask, "last": self.last, "at_ms": self.at_ms}

    @classmethod
    def from_json(cls, doc: Any) -> Quote | None:
        """The inverse of ``as_json``; None for null or a record without a usable price or time
        (the fetch step's output is read defensively: a bad record is no quote, not a fill)."""
        if not isinstance(doc, dict):
            return None
        at_ms = doc.get("at_ms")
        if isinstance(at_ms, bool) or not isinstance(at_ms, int):
            return None
        bid, ask, last = (_price(doc.get(k)) for k in ("bid", "ask", "last"))
        if bid is None and ask is None and last is None:
            return None
        return cls(bid, ask, last, at_ms)
