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

``job_mapper`` opens that place to run: a pool's workers (and Dask's) are warmed for the
runner before the first phase, local jobs go in chunks, and a caller may keep one open for
several walk-forwards (``walk_forward(..., map_jobs=...)``; bench/bench_walkforward.py times
the start-up apart from the grid that way).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import pickle
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from backtest import metrics
from backtest.result import BacktestResult, Curve
from scheduler.engine.errors import ConfigError, GoTraderError

#: how long to wait for a Dask scheduler to answer the connection
DASK_CONNECT_S = 30  # Dask's own default (distributed.comm.timeouts.connect)

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


JobMap = Callable[[Callable[..., Any], list[tuple[Any, ...]]], list[Any]]

_WARM_WAIT_S = 120.0  # how long a warmed worker waits for the others before the first job


def _warm(run: Runner) -> None:
    """Make ``run`` ready in this process: its module is imported by now (unpickling it did
    that); a runner with a ``warm_up()`` (backtest.walk_runner.ConfigRunner) imports the rest
    and opens its data. A failure here is left to the first job, which raises it again."""
    warm_up = getattr(run, "warm_up", None)
    if callable(warm_up):
        try:
            warm_up()
        except Exception:  # the first job raises it with its own traceback
            pass


def _warm_worker(run: Runner, ready: Any) -> None:
    """The pool's initializer: warm, then wait until every worker has (a barrier), so that
    the first phase starts on warm workers only."""
    _warm(run)
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(timeout=_WARM_WAIT_S)


def _noop() -> None:
    return None


def _check_picklable(run: Any) -> None:
    try:  # fail here with the fix, not inside the pool with a pickling traceback
        pickle.dumps(run)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise ValueError(f"the runner {run!r} cannot be sent to another process ({e}); use a "
                         "module-level function or functools.partial of one, or workers=1") from e


@contextlib.contextmanager
def job_mapper(workers: int = 1, scheduler_address: str | None = None, *,
               warm: Runner | None = None, pool_of_one: bool = False) -> Iterator[JobMap]:
    """A ``map(fn, jobs) -> [fn(*job) for job in jobs]`` (in that order) that runs serially, on
    one pool of ``workers`` processes or on Dask, open for both phases of a walk-forward (or
    several). With ``warm``, every worker is made ready for that runner before this yields
    (``_warm``: the pool's start-up is paid here, not inside the first phase). Local jobs go
    to the pool in chunks (a few per worker), so that tiny jobs do not each pay a round trip.
    ``pool_of_one``: one worker is a pool of one process too, not this process (the
    benchmark's baseline: what the pool costs, without its parallelism)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers {workers!r}; expected a whole number of processes >= 1")
    if scheduler_address is not None:
        try:
            from distributed import Client
        except ImportError:  # the optional extra
            raise GoTraderError("a Dask scheduler address needs the dask extra: pip install 'go-trader[dask]'") from None
        try:
            client = Client(scheduler_address, timeout=f"{DASK_CONNECT_S}s")
        except ValueError as e:  # the address itself (no port, an unknown protocol)
            raise ConfigError([f"--dask-scheduler {scheduler_address!r}: {e}; give the scheduler's address, e.g. "
                               "tcp://10.0.0.5:8786"]) from None
        except (OSError, TimeoutError) as e:  # nothing answers there
            raise GoTraderError(f"cannot reach the Dask scheduler at {scheduler_address}: {e}; is it running, and is "
                                "its port open from here?") from None
        with client:
            if warm is not None:
                client.run(_warm, warm)

            def on_dask(fn: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
                return list(client.gather(client.map(fn, *zip(*jobs, strict=True), pure=False))) if jobs else []

            yield on_dask
        return
    if workers == 1 and not pool_of_one:
        yield lambda fn, jobs: [fn(*job) for job in jobs]
        return
    ctx = multiprocessing.get_context("spawn")
    init: dict[str, Any] = {}
    if warm is not None:
        _check_picklable(warm)
        init = {"initializer": _warm_worker, "initargs": (warm, ctx.Barrier(workers))}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **init) as pool:
        if warm is not None:  # one job per worker starts them all; each returns once all are warm
            for f in [pool.submit(_noop) for _ in range(workers)]:
                f.result()

        def on_processes(fn: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
            if not jobs:
                return []
            _check_picklable(jobs[0][0])
            chunk = max(1, len(jobs) // (4 * workers))  # as multiprocessing.Pool.map picks it
            return list(pool.map(fn, *zip(*jobs, strict=True), chunksize=chunk))

        yield on_processes


def _best(grid: list[dict[str, Any]], scores: list[float | None]) -> int:
    """Index of the best score; ties to the earlier grid point; an undefined score loses."""
    best = 0
    for i, s in enumerate(scores):
        if s is not None and (scores[best] is None or s > scores[best]):  # type: ignore[operator]
            best = i
    return best


def walk_forward(run: Runner, grid: Sequence[Mapping[str, Any]], wins: Sequence[Window], *,
                 objective: str = "sharpe", workers: int = 1, scheduler_address: str | None = None,
                 map_jobs: JobMap | None = None) -> WalkForwardResult:
    """The walk-forward of the module docstring over ``wins`` (see ``windows``): on ``workers``
    processes or the Dask scheduler (a ``job_mapper`` warmed for ``run``), or on ``map_jobs``,
    a ``job_mapper`` the caller keeps open (then give neither of the two)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if map_jobs is not None and (workers != 1 or scheduler_address is not None):
        raise ValueError("map_jobs runs the jobs where it was opened; give it without workers or scheduler_address")
    points = [dict(p) for p in grid]
    if not points:
        raise ValueError("the parameter grid is empty; give at least one parameter set")
    if not wins:
        raise ValueError("no windows; build them with backtest.walkforward.windows(...)")
    train = [(run, p, w.train_start_ms, w.train_end_ms, objective) for w in wins for p in points]
    with contextlib.ExitStack() as stack:
        if map_jobs is None:
            map_jobs = stack.enter_context(job_mapper(workers, scheduler_address,
                                                      warm=run if workers > 1 or scheduler_address else None))
        scores = map_jobs(_train_job, train)
        chosen = [points[_best(points, scores[k * len(points):(k + 1) * len(points)])] for k in range(len(wins))]
        tests = [(run, p, w.test_start_ms, w.test_end_ms) for w, p in zip(wins, chosen, strict=True)]
        oos = map_jobs(_test_job, tests)
    per_window = tuple(WindowResult(w, p, r) for w, p, r in zip(wins, chosen, oos, strict=True))
    stitched = stitch(oos)
    return WalkForwardResult(objective, len(points), per_window, stitched, metrics.compute(stitched))


def _carried(parts: list[Curve], curve: Curve) -> tuple[Curve, np.ndarray, float]:
    """``curve`` scaled to start where ``parts`` ended, without its points at or before that
    end (the shared boundary); which of its points were kept, and the scale factor."""
    if not parts:
        return curve, np.ones(len(curve), dtype=bool), 1.0
    end = parts[-1]
    keep = curve.times > end.times[-1]
    factor = float(end.values[-1] / curve.values[0])
    return Curve(curve.times[keep], curve.values[keep] * factor), keep, factor


def stitch(results: Sequence[BacktestResult]) -> BacktestResult:
    """Consecutive out-of-sample runs as one: each run's equity (and buy-and-hold) is scaled to
    start where the previous one ended, as if the account had carried over; its trades, fees
    and slippage by the same factor (so the dollar figures are the stitched account's). A
    point at or before the previous run's last time is dropped (the shared boundary)."""
    if not results:
        raise ValueError("nothing to stitch: no out-of-sample runs")
    first = results[0]
    equity: list[Curve] = []
    benchmark: list[Curve] = []
    exposure: list[float] = []
    trades, fills = [], []
    fees = slippage = 0.0
    for r in results:
        if not r.equity:
            continue
        part, keep, factor = _carried(equity, r.equity)
        equity.append(part)
        exposure += [x for x, k in zip(r.exposure, keep.tolist(), strict=True) if k]
        if r.benchmark:
            benchmark.append(_carried(benchmark, r.benchmark)[0])
        trades += [replace(t, quantity=t.quantity * factor, pnl_usd=t.pnl_usd * factor, fees_usd=t.fees_usd * factor,
                           slippage_usd=t.slippage_usd * factor) for t in r.trades]
        fills += list(r.fills)
        fees += r.fees_usd * factor
        slippage += r.slippage_usd * factor
    return replace(first, strategy_id=f"{first.strategy_id}:walk-forward", end_ms=results[-1].end_ms,
                   equity=_joined(equity), exposure=tuple(exposure), trades=tuple(trades), fills=tuple(fills),
                   fees_usd=fees, slippage_usd=slippage, benchmark=_joined(benchmark), params={})


def _joined(parts: list[Curve]) -> Curve:
    if not parts:
        return Curve.of(())
    return Curve(np.concatenate([p.times for p in parts]), np.concatenate([p.values for p in parts]))
