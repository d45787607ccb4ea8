"""What one backtest run produces: the contract between the runner (which replays the
strategies and ``engine.step``) and everything that reads a run (metrics, Monte Carlo,
walk-forward, reports). The standard library and numpy only; JSON round-trips exactly.

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
- ``equity`` and ``benchmark`` are ``Curve``s: the sequence of ``(ts_ms, value)`` pairs, held
  as two numpy arrays (a run of 75,000 bars would otherwise be 75,000 tuples to build, check
  and take apart again in every reader); a sequence of pairs given instead is turned into one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

import numpy as np


class Curve(Sequence[tuple[int, float]]):
    """Points ``(ts_ms, value)``, oldest first, as two read-only arrays: ``times`` (int64 ms)
    and ``values`` (float64). It reads as the tuple of pairs it stands for (``len``, iteration,
    indexing gives ``(int, float)``, a slice a Curve, ``==`` against a Curve or any sequence of
    pairs); numeric code reads the arrays without a copy."""

    __slots__ = ("times", "values")
    times: np.ndarray
    values: np.ndarray

    def __init__(self, times: Iterable[int] | np.ndarray, values: Iterable[float] | np.ndarray) -> None:
        t = np.array(times, dtype=np.int64)  # a copy this curve owns
        v = np.array(values, dtype=np.float64)
        if t.ndim != 1 or t.shape != v.shape:
            raise ValueError(f"a curve needs as many times as values, in one dimension (got {t.shape} and {v.shape})")
        t.setflags(write=False)
        v.setflags(write=False)
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "values", v)

    @classmethod
    def of(cls, points: Curve | Iterable[tuple[int, float]]) -> Curve:
        """``points`` as a Curve (itself when it is one)."""
        if isinstance(points, Curve):
            return points
        pairs = [(p[0], p[1]) for p in points]
        if not pairs:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0))
        return cls([t for t, _ in pairs], [v for _, v in pairs])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Curve is immutable")

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, i: int) -> tuple[int, float]: ...

    @overload
    def __getitem__(self, i: slice) -> Curve: ...

    def __getitem__(self, i: int | slice) -> tuple[int, float] | Curve:
        if isinstance(i, slice):
            return Curve(self.times[i], self.values[i])
        return int(self.times[i]), float(self.values[i])

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.times.tolist(), self.values.tolist(), strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Curve):
            return bool(np.array_equal(self.times, other.times) and np.array_equal(self.values, other.values))
        if isinstance(other, (tuple, list)):
            return len(other) == len(self) and all(tuple(p) == q for p, q in zip(other, self, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list of pairs, so not hashable

    def __repr__(self) -> str:
        return f"Curve({len(self)} points" + (f", {self[0]} .. {self[-1]})" if len(self) else ")")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (walk-forward workers) as its two arrays
        return Curve, (self.times, self.values)

    def __deepcopy__(self, memo: dict[int, Any]) -> Curve:
        return self  # immutable: ``dataclasses.asdict`` and ``copy.deepcopy`` may share it

    def to_json(self) -> list[list[float]]:
        return [[t, v] for t, v in self]


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
    kind: Literal["spot", "options", "account"]  # account: a joint run's sum of sleeves (backtest/joint.py)
    strategy: str  # the catalog name, e.g. "sma_crossover"
    symbols: tuple[str, ...]  # spot symbols, or the options underlying
    timeframe: str | None
    bar_ms: int
    start_ms: int
    end_ms: int
    initial_capital_usd: float
    equity: Curve
    exposure: tuple[float, ...]
    trades: tuple[ClosedTrade, ...]
    fills: tuple[dict[str, Any], ...]
    fees_usd: float
    slippage_usd: float
    benchmark: Curve = field(default_factory=lambda: Curve.of(()))
    params: dict[str, Any] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    source: str = ""  # the market source, e.g. "files:binance" or "synthetic"
    #: what a reader must know to trust the figures (e.g. option legs that expired with no delivery price)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bar_ms <= 0:
            raise ValueError(f"bar_ms {self.bar_ms}; expected the bar length in ms (> 0)")
        object.__setattr__(self, "equity", Curve.of(self.equity))
        object.__setattr__(self, "benchmark", Curve.of(self.benchmark))
        if len(self.exposure) != len(self.equity):
            raise ValueError(f"{len(self.exposure)} exposure values for {len(self.equity)} equity points")
        if not np.isfinite(self.equity.values).all():
            raise ValueError("the equity curve has a non-finite value")
        if not (np.diff(self.equity.times) > 0).all():
            raise ValueError("equity times must increase")

    @property
    def final_equity_usd(self) -> float:
        return self.equity[-1][1] if self.equity else self.initial_capital_usd

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["equity"] = self.equity.to_json()
        doc["benchmark"] = self.benchmark.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BacktestResult:
        d = dict(doc)
        d["symbols"] = tuple(d["symbols"])
        d["equity"] = Curve.of(d["equity"])
        d["benchmark"] = Curve.of(d.get("benchmark", ()))
        d["exposure"] = tuple(float(x) for x in d["exposure"])
        d["trades"] = tuple(ClosedTrade(**t) for t in d["trades"])
        d["fills"] = tuple(d["fills"])
        d["notes"] = tuple(d.get("notes", ()))
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)
