"""The look-ahead check (issue 10 item 11): a strategy's signal at bar i must be the same
whether it is computed on the candles up to bar i (what was known when bar i closed) or on the
whole history. A strategy that reads a later bar (``close[i + 1]``, a centred window, a
statistic of the whole series) gives a different value on the truncated data and is caught.

The strategies' vectorised form (``strategies.signal_series``) is computed once on the full
data and once per sampled bar on ``candles.head(i + 1)`` (and, for pairs, the second symbol's
candles that had opened by then). The indicators are compared too, to 1e-9 relative: a
peek shows up in them even at bars where the signal happens not to change.

Sampled bars (at most ``max_bars``, so the cost is bounded): bars where the full-data signal
fires (up to half the budget, spread over them), then bars evenly spaced over the history; the last bar is never sampled
(its truncation is the whole history). The report gives the earliest mismatch found.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only its head(); importing it would pull the market package in for nothing
    from market.base import Candles

SignalFn = Callable[["Candles", "Candles | None"], Any]  # -> strategies.SignalSeries or a signal array
_RTOL, _ATOL = 1e-9, 1e-12


@dataclass(frozen=True)
class Mismatch:
    bar: int
    ts_ms: int
    what: str  # "signal" or "indicator <name>"
    full: float  # the value computed on the whole history
    truncated: float  # the value computed on candles[:bar + 1]

    def describe(self) -> str:
        return (f"{self.what} at bar {self.bar} (ts_ms {self.ts_ms}) is {self.full!r} on the full history but "
                f"{self.truncated!r} on the candles up to that bar: the strategy reads later bars")


@dataclass(frozen=True)
class LookaheadReport:
    strategy: str
    bars: int  # candles in the history
    checked_bars: tuple[int, ...]
    first_mismatch: Mismatch | None

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None

    def to_json(self) -> dict[str, Any]:
        m = self.first_mismatch
        mismatch = None
        if m is not None:  # NaN (an undefined value) as null: the document stays valid JSON
            mismatch = {"bar": m.bar, "ts_ms": m.ts_ms, "what": m.what, "message": m.describe(),
                        **{k: (v if math.isfinite(v) else None) for k, v in (("full", m.full), ("truncated", m.truncated))}}
        return {"strategy": self.strategy, "ok": self.ok, "bars": self.bars, "checked": len(self.checked_bars),
                "first_mismatch": mismatch}


def _arrays(out: Any) -> tuple[np.ndarray, Mapping[str, np.ndarray]]:
    if isinstance(out, np.ndarray):
        return out, {}
    return np.asarray(out.signal), out.indicators


def sample_bars(signal: np.ndarray, max_bars: int) -> list[int]:
    """Firing bars first, then evenly spaced bars, at most ``max_bars``, the last bar excluded."""
    n = len(signal)
    if n < 2 or max_bars < 1:
        return []
    fired = [int(i) for i in np.flatnonzero(signal[:-1] != 0)]
    # half the budget for the bars that trade, spread over the history of them
    budget = min(len(fired), max_bars // 2)
    picks = np.linspace(0, len(fired) - 1, num=budget, dtype=np.int64) if budget else []
    chosen = dict.fromkeys(fired[int(k)] for k in picks)
    spread = np.linspace(0, n - 2, num=min(n - 1, max_bars), dtype=np.int64)
    for i in spread:
        if len(chosen) >= max_bars:
            break
        chosen.setdefault(int(i))
    for i in fired:  # room left (a short history): the rest of the firing bars
        if len(chosen) >= max_bars:
            break
        chosen.setdefault(i)
    return sorted(chosen)


def _differs(a: float, b: float) -> bool:
    if np.isnan(a) or np.isnan(b):
        return not (np.isnan(a) and np.isnan(b))
    return not np.isclose(a, b, rtol=_RTOL, atol=_ATOL)


def check(fn: SignalFn, candles: Candles, candles_b: Candles | None = None, *, name: str = "strategy",
          max_bars: int = 64) -> LookaheadReport:
    """The look-ahead check of ``fn(candles, candles_b)`` (see the module docstring)."""
    if isinstance(max_bars, bool) or not isinstance(max_bars, int) or max_bars < 1:
        raise ValueError(f"max_bars {max_bars!r}; expected a whole number of bars to check >= 1 (e.g. 64)")
    full_signal, full_ind = _arrays(fn(candles, candles_b))
    bars = sample_bars(full_signal, max_bars)
    first: Mismatch | None = None
    for i in bars:
        head = candles.head(i + 1)
        head_b = None
        if candles_b is not None:
            head_b = candles_b.head(int(np.searchsorted(candles_b.ts_ms, candles.ts_ms[i], side="right")))
        try:
            sig, ind = _arrays(fn(head, head_b))
        except Exception as e:
            e.add_note(f"look-ahead check of {name}: on the candles up to bar {i} (ts_ms {int(candles.ts_ms[i])})")
            raise
        found = None
        if int(sig[i]) != int(full_signal[i]):
            found = Mismatch(i, int(candles.ts_ms[i]), "signal", float(full_signal[i]), float(sig[i]))
        else:
            for key in sorted(full_ind):
                a, b = float(full_ind[key][i]), float(ind[key][i]) if key in ind else float("nan")
                if _differs(a, b):
                    found = Mismatch(i, int(candles.ts_ms[i]), f"indicator {key}", a, b)
                    break
        if found is not None:
            first = found
            break  # bars are in order: this is the earliest mismatch among them
    return LookaheadReport(name, len(candles), tuple(bars), first)


def _catalog_fn(name: str, params: Mapping[str, object] | None, candles: Candles, candles_b: Candles | None) -> Any:
    from strategies import signal_series  # numpy-backed: loaded on use

    return signal_series(name, candles, params, candles_b)


def check_strategy(name: str, candles: Candles, params: Mapping[str, object] | None = None,
                   candles_b: Candles | None = None, *, max_bars: int = 64) -> LookaheadReport:
    """``check`` on the catalog strategy ``name`` (``strategies.signal_series``)."""
    return check(functools.partial(_catalog_fn, name, params), candles, candles_b, name=name, max_bars=max_bars)
