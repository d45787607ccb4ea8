"""backtest.walkforward with a pure-python toy runner (issue 10 item 8): only out-of-sample
figures, the choice per window is the grid's best on the training window, and serial, local
processes and a Dask LocalCluster give the same result."""

from __future__ import annotations

import functools
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from backtest import metrics
from backtest import walkforward as wf
from backtest.result import BacktestResult, ClosedTrade
from scheduler.engine.errors import ConfigError, GoTraderError
from tests.unit.backtest_fixtures import DAY_MS, T0_MS, result


def _price(bar: int) -> float:
    # a wave on a trend: different lags win in different stretches
    return 100.0 * math.exp(0.25 * math.sin(bar / 9.0) + 0.1 * math.sin(bar / 31.0) + 0.0008 * bar)


def toy_run(params: dict, start_ms: int, end_ms: int, capital_usd: float = 1000.0) -> BacktestResult:
    """Long 1x (scaled by ``leverage``) while the price is above its value ``lag`` bars ago,
    decided at each bar's close, held over the next bar. Deterministic and picklable."""
    lag, leverage = int(params["lag"]), float(params["leverage"])
    first, last = (start_ms - T0_MS) // DAY_MS, (end_ms - T0_MS) // DAY_MS
    equity, exposure, trades = [(start_ms, capital_usd)], [0.0], []
    value, entry = capital_usd, None
    for bar in range(first, last):
        long = _price(bar) > _price(bar - lag)
        if long and entry is None:
            entry = (bar, value)
        value *= 1 + (leverage * (_price(bar + 1) / _price(bar) - 1) if long else 0.0)
        if entry is not None and (not long or bar == last - 1):
            trades.append(ClosedTrade("TOY", "long", T0_MS + entry[0] * DAY_MS, T0_MS + (bar + 1) * DAY_MS, 1.0,
                                      _price(entry[0]), _price(bar + 1), value - entry[1], 0.0, 0.0, "signal"))
            entry = None
        equity.append((T0_MS + (bar + 1) * DAY_MS, value))
        exposure.append(leverage if long else 0.0)
    return BacktestResult("toy", "spot", "toy", ("TOY",), "1d", DAY_MS, start_ms, end_ms, capital_usd,
                          tuple(equity), tuple(exposure), tuple(trades), (), 0.0, 0.0,
                          params=dict(params), costs={"fee_pct": 0.0, "slippage_pct": 0.0})


GRID = wf.param_grid({"lag": [2, 5, 11, 23], "leverage": [0.5, 1.0]})
WINDOWS = wf.windows(T0_MS, T0_MS + 400 * DAY_MS, train_ms=120 * DAY_MS, test_ms=40 * DAY_MS)


def test_param_grid_is_the_ordered_product() -> None:
    assert wf.param_grid({"b": [1, 2], "a": ["x"]}) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]
    assert len(GRID) == 8
    with pytest.raises(ValueError, match="grid axis 'a'"):
        wf.param_grid({"a": []})


def test_windows_tile_the_range() -> None:
    assert len(WINDOWS) == 7  # 120 + 7 * 40 = 400
    for a, b in zip(WINDOWS, WINDOWS[1:], strict=False):
        assert b.test_start_ms == a.test_end_ms and a.train_end_ms == a.test_start_ms
    assert all(w.train_end_ms - w.train_start_ms == 120 * DAY_MS for w in WINDOWS)
    anchored = wf.windows(T0_MS, T0_MS + 400 * DAY_MS, 120 * DAY_MS, 40 * DAY_MS, anchored=True)
    assert {w.train_start_ms for w in anchored} == {T0_MS}
    with pytest.raises(ValueError, match="would overlap"):
        wf.windows(T0_MS, T0_MS + 400 * DAY_MS, 120 * DAY_MS, 40 * DAY_MS, step_ms=10 * DAY_MS)
    with pytest.raises(ValueError, match="shorter than one training plus test window"):
        wf.windows(T0_MS, T0_MS + 100 * DAY_MS, 120 * DAY_MS, 40 * DAY_MS)


def test_chooses_the_training_best_and_reports_only_out_of_sample() -> None:
    out = wf.walk_forward(toy_run, GRID, WINDOWS)
    for w in out.windows:
        scores = [metrics.compute(toy_run(p, w.window.train_start_ms, w.window.train_end_ms)).curve.sharpe
                  for p in GRID]
        assert w.params == GRID[scores.index(max(scores))]
        assert w.oos == toy_run(w.params, w.window.test_start_ms, w.window.test_end_ms)
    assert len({tuple(sorted(w.params.items())) for w in out.windows}) > 1, "the toy should pick differently"
    # the stitched curve covers the test windows only, and compounds across them
    assert out.oos.equity[0][0] == WINDOWS[0].test_start_ms and out.oos.equity[-1][0] == WINDOWS[-1].test_end_ms
    growth = math.prod(w.oos.final_equity_usd / w.oos.equity[0][1] for w in out.windows)
    assert out.oos.final_equity_usd == pytest.approx(1000.0 * growth)
    assert out.metrics == metrics.compute(out.oos)
    doc = out.to_json()
    assert "train" not in str([k for w in doc["windows"] for k in w if k.endswith("score")])
    assert len(doc["windows"]) == 7 and doc["objective"] == "sharpe"


def test_objective_is_selectable_and_drawdown_is_minimised() -> None:
    out = wf.walk_forward(toy_run, GRID, WINDOWS[:2], objective="max_drawdown_pct")
    for w in out.windows:
        dds = [metrics.compute(toy_run(p, w.window.train_start_ms, w.window.train_end_ms)).curve.max_drawdown_pct
               for p in GRID]
        assert w.params == GRID[dds.index(min(dds))]
    with pytest.raises(ValueError, match="unknown objective 'sharp'; choose one of sharpe"):
        wf.walk_forward(toy_run, GRID, WINDOWS, objective="sharp")
    with pytest.raises(ValueError, match="workers 0"):
        wf.walk_forward(toy_run, GRID, WINDOWS, workers=0)
    with pytest.raises(ValueError, match="cannot be sent to another process"):
        wf.walk_forward(lambda p, a, b: toy_run(p, a, b), GRID, WINDOWS, workers=2)


def test_stitch_by_hand() -> None:
    a = result([100.0, 110.0], start_ms=T0_MS)
    b = result([100.0, 90.0], start_ms=T0_MS + DAY_MS, fees_usd=2.0)
    s = wf.stitch([a, b])
    assert [t for t, _ in s.equity] == [T0_MS, T0_MS + DAY_MS, T0_MS + 2 * DAY_MS]
    assert [v for _, v in s.equity] == pytest.approx([100.0, 110.0, 99.0])
    assert s.fees_usd == pytest.approx(2.2) and len(s.exposure) == 3


@pytest.mark.timeout(240)
def test_local_processes_and_a_dask_local_cluster_give_the_serial_result() -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    run = functools.partial(toy_run, capital_usd=500.0)  # a partial of a module-level function pickles
    serial = wf.walk_forward(run, GRID, WINDOWS)
    local = wf.walk_forward(run, GRID, WINDOWS, workers=2)
    assert local == serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None,
                                  # its HTTP server on a free port, never 8787: two clusters at once must not clash
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        on_dask = wf.walk_forward(run, GRID, WINDOWS, scheduler_address=cluster.scheduler_address)
    assert on_dask == serial
    assert on_dask.oos.equity[0][1] == 500.0


def test_a_bad_or_unreachable_dask_scheduler_is_a_sentence_not_a_traceback(monkeypatch) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    with pytest.raises(ConfigError, match="missing port number") as bad:
        wf.walk_forward(toy_run, GRID, WINDOWS, scheduler_address="not an address")
    assert "give the scheduler's address, e.g. tcp://10.0.0.5:8786" in bad.value.problems[0]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(wf, "DASK_CONNECT_S", 1)
    with pytest.raises(GoTraderError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        wf.walk_forward(toy_run, GRID, WINDOWS, scheduler_address=f"tcp://127.0.0.1:{port}")


@dataclass(frozen=True)
class WarmedRun:
    """toy_run that notes, in ``folder``, each process it was warmed in (picklable)."""

    folder: str
    fail_warm_up: bool = False

    def warm_up(self) -> None:
        if self.fail_warm_up:
            raise RuntimeError("warm-up failed")
        (Path(self.folder) / str(os.getpid())).touch()

    def __call__(self, params: dict, start_ms: int, end_ms: int) -> BacktestResult:
        return toy_run(params, start_ms, end_ms)


@pytest.mark.timeout(240)
def test_an_open_pool_is_warm_in_every_worker_and_serves_several_walk_forwards(tmp_path: Path) -> None:
    run = WarmedRun(str(tmp_path))
    serial = wf.walk_forward(toy_run, GRID, WINDOWS)
    with wf.job_mapper(2, warm=run) as map_jobs:
        assert len(list(tmp_path.iterdir())) == 2  # both workers warmed before the first job
        assert wf.walk_forward(run, GRID, WINDOWS, map_jobs=map_jobs) == serial
        assert wf.walk_forward(run, GRID, WINDOWS[:2], map_jobs=map_jobs) == wf.walk_forward(toy_run, GRID, WINDOWS[:2])
        with pytest.raises(ValueError, match="map_jobs runs the jobs where it was opened"):
            wf.walk_forward(run, GRID, WINDOWS, workers=2, map_jobs=map_jobs)
    assert len(list(tmp_path.iterdir())) == 2  # no other process was started
    with wf.job_mapper(1, warm=run, pool_of_one=True) as map_jobs:  # the benchmark's baseline
        assert wf.walk_forward(run, GRID, WINDOWS, map_jobs=map_jobs) == serial
    assert len(list(tmp_path.iterdir())) == 3 and str(os.getpid()) not in os.listdir(tmp_path)
    # a warm-up that fails is not fatal: the jobs run (and would raise their own errors)
    assert wf.walk_forward(WarmedRun(str(tmp_path), fail_warm_up=True), GRID, WINDOWS, workers=2) == serial
