"""Monte Carlo of one backtest run (issue 10 item 7): how much of the result is the order of
events. Pure and seeded (a ``numpy.random.Generator`` from ``seed``): the same inputs and seed
give the same figures on any machine.

- Trade-order permutation: the closed trades' returns (and a position still open at the end,
  at its marked P&L, as a last trade) in a random order, compounded from the initial capital
  (one equity point per trade). A product does not depend on the order, so the
  final equity is the same on every path; the drawdowns are what changes.
- Block bootstrap of the per-bar returns: circular block bootstrap (Politis & Romano 1992):
  blocks of ``block_bars`` consecutive returns (wrapping at the end) starting at uniformly
  drawn bars, concatenated and cut to the run's length, compounded from the initial capital.
  Blocks keep the short-range dependence (volatility clusters, trends) that resampling single
  bars would destroy. Default block length ``round(sqrt(n))``.

Percentiles (5th, 50th, 95th) are numpy's default linear interpolation between order
statistics. Max drawdown is ``backtest.metrics``'s (a positive %, the starting capital counted
as the first peak).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from backtest.metrics import bar_returns, drawdown_series
from backtest.result import BacktestResult

PERCENTILES = (5, 50, 95)
# paths x points held in memory at once (the bootstrap is computed in chunks of paths)
_CHUNK_VALUES = 2_000_000


@dataclass(frozen=True)
class MonteCarloSummary:
    method: Literal["trade_permutation", "block_bootstrap"]
    paths: int
    seed: int
    block_bars: int | None  # the bootstrap's block length; None for the permutation
    initial_capital_usd: float
    actual_final_equity_usd: float
    actual_max_drawdown_pct: float
    final_equity_usd: dict[str, float]  # {"p5": ..., "p50": ..., "p95": ...}
    max_drawdown_pct: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _max_drawdown_pct(paths: np.ndarray) -> np.ndarray:
    """Per row of equity paths (the first column the starting capital): max drawdown in %."""
    peak = np.maximum.accumulate(paths, axis=1)
    return -np.min(paths / peak - 1.0, axis=1) * 100.0 + 0.0  # + 0.0: a flat path's -0.0 is 0.0


def _percentiles(x: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(x, PERCENTILES), strict=True)}


def _check(paths: int, initial_usd: float) -> None:
    if isinstance(paths, bool) or not isinstance(paths, int) or paths < 1:
        raise ValueError(f"paths {paths!r}; expected a whole number of paths >= 1 (e.g. 1000)")
    if not (math.isfinite(initial_usd) and initial_usd > 0):
        raise ValueError(f"initial capital {initial_usd!r} USD; expected a positive amount")


def _compound(initial_usd: float, returns: np.ndarray) -> np.ndarray:
    """Rows of returns -> rows of equity with the capital prepended."""
    growth = np.cumprod(1.0 + returns, axis=1)
    return np.hstack([np.full((len(returns), 1), initial_usd), initial_usd * growth])


def permute_trades(returns: Sequence[float], initial_usd: float, paths: int = 1000, seed: int = 0) -> MonteCarloSummary:
    """Trade-order permutation of per-trade returns (fractions: 0.02 = +2%)."""
    _check(paths, initial_usd)
    r = np.asarray(returns, dtype=np.float64)
    if (r < -1).any() or not np.isfinite(r).all():
        raise ValueError("a trade return below -100% or not finite; per-trade returns are fractions of equity > -1")
    n = len(r)
    actual = _compound(initial_usd, r[None, :])
    rng = np.random.default_rng(seed)
    finals, drawdowns = np.full(paths, initial_usd), np.zeros(paths)
    chunk = max(1, _CHUNK_VALUES // (n + 1))
    for lo in range(0, paths if n else 0, chunk):
        hi = min(paths, lo + chunk)
        # Generator.permuted shuffles row after row from one stream: chunking changes nothing
        order = rng.permuted(np.tile(np.arange(n), (hi - lo, 1)), axis=1)
        eq = _compound(initial_usd, r[order])
        finals[lo:hi] = eq[:, -1]
        drawdowns[lo:hi] = _max_drawdown_pct(eq)
    return MonteCarloSummary("trade_permutation", paths, seed, None, initial_usd, float(actual[0, -1]),
                             float(_max_drawdown_pct(actual)[0]), _percentiles(finals), _percentiles(drawdowns))


def bootstrap_returns(returns: Sequence[float], initial_usd: float, paths: int = 1000,
                      block_bars: int | None = None, seed: int = 0) -> MonteCarloSummary:
    """Circular block bootstrap of per-bar returns (fractions), paths as long as the input."""
    _check(paths, initial_usd)
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    if block_bars is None:
        block_bars = max(1, round(math.sqrt(n)))
    if isinstance(block_bars, bool) or not isinstance(block_bars, int) or block_bars < 1:
        raise ValueError(f"block_bars {block_bars!r}; expected a whole number of bars >= 1")
    if (r < -1).any() or not np.isfinite(r).all():
        raise ValueError("a per-bar return below -100% or not finite; the equity must stay positive")
    actual = _compound(initial_usd, r[None, :])
    rng = np.random.default_rng(seed)
    if n == 0:
        flat = np.full(paths, initial_usd)
        return MonteCarloSummary("block_bootstrap", paths, seed, block_bars, initial_usd, initial_usd, 0.0,
                                 _percentiles(flat), _percentiles(np.zeros(paths)))
    blocks = -(-n // block_bars)
    # every start drawn up front, so the figures do not depend on the chunking below
    starts = rng.integers(0, n, size=(paths, blocks))
    offsets = np.arange(block_bars)
    finals, drawdowns = np.empty(paths), np.empty(paths)
    chunk = max(1, _CHUNK_VALUES // (n + 1))
    for lo in range(0, paths, chunk):
        hi = min(paths, lo + chunk)
        idx = ((starts[lo:hi, :, None] + offsets) % n).reshape(hi - lo, -1)[:, :n]
        eq = _compound(initial_usd, r[idx])
        finals[lo:hi] = eq[:, -1]
        drawdowns[lo:hi] = _max_drawdown_pct(eq)
    return MonteCarloSummary("block_bootstrap", paths, seed, block_bars, initial_usd, float(actual[0, -1]),
                             float(_max_drawdown_pct(actual)[0]), _percentiles(finals), _percentiles(drawdowns))


def trade_returns(result: BacktestResult) -> np.ndarray:
    """Each closed trade's P&L as a fraction of the equity just before it opened (the last
    equity point before ``entry_ms``: the point at ``entry_ms`` already holds the entry's fee
    and slippage), and, when a position is still open at the end, its marked P&L as a last
    (open) trade: the run's P&L the closed trades do not hold, over the equity just before the
    position opened. Compounding them in their own order gives back the run's final equity
    when the trades did not overlap and only they moved the equity."""
    out = [trade.pnl_usd / _equity_before(result, trade.entry_ms) for trade in result.trades]
    opened = _open_trade(result)
    if opened is not None:
        entry_ms, pnl_usd = opened
        out.append(pnl_usd / _equity_before(result, entry_ms))
    return np.asarray(out, dtype=np.float64)


def _equity_before(result: BacktestResult, at_ms: int) -> float:
    """The equity at the last point before ``at_ms`` (the initial capital before the first)."""
    times, values = result.equity.times, result.equity.values
    i = int(np.searchsorted(times, at_ms, side="left")) - 1
    base = float(values[i]) if i >= 0 else result.initial_capital_usd
    if base <= 0:
        raise ValueError(f"equity {base!r} USD before the trade opened at {at_ms}; returns need positive equity")
    return base


def _open_trade(result: BacktestResult) -> tuple[int, float] | None:
    """(opened at, marked P&L) of what is still held at the end of the run, or None when it
    ends flat. It opened where the last stretch of non-zero exposure began; its P&L is the
    final equity less the initial capital and the closed trades' P&L (the entry's costs and
    the mark at the end included)."""
    exposure = np.asarray(result.exposure, dtype=np.float64)
    if not len(exposure) or exposure[-1] == 0:
        return None
    flat = np.flatnonzero(exposure == 0)
    first = int(flat[-1]) + 1 if len(flat) else 0
    pnl = result.final_equity_usd - result.initial_capital_usd - sum(t.pnl_usd for t in result.trades)
    return int(result.equity.times[first]), float(pnl)


def _actual(summary: MonteCarloSummary, result: BacktestResult) -> MonteCarloSummary:
    """``summary`` with the run's own final equity and max drawdown as the actual figures."""
    dd = drawdown_series(result.equity.values)
    worst = float(-dd.min()) * 100.0 + 0.0 if len(dd) else 0.0  # + 0.0: a flat curve's -0.0 is 0.0
    return replace(summary, actual_final_equity_usd=float(result.final_equity_usd), actual_max_drawdown_pct=worst)


def trade_permutation(result: BacktestResult, paths: int = 1000, seed: int = 0) -> MonteCarloSummary:
    """``permute_trades`` on ``trade_returns(result)`` (an open position counted as a last
    trade) from the run's initial capital; the actual figures are the run's."""
    return _actual(permute_trades(trade_returns(result), result.initial_capital_usd, paths, seed), result)


def block_bootstrap(result: BacktestResult, paths: int = 1000, block_bars: int | None = None,
                    seed: int = 0) -> MonteCarloSummary:
    """``bootstrap_returns`` on the run's per-bar returns from its initial capital; the actual
    figures are the run's."""
    r = bar_returns(result.equity.values)
    return _actual(bootstrap_returns(r, result.initial_capital_usd, paths, block_bars, seed), result)
