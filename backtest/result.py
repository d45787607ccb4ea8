"""What one backtest run produces: the contract between the runner (which replays the
strategies and ``engine.step``) and everything that reads a run (metrics, Monte Carlo,
walk-forward, reports). Standard library only; JSON round-trips exactly.

Conventions:
- Times are UTC milliseconds. ``equity`` has one point per bar of the run's clock, at the
  bar's CLOSE time, starting with ``(start_ms, initial_capital_usd)``; ``bar_ms`` is that
  spacing, which annualisation uses (never an assumed daily bar).
- ``exposure[i]`` is the value of open positions over equity at ``equity[i]`` (0 = flat,
  1 = fully invested; options: the absolute mark value of the legs over equity).
- ``trades`` are closed round trips, net of fees and slippage; ``fills`` every engine fill
  (``scheduler.engine.models.Trade`` as JSON) in order.
- ``fees_usd`` and ``slippage_usd`` are the totals paid; slippage is the difference between
  the quote and the fill price times quantity, summed over fills.
- ``benchmark`` is buy-and-hold of the first symbol on the same bars with the same costs
  (bought at the first fill price the strategy could have had, sold at the end), or empty
  when there is none (options).
- ``costs``: the fee and slippage rates the run used (``{"fee_pct": ..., "slippage_pct": ...}``);
  a gross run has both 0.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ClosedTrade:
    """One round trip: opened by ``entry_ms``'s fill(s), closed by ``exit_ms``'s."""

    symbol: str
    side: Literal["long", "short"]
    entry_ms: int
    exit_ms: int
    quantity: float
    entry_price: float  # average fill price of the opening fills
    exit_price: float  # average fill price of the closing fills
    pnl_usd: float  # net of fees and slippage
    fees_usd: float
    slippage_usd: float
    exit_reason: str  # the engine's Trade.reason of the closing fill: signal, stop, expiry, ...

    @property
    def return_pct(self) -> float:
        cost = self.entry_price * self.quantity
        return self.pnl_usd / cost * 100.0 if cost else 0.0


@dataclass(frozen=True)
class BacktestResult:
    strategy_id: str
    kind: Literal["spot", "options"]
    strategy: str  # the catalog name, e.g. "sma_crossover"
    symbols: tuple[str, ...]  # spot symbols, or the options underlying
    timeframe: str | None
    bar_ms: int
    start_ms: int
    end_ms: int
    initial_capital_usd: float
    equity: tuple[tuple[int, float], ...]
    exposure: tuple[float, ...]
    trades: tuple[ClosedTrade, ...]
    fills: tuple[dict[str, Any], ...]
    fees_usd: float
    slippage_usd: float
    benchmark: tuple[tuple[int, float], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    source: str = ""  # the market source, e.g. "files:binance" or "synthetic"
    #: what a reader must know to trust the figures (e.g. option legs that expired with no delivery price)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bar_ms <= 0:
            raise ValueError(f"bar_ms {self.bar_ms}; expected the bar length in ms (> 0)")
        if len(self.exposure) != len(self.equity):
            raise ValueError(f"{len(self.exposure)} exposure values for {len(self.equity)} equity points")
        times, values = ([p[0] for p in self.equity], [p[1] for p in self.equity])
        if not all(map(math.isfinite, values)):
            raise ValueError("the equity curve has a non-finite value")
        if not all(map(operator.lt, times, itertools.islice(times, 1, None))):
            raise ValueError("equity times must increase")

    @property
    def final_equity_usd(self) -> float:
        return self.equity[-1][1] if self.equity else self.initial_capital_usd

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["equity"] = [list(p) for p in self.equity]
        doc["benchmark"] = [list(p) for p in self.benchmark]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BacktestResult:
        d = dict(doc)
        d["symbols"] = tuple(d["symbols"])
        d["equity"] = tuple((int(t), float(v)) for t, v in d["equity"])
        d["benchmark"] = tuple((int(t), float(v)) for t, v in d.get("benchmark", ()))
        d["exposure"] = tuple(float(x) for x in d["exposure"])
        d["trades"] = tuple(ClosedTrade(**t) for t in d["trades"])
        d["fills"] = tuple(d["fills"])
        d["notes"] = tuple(d.get("notes", ()))
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)
