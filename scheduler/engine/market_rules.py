"""What an exchange accepts for one symbol. Standard library only: the daemon
imports this without pulling numpy in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MarketRules:
    """What the exchange accepts for one symbol (from its market data).

    ``amount_step``: quantities are rounded DOWN to a multiple of this.
    ``min_amount`` / ``min_notional_usd``: smaller orders are rejected.
    """

    symbol: str
    amount_step: float
    min_amount: float
    min_notional_usd: float

    @classmethod
    def from_json(cls, doc: dict) -> MarketRules:
        """The inverse of ``as_json`` (the fetch step reports rules this way)."""
        return cls(str(doc["symbol"]), float(doc["amount_step"]), float(doc["min_amount"]),
                   float(doc["min_notional_usd"]))

    def as_json(self) -> dict[str, float | str]:
        return {
            "symbol": self.symbol, "amount_step": self.amount_step,
            "min_amount": self.min_amount, "min_notional_usd": self.min_notional_usd,
        }
