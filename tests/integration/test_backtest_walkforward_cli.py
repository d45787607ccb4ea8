"""The walk-forward over the real runner (backtest.walk_runner.ConfigRunner): the same
out-of-sample result serially, on two local processes and on a Dask LocalCluster; and
`go-trader backtest` with --walk-forward, --monte-carlo and --lookahead-check."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backtest import runner as backtest_runner
from backtest import walk_runner
from backtest import walkforward as wf
from backtest.walk_runner import ConfigRunner
from market.download import write_candle_file
from market.files_source import FilesSource
from market.synthetic import SyntheticSource
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
                                  dashboard_address=None, worker_dashboard_address=None,
                                  # its HTTP server on a free port, never 8787: two clusters at once must not clash
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        assert wf.walk_forward(run, GRID, wins, scheduler_address=cluster.scheduler_address) == serial
    # out of sample only: the stitched run covers the test windows, not the training ones
    assert serial.oos.start_ms == wins[0].test_start_ms and serial.oos.end_ms == wins[-1].test_end_ms
    for w in serial.windows:  # each window's choice is the grid's best on its own training window
        scores = [wf.OBJECTIVES["sharpe"][0](wf.metrics.compute(run(p, w.window.train_start_ms,
                                                                     w.window.train_end_ms))) for p in GRID]
        best = max(range(len(GRID)), key=lambda i: (scores[i] if scores[i] is not None else -1e300, -i))
        assert w.params == GRID[best]


def _plain(market: dict, params: dict, start_ms: int, end_ms: int, source: object, tmp_path: Path) -> object:
    """The net run without the runner: a config built with ``params``, a source of its own."""
    doc = config_from_flags("sma_crossover", ["BTC/USDT"], "1h", 1000.0, market, params=params)
    config = parse_config(doc, base_dir=tmp_path)
    net, _ = backtest_runner.run(config, config.strategies[0], source, start_ms, end_ms)
    return net


def test_the_runners_per_process_cache_serves_only_the_same_data(tmp_path: Path) -> None:
    """Each candle request is read once per process and runner, and a different range, other
    parameters, another market section or a new runner over rewritten files never get
    another request's data: every run equals the plain run on a fresh source."""
    walk_runner.clear_cache()
    run = _runner(tmp_path)
    a = (END_MS - 40 * DAY_MS, END_MS - 10 * DAY_MS)
    b = (END_MS - 35 * DAY_MS, END_MS - 5 * DAY_MS)  # overlaps a: same candles, other ends
    p, q = {"fast": 10, "slow": 50}, {"fast": 20, "slow": 60}
    synthetic = market_from_flags("synthetic", None, 42)
    for params, (start, end) in [(p, a), (q, a), (p, b), (q, b), (p, a)]:
        assert run(params, start, end) == _plain(synthetic, params, start, end, SyntheticSource(42), tmp_path)
    stats = walk_runner.cache_stats()
    assert stats["sources"] == 1 and stats["reads"] == 3 and stats["hits"] == 7  # candles a, b; the rules
    # the same token (dataclasses.replace keeps it) with another market section: its own data
    other_doc = {**run.config_doc, "market": market_from_flags("synthetic", None, 7)}
    other = dataclasses.replace(run, config_doc=other_doc)
    assert other.cache_token == run.cache_token
    on_7 = other(p, *a)
    assert on_7 == _plain(market_from_flags("synthetic", None, 7), p, *a, SyntheticSource(7), tmp_path)
    assert on_7.equity != run(p, *a).equity
    # files: a new runner (a new walk-forward) reads the files as they are now
    folder = tmp_path / "data" / "binance"
    folder.mkdir(parents=True)
    candles = SyntheticSource(42).fetch_candles("BTC/USDT", "1h", now_ms=END_MS + 3_600_000, limit=2000)
    rows = np.column_stack([candles.ts_ms, candles.open, candles.high, candles.low, candles.close, candles.volume])
    write_candle_file(folder / "BTC_USDT-1h.csv", rows)
    files = market_from_flags("files", tmp_path / "data")
    config = parse_config(config_from_flags("sma_crossover", ["BTC/USDT"], "1h", 1000.0, files), base_dir=tmp_path)
    first = ConfigRunner(config.model_dump(mode="json"), config.strategies[0].id, str(tmp_path))
    before = first(p, *a)
    assert before == _plain(files, p, *a, FilesSource(tmp_path / "data"), tmp_path)
    rows[:, 1:5] *= np.linspace(1.0, 1.5, len(rows))[:, None]  # another market in the same file
    write_candle_file(folder / "BTC_USDT-1h.csv", rows)
    second = ConfigRunner(first.config_doc, first.strategy_id, first.base_dir)
    after = second(p, *a)
    assert after == _plain(files, p, *a, FilesSource(tmp_path / "data"), tmp_path) and after.equity != before.equity
    walk_runner.clear_cache()
    assert walk_runner.cache_stats() == {"sources": 0, "reads": 0, "hits": 0}


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
