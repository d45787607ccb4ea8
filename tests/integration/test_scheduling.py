"""The daemon in-process with a manual clock: what runs when, and a failed save stops trading."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.clock import ManualClock
from scheduler.daemon import Daemon
from scheduler.engine.errors import StateSaveError
from scheduler.state_store import last_good_path, load_state
from tests.integration.harness import REPO, open_daemon, run_cli, spot, write_config

T0 = datetime(2026, 3, 10, 10, 20, tzinfo=UTC)


def _daemon(config_path: Path, clock: ManualClock) -> Daemon:
    return open_daemon(config_path, clock)


def test_each_strategy_runs_on_its_own_interval_across_restarts(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("fast", interval_seconds=60), spot("slow", interval_seconds=600)],
                          interval_seconds=600)
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    try:
        assert {s.id for s in d.config.strategies if d.is_due(s, clock.now())} == {"fast", "slow"}
        d.run_cycle()
        clock.advance(59)
        assert d.run_cycle() is None  # nothing due a second early
        clock.advance(1)
        report = d.run_cycle()
        assert report is not None and report.checked == 1
        assert d.state.sleeves["fast"].last_run_at == clock.now()
        assert d.state.sleeves["slow"].last_run_at == T0
    finally:
        d.close()
    # A restart 10 minutes on: both are due (none skipped); 5 more minutes: only the fast one.
    clock.advance(600)
    d = _daemon(config, clock)
    try:
        report = d.run_cycle()
        assert report is not None and report.checked == 2
        clock.advance(300)
        assert d.run_cycle().checked == 1
        assert d.next_due_at() == clock.now() + timedelta(seconds=60)
    finally:
        d.close()


def test_a_clock_stepped_back_behind_the_last_runs_runs_them_now_instead_of_stalling(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("fast", interval_seconds=60), spot("slow", interval_seconds=600)],
                          interval_seconds=600)
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    try:
        assert d.run_cycle().checked == 2
        clock._now = T0 - timedelta(hours=5)  # NTP corrects a clock that ran 5 hours ahead
        assert d.next_due_at() == clock.now()
        report = d.run_cycle()
        assert report is not None and report.checked == 2  # both, at once: no 5-hour silence
        assert all(s.last_run_at == clock.now() for s in d.state.sleeves.values())
        assert "the system clock was stepped back" in (tmp_path / "logs" / "scheduler.log").read_text()
        assert d.run_cycle() is None and d.next_due_at() == clock.now() + timedelta(seconds=60)  # on its grid again
        clock._now -= timedelta(seconds=0.5)  # a step back within the slack changes nothing, and never spins
        assert d.run_cycle() is None and d.next_due_at() > clock.now()
    finally:
        d.close()


def test_a_failed_save_stops_trading_loudly_until_a_save_succeeds(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", interval_seconds=60)])
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    try:
        d.run_cycle()  # buys
        saved = (tmp_path / "state.json").read_bytes()
        # Sabotage the save: the last-good copy's name is taken by a folder (root ignores permissions).
        last_good_path(tmp_path / "state.json").unlink()
        last_good_path(tmp_path / "state.json").mkdir()
        clock.advance(60)
        with pytest.raises(StateSaveError):
            d.run_cycle()
        assert d.halted and "trading is stopped" in d.halted
        assert d._health()[0] == 503 and d._health()[1]["status"] == "halted"
        assert json.loads(d.snapshot.status_body)["halted"] == d.halted
        assert (tmp_path / "state.json").read_bytes() == saved  # the file on disk is untouched
        log = (tmp_path / "logs" / "scheduler.log").read_text()
        assert "[CRITICAL] TRADING STOPPED: state could not be saved" in log
        clock.advance(60)
        assert d.run_cycle() is None  # halted: no checks run, the save is retried instead
        assert "TRADING STILL STOPPED" in (tmp_path / "logs" / "scheduler.log").read_text()
        shutil.rmtree(last_good_path(tmp_path / "state.json"))
        clock.advance(60)
        report = d.run_cycle()  # the retried save succeeds (cycle 2 lands), then the due cycle runs
        assert d.halted is None and d._health()[0] == 200
        assert report is not None and report.cycle == 3
        assert load_state(tmp_path / "state.json").cycle_count == 3
        assert "State saved again; trading resumes" in (tmp_path / "logs" / "scheduler.log").read_text()
    finally:
        d.close()


def test_the_demo_config_runs_all_22_strategies(tmp_path: Path) -> None:
    result = run_cli("--config", str(REPO / "config.demo.json"), "--once", "--state-file", str(tmp_path / "s.json"),
                     "--log-dir", str(tmp_path / "logs"))
    assert result.returncode == 0, result.stderr
    state = json.loads((tmp_path / "s.json").read_text())
    assert len(state["sleeves"]) == 22
    assert all(s["last_check"]["ok"] for s in state["sleeves"].values()), [
        (k, s["last_check"]["error"]) for k, s in state["sleeves"].items() if not s["last_check"]["ok"]]
    assert "| 22 strategies checked |" in result.stdout
    status = run_cli("status", "--config", str(REPO / "config.demo.json"), "--state-file", str(tmp_path / "s.json"))
    doc = json.loads(status.stdout)
    assert doc["cycle_count"] == 1 and doc["synthetic_market"] is True and len(doc["strategies"]) == 22
    assert doc["total_value_usd"] == pytest.approx(14 * 1000 + 8 * 5000, rel=0.05)


def test_list_strategies_names_every_strategy_with_defaults() -> None:
    result = run_cli("list-strategies")
    assert result.returncode == 0
    for name, defaults in (("sma_crossover", "fast=20, slow=50"), ("rsi_macd_combo", "oversold=35, overbought=65"),
                           ("edge70", "long_lookback=59, short_lookback=21")):
        assert any(line.startswith(name) and defaults in line for line in result.stdout.splitlines())
    for name, defaults in (("momentum_options", "threshold_pct=5.0, trigger=cross"),
                           ("wheel", "put_moneyness=0.94, put_dte_days=37.0"), ("butterfly", "min_rank=30.0")):
        assert any(line.startswith(name) and defaults in line for line in result.stdout.splitlines()), name


def test_systemd_unit() -> None:
    unit: dict[str, list[str]] = {}
    for line in (REPO / "systemd" / "go-trader.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            unit.setdefault(key.strip(), []).append(value.strip())
    expect = {"Type": "notify", "Restart": "always", "User": "go-trader", "StateDirectory": "go-trader",
              "LogsDirectory": "go-trader", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
              "ProtectHome": "yes", "PrivateTmp": "yes"}
    for key, value in expect.items():
        assert unit.get(key) == [value], key
    assert int(unit["WatchdogSec"][0]) > 0
    exec_start = unit["ExecStart"][0].split()
    assert exec_start[0].endswith("/go-trader") and "--config" in exec_start
    assert exec_start[exec_start.index("--state-file") + 1].startswith("/var/lib/go-trader/")
    assert exec_start[exec_start.index("--log-dir") + 1] == "/var/log/go-trader"
