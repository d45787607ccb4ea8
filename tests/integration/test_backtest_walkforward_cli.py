"""The walk-forward over the real runner (backtest.walk_runner.ConfigRunner): the same
out-of-sample result serially, on two local processes and on a Dask LocalCluster; and
`go-trader backtest` with --walk-forward, --monte-carlo and --lookahead-check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backtest import walkforward as wf
from backtest.walk_runner import ConfigRunner
from scheduler.config import parse_config
from scheduler.flags import config_from_flags, market_from_flags
from tests.integration.harness import REPO

DAY_MS = 86_400_000
END_MS = 1_773_100_800_000  # 2026-03-10T00:00Z
GRID = wf.param_grid({"fast": [10, 20], "slow": [50]})


def _runner(tmp_path: Path) -> ConfigRunner:
    market = market_from_flags("synthetic", None, 42)
    config = parse_config(config_from_flags("sma_crossover", ["BTC/USDT"], "1h", 1000.0, market), base_dir=tmp_path)
    return ConfigRunner(config.model_dump(mode="json"), config.strategies[0].id, str(tmp_path))


def test_the_real_runner_walks_forward_alike_serially_on_processes_and_on_dask(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    run = _runner(tmp_path)
    wins = wf.windows(END_MS - 50 * DAY_MS, END_MS, 30 * DAY_MS, 10 * DAY_MS)
    assert len(wins) == 2
    serial = wf.walk_forward(run, GRID, wins)
    assert wf.walk_forward(run, GRID, wins, workers=2) == serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None) as cluster:
        assert wf.walk_forward(run, GRID, wins, scheduler_address=cluster.scheduler_address) == serial
    # out of sample only: the stitched run covers the test windows, not the training ones
    assert serial.oos.start_ms == wins[0].test_start_ms and serial.oos.end_ms == wins[-1].test_end_ms
    for w in serial.windows:  # each window's choice is the grid's best on its own training window
        scores = [wf.OBJECTIVES["sharpe"][0](wf.metrics.compute(run(p, w.window.train_start_ms,
                                                                     w.window.train_end_ms))) for p in GRID]
        best = max(range(len(GRID)), key=lambda i: (scores[i] if scores[i] is not None else -1e300, -i))
        assert w.params == GRID[best]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler", "backtest", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_backtest_cli_runs_the_walk_forward_the_monte_carlo_and_the_lookahead_check(tmp_path: Path) -> None:
    base = ["--strategy", "sma_crossover", "--symbols", "BTC/USDT", "--timeframe", "1h", "--source", "synthetic",
            "--end", "2026-03-10"]
    p = _cli(*base, "--days", "60", "--monte-carlo", "100", "--lookahead-check", "--json", str(tmp_path / "r.json"))
    assert p.returncode == 0, p.stderr
    assert "look-ahead check passed" in p.stdout and "Monte Carlo (block bootstrap, 100 paths)" in p.stdout
    (report,) = json.loads((tmp_path / "r.json").read_text())["reports"]
    assert report["lookahead"]["first_mismatch"] is None
    assert {m["method"] for m in report["monte_carlo"]} == {"trade_permutation", "block_bootstrap"}
    p = _cli(*base, "--days", "50", "--walk-forward", '{"fast": [10, 20], "slow": [50]}', "--train-days", "30",
             "--test-days", "10", "--json", str(tmp_path / "wf.json"))
    assert p.returncode == 0, p.stderr
    assert "2 windows, 2 parameter sets" in p.stdout and "out-of-sample" in p.stdout
    doc = json.loads((tmp_path / "wf.json").read_text())["walk_forward"]
    assert len(doc["windows"]) == 2 and doc["grid_size"] == 2
    p = _cli(*base, "--walk-forward", "[1]")
    assert p.returncode == 2 and "JSON object of non-empty lists" in p.stderr
