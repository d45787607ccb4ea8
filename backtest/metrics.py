"""Performance metrics of one backtest run (issue 10 items 5 and 6): pure functions of a
``BacktestResult``.

Conventions (every figure is stated here once; the functions cite these):

- Per-bar simple returns ``r_i = v_i / v_(i-1) - 1`` over consecutive points of the equity
  curve. The risk-free rate is 0.
- Periods per year ``P = 365 d / bar_ms`` (crypto trades every day; the bar is the run's own,
  never an assumed daily bar: 1h bars give P = 8760).
- Years ``Y`` = (last equity time - first equity time) / 365 d.
- total return = ``v_last / v_first - 1``; CAGR = ``(v_last / v_first) ** (1 / Y) - 1``.
- annualised volatility = ``std(r, ddof=1) * sqrt(P)``.
- Sharpe = ``mean(r) / std(r, ddof=1) * sqrt(P)`` (Sharpe 1994, ex-post, per-bar returns
  annualised by sqrt(P); as empyrical's ``sharpe_ratio``).
- Sortino = ``mean(r) / DD * sqrt(P)`` with the downside deviation over ALL bars
  ``DD = sqrt(mean(min(r_i, 0) ** 2))`` (Sortino & Price 1994, target 0; empyrical's
  ``downside_risk``).
- drawdown ``d_i = v_i / max(v_0..v_i) - 1``; max drawdown = ``-min(d)`` (as a positive %);
  its duration is the longest time under water: from a peak to the first later point back at
  or above it (or to the end of the curve when it never recovers), in bars and in days.
- Calmar = CAGR / max drawdown (Young 1991, over the whole run rather than 36 months).
- Trades (closed round trips, net of costs): a win has ``pnl_usd > 0``, a loss ``< 0``, a
  scratch ``== 0`` (counted in the trade count and the win-rate denominator, ends a losing
  streak). win rate = wins / trades; profit factor = sum(win pnl) / -sum(loss pnl);
  expectancy = mean pnl per trade (USD, and mean ``return_pct``); trades per year = trades / Y.
- exposure = mean of ``exposure`` (the share of equity in open positions) over the points.

A figure that cannot be computed (a flat curve has no Sharpe, a run without losing trades no
profit factor, a zero-length run no CAGR) is ``None``, and ``reasons`` says why; nothing is
divided by zero and nothing is NaN, so every document built from these is valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from backtest.result import BacktestResult, ClosedTrade, Curve
from scheduler.engine.timeframes import DAY_MS

YEAR_MS = 365 * DAY_MS
# per-bar returns whose spread is below this are "constant": a Sharpe of 1e15 from rounding
# noise on a straight-line curve says nothing (real prices move by far more per bar)
_FLAT_STD = 1e-12


def periods_per_year(bar_ms: int) -> float:
    """P = 365 days / bar_ms (1h bars: 8760; 1d bars: 365)."""
    if bar_ms <= 0:
        raise ValueError(f"bar_ms {bar_ms}; expected the bar length in ms (> 0)")
    return YEAR_MS / bar_ms


@dataclass(frozen=True)
class CurveMetrics:
    """What an equity curve alone says (the strategy's, or buy-and-hold's)."""

    start_equity_usd: float | None
    final_equity_usd: float | None
    total_return_pct: float | None
    cagr_pct: float | None
    volatility_pct: float | None  # annualised
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_pct: float | None
    max_drawdown_bars: int | None
    max_drawdown_days: float | None
    years: float
    bars: int  # per-bar returns (points - 1)
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TradeMetrics:
    trades: int
    wins: int
    losses: int
    win_rate_pct: float | None
    profit_factor: float | None
    expectancy_usd: float | None
    expectancy_pct: float | None
    avg_win_usd: float | None
    avg_loss_usd: float | None  # negative
    max_consecutive_losses: int
    trades_per_year: float | None
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metrics:
    """Every figure of item 5 for one run, and the same curve figures for buy-and-hold."""

    curve: CurveMetrics
    trades: TradeMetrics
    exposure_pct: float | None
    fees_usd: float
    slippage_usd: float
    benchmark: CurveMetrics | None  # None when the run has no benchmark curve (options)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bar_returns(values: Sequence[float]) -> np.ndarray:
    """Per-bar simple returns ``v_i / v_(i-1) - 1``. ValueError when a value before the last is
    <= 0 (a return from zero or negative equity is undefined)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return np.zeros(0)
    bad = np.flatnonzero(v[:-1] <= 0)
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"equity {v[i]!r} at point {i} is <= 0; per-bar returns need positive equity before the last point")
    return v[1:] / v[:-1] - 1.0


def drawdown_series(values: Sequence[float]) -> np.ndarray:
    """``d_i = v_i / running_max_i - 1`` (0 at a new high, negative under water)."""
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return np.zeros(0)
    peak = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(peak > 0, v / peak - 1.0, 0.0)
    return d


def _longest_under_water(values: np.ndarray, times_ms: np.ndarray) -> tuple[int, int]:
    """(bars, ms) of the longest stretch (in bars) from a peak to the first later point back at
    or above it, or to the end of the curve when it never recovers; (0, 0) without a drawdown."""
    best = (0, 0)
    peak_i = 0
    for i in range(1, len(values)):
        if values[i] >= values[peak_i]:
            if i - peak_i > 1:  # every point strictly between was below the peak
                best = max(best, (i - peak_i, int(times_ms[i] - times_ms[peak_i])))
            peak_i = i
    last = len(values) - 1
    if last > peak_i:  # still under water at the end
        best = max(best, (last - peak_i, int(times_ms[last] - times_ms[peak_i])))
    return best


def curve_metrics(points: Sequence[tuple[int, float]], bar_ms: int) -> CurveMetrics:
    """The curve figures of the module docstring for ``points`` ((ts_ms, equity_usd), oldest
    first) sampled every ``bar_ms``."""
    ppy = periods_per_year(bar_ms)
    reasons: dict[str, str] = {}
    curve = Curve.of(points)
    times, values = curve.times, curve.values
    years = float(times[-1] - times[0]) / YEAR_MS if len(points) else 0.0
    if len(points) == 0:
        why = "the equity curve is empty"
        return CurveMetrics(None, None, None, None, None, None, None, None, None, None, None, 0.0, 0,
                            dict.fromkeys(("total_return_pct", "cagr_pct", "volatility_pct", "sharpe",
                                           "sortino", "calmar", "max_drawdown_pct"), why))
    first, final = float(values[0]), float(values[-1])
    total = cagr = vol = sharpe = sortino = calmar = None
    if first > 0:
        total = (final / first - 1.0) * 100.0
    else:
        reasons["total_return_pct"] = f"the curve starts at {first!r} USD; a return needs a positive start"
    if total is None:
        reasons["cagr_pct"] = reasons["total_return_pct"]
    elif years <= 0:
        reasons["cagr_pct"] = "the curve spans no time (one point); CAGR needs a duration"
    elif final < 0:
        reasons["cagr_pct"] = f"the curve ends below zero ({final!r} USD); a compound rate is undefined"
    else:
        try:
            cagr = ((final / first) ** (1.0 / years) - 1.0) * 100.0
        except OverflowError:  # e.g. doubling in one hour, compounded over 8760 hours
            reasons["cagr_pct"] = (f"a {total:.4g}% return over {years * 365:.4g} days compounds past any float "
                                   "when annualised; the run is too short for a CAGR")
    try:
        r = bar_returns(values)
    except ValueError as e:
        r = None
        for k in ("volatility_pct", "sharpe", "sortino"):
            reasons[k] = str(e)
    if r is not None:
        if len(r) < 2:
            for k in ("volatility_pct", "sharpe", "sortino"):
                reasons[k] = f"{len(r)} per-bar return(s); a standard deviation needs at least 2"
        else:
            mean, std = float(np.mean(r)), float(np.std(r, ddof=1))
            vol = std * math.sqrt(ppy) * 100.0
            if std <= _FLAT_STD:
                reasons["sharpe"] = f"the per-bar returns do not vary (std {std:.3g}): a flat or constant-growth curve has no Sharpe"
            else:
                sharpe = mean / std * math.sqrt(ppy)
            downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
            if downside <= _FLAT_STD:
                reasons["sortino"] = "no bar lost money: the downside deviation is 0, so there is no Sortino"
            else:
                sortino = mean / downside * math.sqrt(ppy)
    dd = drawdown_series(values)
    max_dd = float(-dd.min()) * 100.0 + 0.0 if len(dd) else 0.0  # + 0.0: a flat curve's -0.0 is 0.0
    dd_bars, dd_ms = _longest_under_water(values, times)
    if cagr is None:
        reasons["calmar"] = reasons["cagr_pct"]
    elif max_dd <= 0:
        reasons["calmar"] = "the curve never fell below a previous high: max drawdown 0, so there is no Calmar"
    else:
        calmar = cagr / max_dd
    return CurveMetrics(first, final, total, cagr, vol, sharpe, sortino, calmar, max_dd, dd_bars,
                        dd_ms / DAY_MS, years, max(len(values) - 1, 0), reasons)


def trade_metrics(trades: Sequence[ClosedTrade], years: float) -> TradeMetrics:
    """The trade figures of the module docstring over closed round trips ``trades``."""
    reasons: dict[str, str] = {}
    pnl = [t.pnl_usd for t in trades]
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p < 0]
    n = len(pnl)
    streak = longest = 0
    for p in pnl:
        streak = streak + 1 if p < 0 else 0
        longest = max(longest, streak)
    win_rate = expectancy = expectancy_pct = avg_win = avg_loss = pf = per_year = None
    if n:
        win_rate = len(wins) / n * 100.0
        expectancy = sum(pnl) / n
        expectancy_pct = sum(t.return_pct for t in trades) / n
    else:
        for k in ("win_rate_pct", "expectancy_usd", "expectancy_pct", "profit_factor"):
            reasons[k] = "no closed trades"
    if wins:
        avg_win = sum(wins) / len(wins)
    else:
        reasons["avg_win_usd"] = "no winning trades"
    if losses:
        avg_loss = sum(losses) / len(losses)
        pf = sum(wins) / -sum(losses)
    else:
        reasons["avg_loss_usd"] = "no losing trades"
        if n:
            reasons["profit_factor"] = "no losing trades: the gross loss is 0, so there is no profit factor"
    if years > 0:
        per_year = n / years
    else:
        reasons["trades_per_year"] = "the run spans no time"
    return TradeMetrics(n, len(wins), len(losses), win_rate, pf, expectancy, expectancy_pct, avg_win,
                        avg_loss, longest, per_year, reasons)


def compute(result: BacktestResult) -> Metrics:
    """Every item-5 figure of ``result``, with buy-and-hold's curve figures beside them."""
    curve = curve_metrics(result.equity, result.bar_ms)
    exposure = float(np.mean(result.exposure)) * 100.0 if result.exposure else None
    benchmark = curve_metrics(result.benchmark, result.bar_ms) if result.benchmark else None
    return Metrics(curve, trade_metrics(result.trades, curve.years), exposure, result.fees_usd,
                   result.slippage_usd, benchmark)


# --- gross vs net (item 6) -------------------------------------------------------------

#: Costs above this share of the gross profit flag the strategy's edge as eaten by costs.
EATEN_SHARE_PCT = 50.0


@dataclass(frozen=True)
class CostComparison:
    """The same run with and without fees and slippage.

    ``cost_drag_usd`` = gross final equity - net final equity: what the costs took, compounding
    included (it can exceed ``fees_usd + slippage_usd`` of the net run, since a smaller account
    also earns less). ``cost_share_pct`` = drag / gross profit * 100 (None unless the gross
    run made money). ``edge_eaten``: the gross run made money and the net one did not, or the
    costs took more than ``threshold_pct`` of the gross profit.
    """

    gross_return_pct: float | None
    net_return_pct: float | None
    gross_profit_usd: float
    net_profit_usd: float
    fees_usd: float
    slippage_usd: float
    cost_drag_usd: float
    cost_share_pct: float | None
    threshold_pct: float
    edge_eaten: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_costs(net: BacktestResult, gross: BacktestResult, threshold_pct: float = EATEN_SHARE_PCT) -> CostComparison:
    """Net (with costs) against gross (the same run with fee and slippage 0); see
    ``CostComparison`` for each figure. ValueError when the two are not the same run."""
    problems = []
    for attr in ("strategy_id", "strategy", "symbols", "bar_ms", "start_ms", "end_ms", "initial_capital_usd"):
        if getattr(net, attr) != getattr(gross, attr):
            problems.append(f"{attr} {getattr(net, attr)!r} (net) vs {getattr(gross, attr)!r} (gross)")
    nonzero = {k: v for k, v in gross.costs.items() if v}
    if nonzero:
        problems.append(f"the gross run has costs {nonzero}; run it again with fee and slippage 0")
    if not 0 < threshold_pct <= 100:
        problems.append(f"threshold_pct {threshold_pct!r}; expected a share of the gross profit in (0, 100]")
    if problems:
        raise ValueError("compare_costs needs the same run with and without costs: " + "; ".join(problems))
    capital = net.initial_capital_usd
    gross_profit = gross.final_equity_usd - capital
    net_profit = net.final_equity_usd - capital
    drag = gross.final_equity_usd - net.final_equity_usd
    share = drag / gross_profit * 100.0 if gross_profit > 0 else None
    if gross_profit <= 0:
        eaten, reason = False, f"no gross edge to eat: the gross run made {gross_profit:.2f} USD"
    elif net_profit <= 0:
        eaten, reason = True, (f"costs turn a gross profit of {gross_profit:.2f} USD into a net "
                               f"{net_profit:.2f} USD")
    elif share is not None and share > threshold_pct:
        eaten, reason = True, (f"costs take {share:.1f}% of the gross profit of {gross_profit:.2f} USD "
                               f"(more than {threshold_pct:g}%)")
    else:
        eaten, reason = False, f"costs take {share:.1f}% of the gross profit of {gross_profit:.2f} USD"
    def ret(r: BacktestResult) -> float | None:
        return (r.final_equity_usd / capital - 1.0) * 100.0 if capital > 0 else None

    return CostComparison(ret(gross), ret(net), gross_profit, net_profit, net.fees_usd, net.slippage_usd,
                          drag, share, threshold_pct, eaten, reason)
