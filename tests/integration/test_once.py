"""A real ``go-trader --once`` in a temp folder: state, logs, events, and every fault checker."""

from __future__ import annotations

import json
import stat

import pytest

from tests.integration.harness import REPO, pids_alive, run_cli, spot, write_config

FAULTS = {
    "hang": ("transient", "timed out after"),
    "crash": ("permanent", "checker blew up on purpose"),
    "garbage": ("permanent", "output is not JSON"),
    "nan": ("permanent", "non-finite number NaN"),
    "big": ("permanent", "printed more than 1048576 bytes"),
    "error_field": ("transient", "exchange said no"),
    "two_docs": ("permanent", "more than one JSON document"),
    "zero_price": ("permanent", "must be a finite number > 0"),
}


@pytest.fixture(scope="module")
def once_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("once")
    strategies = [spot("good")] + [spot(name, f"check_{name}.py") for name in FAULTS]
    config = write_config(folder, strategies, runner={"timeout_s": 2})
    result = run_cli("--config", str(config), "--once", env={"HANG_PIDFILE": str(folder / "hang.pids")})
    return folder, result


def test_once_exits_non_zero_naming_the_failed_checks_and_saves_state(once_run):
    folder, result = once_run
    assert result.returncode == 1, result.stderr
    assert f"8 of 9 checks failed: {', '.join(FAULTS)}" in result.stderr
    state = json.loads((folder / "state.json").read_text())
    assert state["cycle_count"] == 1
    assert stat.S_IMODE((folder / "state.json").stat().st_mode) == 0o600
    good = state["sleeves"]["good"]
    assert good["trade_count"] == 1 and list(good["positions"]) == ["BTC/USDT"]
    assert good["cash_usd"] < 1000 * 0.06  # 95 % of the sleeve went into the position


def test_once_prints_the_cycle_summary(once_run):
    _, result = once_run
    summary = [line for line in result.stdout.splitlines() if "Cycle 1 complete" in line]
    assert len(summary) == 1
    assert "| 9 strategies checked | 1 trades | Total value: $" in summary[0]
    assert f"| 8 failed: {', '.join(FAULTS)}" in summary[0]


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_every_fault_means_no_trade_and_a_logged_reason(once_run, name):
    folder, _ = once_run
    error_class, words = FAULTS[name]
    sleeve = json.loads((folder / "state.json").read_text())["sleeves"][name]
    assert sleeve["trade_count"] == 0 and sleeve["positions"] == {} and sleeve["cash_usd"] == 1000
    assert sleeve["last_check"]["ok"] is False
    assert sleeve["last_check"]["error_class"] == error_class
    assert words in sleeve["last_check"]["error"]
    log = (folder / "logs" / f"{name}.log").read_text()
    assert f"[{name}] [ERROR] Check failed ({error_class}):" in log and words in log


def test_human_and_json_logs(once_run):
    folder, _ = once_run
    good = (folder / "logs" / "good.log").read_text()
    assert "[good] [INFO] Signal: BUY | BTC/USDT @ $" in good
    assert "BUY " in good and "fee $" in good
    events = [json.loads(line) for line in (folder / "logs" / "events.jsonl").read_text().splitlines()]
    start_up = [e for e in events if e["kind"] == "reconcile"]
    assert len(start_up) == 1 and start_up[0]["cycle"] == 0 and start_up[0]["ok"] is True
    assert all(e["cycle"] == 1 for e in events if e["kind"] != "reconcile")
    kinds = {(e["kind"], e["strategy"]) for e in events}
    assert ("fill", "good") in kinds and ("signal", "good") in kinds and ("cycle", None) in kinds
    assert {("check_failed", n) for n in FAULTS} <= kinds
    trades = (folder / "state.trades.jsonl").read_text().splitlines()
    assert len(trades) == 1 and json.loads(trades[0])["seq"] == 1


def test_no_checker_process_survives(once_run):
    folder, _ = once_run
    assert len((folder / "hang.pids").read_text().split()) == 2  # the checker and the child it forked ran
    assert pids_alive(folder / "hang.pids") == []  # and the timeout killed both


def test_bad_config_exits_2_and_writes_nothing(tmp_path):
    config = write_config(tmp_path, [spot("a", capital=-1), spot("a")], interval_seconds=0)
    result = run_cli("--config", str(config), "--once")
    assert result.returncode == 2
    assert "strategies[0].capital" in result.stderr and "duplicate id 'a'" in result.stderr
    assert "interval_seconds" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_validate_config_command(tmp_path):
    ok = run_cli("validate-config", "--config", str(REPO / "config.demo.json"))
    assert ok.returncode == 0 and "OK (14 spot and 8 options strategies" in ok.stdout
    bad = tmp_path / "c.json"
    bad.write_text('{"strategies": [}')
    result = run_cli("validate-config", "--config", str(bad))
    assert result.returncode == 2 and "not valid JSON" in result.stderr
