"""Walk-forward analysis (issue 10 item 8): search a parameter grid on a training window, run
the best parameters on the unseen window that follows, move on; report only the out-of-sample
figures (the stitched out-of-sample equity, its metrics, and the parameters chosen per window).

The runner is injected: ``run(params, start_ms, end_ms) -> BacktestResult``. For the process
pool and Dask it must be picklable (a module-level function, or ``functools.partial`` of one).
The grid runs serially (``workers=1``), on local processes (``concurrent.futures``, the
"spawn" start method: the same on every platform and safe in a threaded parent), or on a Dask
cluster when a scheduler address is given (``distributed.Client(address)``; the optional
``dask`` extra, imported only then). Every job's result is put back in grid order and ties
go to the earlier grid point, so all three give the same answer.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from backtest import metrics
from backtest.result import BacktestResult

Runner = Callable[[dict[str, Any], int, int], BacktestResult]

#: objective name -> (figure of backtest.metrics.Metrics, +1 to maximise / -1 to minimise)
OBJECTIVES: Mapping[str, tuple[Callable[[metrics.Metrics], float | None], int]] = {
    "sharpe": (lambda m: m.curve.sharpe, 1),
    "sortino": (lambda m: m.curve.sortino, 1),
    "calmar": (lambda m: m.curve.calmar, 1),
    "total_return_pct": (lambda m: m.curve.total_return_pct, 1),
    "cagr_pct": (lambda m: m.curve.cagr_pct, 1),
    "max_drawdown_pct": (lambda m: m.curve.max_drawdown_pct, -1),
    "profit_factor": (lambda m: m.trades.profit_factor, 1),
    "expectancy_usd": (lambda m: m.trades.expectancy_usd, 1),
    "win_rate_pct": (lambda m: m.trades.win_rate_pct, 1),
}


@dataclass(frozen=True)
class Window:
    train_start_ms: int
    train_end_ms: int
    test_start_ms: int
    test_end_ms: int


@dataclass(frozen=True)
class WindowResult:
    window: Window
    params: dict[str, Any]  # the grid point chosen on the training window
    oos: BacktestResult  # that grid point on the test window (out of sample)


@dataclass(frozen=True)
class WalkForwardResult:
    objective: str
    grid_size: int
    windows: tuple[WindowResult, ...]
    oos: BacktestResult  # the test windows stitched, compounding from the first one's capital
    metrics: metrics.Metrics  # of ``oos``

    def to_json(self) -> dict[str, Any]:
        """Out-of-sample figures only (no training scores)."""
        return {
            "objective": self.objective, "grid_size": self.grid_size,
            "windows": [{**asdict(w.window), "params": w.params,
                         "total_return_pct": metrics.curve_metrics(w.oos.equity, w.oos.bar_ms).total_return_pct,
                         "trades": len(w.oos.trades)} for w in self.windows],
            "oos_metrics": self.metrics.to_json(),
            "oos_equity": [list(p) for p in self.oos.equity],
        }


def param_grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``axes`` (name -> values), in a fixed order: names sorted, then
    values in the order given (the last name varies fastest)."""
    names = sorted(axes)
    for name in names:
        if isinstance(axes[name], (str, bytes)) or not len(axes[name]):
            raise ValueError(f"grid axis {name!r} is {axes[name]!r}; expected a non-empty list of values")
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(axes[n] for n in names))]


def windows(start_ms: int, end_ms: int, train_ms: int, test_ms: int, *, step_ms: int | None = None,
            anchored: bool = False) -> list[Window]:
    """Rolling (or, ``anchored``, expanding from ``start_ms``) training windows, each followed
    by its test window; the next pair starts ``step_ms`` later (default ``test_ms``, so the
    test windows tile the range). A test window that would pass ``end_ms`` is dropped."""
    step = test_ms if step_ms is None else step_ms
    if train_ms <= 0 or test_ms <= 0:
        raise ValueError(f"train_ms {train_ms}, test_ms {test_ms}; expected both > 0")
    if step < test_ms:
        raise ValueError(f"step_ms {step} < test_ms {test_ms}: the out-of-sample windows would overlap; "
                         "use a step of at least the test window")
    out = []
    offset = 0
    while start_ms + offset + train_ms + test_ms <= end_ms:
        train_start = start_ms if anchored else start_ms + offset
        test_start = start_ms + offset + train_ms
        out.append(Window(train_start, test_start, test_start, test_start + test_ms))
        offset += step
    if not out:
        raise ValueError(f"the range {start_ms}..{end_ms} ({(end_ms - start_ms) / 86_400_000:g} days) is shorter "
                         f"than one training plus test window ({(train_ms + test_ms) / 86_400_000:g} days)")
    return out


def score(result: BacktestResult, objective: str) -> float | None:
    """The objective's figure of ``result``, signed so that larger is better (None: undefined)."""
    figure, sign = OBJECTIVES[objective]
    value = figure(metrics.compute(result))
    return None if value is None else sign * value


def _train_job(run: Runner, params: dict[str, Any], start_ms: int, end_ms: int, objective: str) -> float | None:
    return score(run(params, start_ms, end_ms), objective)


def _test_job(run: Runner, params: dict[str, Any], start_ms: int, end_ms: int) -> BacktestResult:
    return run(params, start_ms, end_ms)


@contextlib.contextmanager
def _mapper(workers: int, scheduler_address: str | None) -> Iterator[Callable[[Callable[..., Any], list[tuple[Any, ...]]], list[Any]]]:
    """A ``map(fn, jobs) -> [fn(*job) for job in jobs]`` (in that order) that runs serially, on
    one pool of processes or on Dask, open for both phases of a walk-forward."""
    if scheduler_address is not None:
        try:
            from distributed import Client
        except ImportError as e:  # the optional extra
            raise RuntimeError("a Dask scheduler address needs the dask extra: pip install 'go-trader[dask]'") from e
        with Client(scheduler_address) as client:
            def on_dask(fn: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
                return list(client.gather(client.map(fn, *zip(*jobs, strict=True), pure=False))) if jobs else []

            yield on_dask
        return
    if workers == 1:
        yield lambda fn, jobs: [fn(*job) for job in jobs]
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        def on_processes(fn: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
            if not jobs:
                return []
            try:  # fail here with the fix, not inside the pool with a pickling traceback
                pickle.dumps(jobs[0][0])
            except (pickle.PicklingError, AttributeError, TypeError) as e:
                raise ValueError(f"the runner {jobs[0][0]!r} cannot be sent to another process ({e}); use a "
                                 "module-level function or functools.partial of one, or workers=1") from e
            return list(pool.map(fn, *zip(*jobs, strict=True)))

        yield on_processes


def _best(grid: list[dict[str, Any]], scores: list[float | None]) -> int:
    """Index of the best score; ties to the earlier grid point; an undefined score loses."""
    best = 0
    for i, s in enumerate(scores):
        if s is not None and (scores[best] is None or s > scores[best]):  # type: ignore[operator]
            best = i
    return best


def walk_forward(run: Runner, grid: Sequence[Mapping[str, Any]], wins: Sequence[Window], *,
                 objective: str = "sharpe", workers: int = 1, scheduler_address: str | None = None) -> WalkForwardResult:
    """The walk-forward of the module docstring over ``wins`` (see ``windows``)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers {workers!r}; expected a whole number of processes >= 1")
    points = [dict(p) for p in grid]
    if not points:
        raise ValueError("the parameter grid is empty; give at least one parameter set")
    if not wins:
        raise ValueError("no windows; build them with backtest.walkforward.windows(...)")
    train = [(run, p, w.train_start_ms, w.train_end_ms, objective) for w in wins for p in points]
    with _mapper(workers, scheduler_address) as map_jobs:
        scores = map_jobs(_train_job, train)
        chosen = [points[_best(points, scores[k * len(points):(k + 1) * len(points)])] for k in range(len(wins))]
        tests = [(run, p, w.test_start_ms, w.test_end_ms) for w, p in zip(wins, chosen, strict=True)]
        oos = map_jobs(_test_job, tests)
    per_window = tuple(WindowResult(w, p, r) for w, p, r in zip(wins, chosen, oos, strict=True))
    stitched = stitch(oos)
    return WalkForwardResult(objective, len(points), per_window, stitched, metrics.compute(stitched))


def _scaled(points: Sequence[tuple[int, float]], factor: float, after_ms: int | None) -> list[tuple[int, float]]:
    return [(t, v * factor) for t, v in points if after_ms is None or t > after_ms]


def stitch(results: Sequence[BacktestResult]) -> BacktestResult:
    """Consecutive out-of-sample runs as one: each run's equity (and buy-and-hold) is scaled to
    start where the previous one ended, as if the account had carried over; its trades, fees
    and slippage by the same factor (so the dollar figures are the stitched account's). A
    point at or before the previous run's last time is dropped (the shared boundary)."""
    if not results:
        raise ValueError("nothing to stitch: no out-of-sample runs")
    first = results[0]
    equity: list[tuple[int, float]] = []
    benchmark: list[tuple[int, float]] = []
    exposure: list[float] = []
    trades, fills = [], []
    fees = slippage = 0.0
    for r in results:
        if not r.equity:
            continue
        factor = equity[-1][1] / r.equity[0][1] if equity else 1.0
        last = equity[-1][0] if equity else None
        keep = [i for i, (t, _) in enumerate(r.equity) if last is None or t > last]
        equity += [(r.equity[i][0], r.equity[i][1] * factor) for i in keep]
        exposure += [r.exposure[i] for i in keep]
        if r.benchmark:
            b_factor = benchmark[-1][1] / r.benchmark[0][1] if benchmark else 1.0
            benchmark += _scaled(r.benchmark, b_factor, benchmark[-1][0] if benchmark else None)
        trades += [replace(t, quantity=t.quantity * factor, pnl_usd=t.pnl_usd * factor, fees_usd=t.fees_usd * factor,
                           slippage_usd=t.slippage_usd * factor) for t in r.trades]
        fills += list(r.fills)
        fees += r.fees_usd * factor
        slippage += r.slippage_usd * factor
    return replace(first, strategy_id=f"{first.strategy_id}:walk-forward", end_ms=results[-1].end_ms,
                   equity=tuple(equity), exposure=tuple(exposure), trades=tuple(trades), fills=tuple(fills),
                   fees_usd=fees, slippage_usd=slippage, benchmark=tuple(benchmark), params={})
