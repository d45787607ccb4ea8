"""A start that cannot go ahead says why, exits 1 and writes nothing; it never disturbs a
daemon that is already running."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.integration.harness import (
    DaemonProcess,
    run_cli,
    spot,
    state_doc,
    wait_for,
    write_config,
)


def test_a_port_in_use_refuses_the_start_before_any_file_is_written(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, [spot("alpha")], status={"host": "127.0.0.1", "port": port})
        result = run_cli("--config", str(config), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot serve /status on 127.0.0.1:{port}" in result.stderr
    assert "set status.port" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_second_daemon_is_refused_and_leaves_the_first_ones_endpoint(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha")])  # port 0: both could bind
    with DaemonProcess(config):
        wait_for(lambda: (state_doc(tmp_path) or {}).get("cycle_count", 0) >= 1, what="the first cycle")
        endpoint = tmp_path / "state.json.endpoint"
        wait_for(endpoint.exists, what="the endpoint file")
        before = endpoint.read_text()
        result = run_cli("--config", str(config), timeout=60)
        assert result.returncode == 1 and "another go-trader (pid" in result.stderr
        assert "Traceback" not in result.stderr
        assert endpoint.read_text() == before


def test_a_start_refused_after_the_logs_opened_leaves_no_file_open(tmp_path: Path) -> None:
    import os

    import pytest

    from scheduler.clock import SystemClock
    from scheduler.config import load_config
    from scheduler.daemon import Daemon
    from scheduler.engine.errors import StateError

    def open_logs() -> list[str]:
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(tmp_path / "logs")):
                out.append(target)
        return out

    config = write_config(tmp_path, [spot("alpha")])
    d = Daemon(load_config(config), config, clock=SystemClock(), state_path=tmp_path / "state.json",
               log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    d.close()
    # the same id, now an options strategy: refused once the logs are open (the state says spot)
    doc = config.read_text().replace('"type": "spot"', '"type": "options"').replace(
        '"args": [\n    "sma_crossover",\n    "BTC/USDT",\n    "1h"\n   ]', '"args": ["wheel", "BTC"]')
    config.write_text(doc)
    d = Daemon(load_config(config), config, clock=SystemClock(), state_path=tmp_path / "state.json",
               log_dir=tmp_path / "logs", stdout_logs=False)
    with pytest.raises(StateError, match="give the new strategy a new id"):
        d.open()
    assert open_logs() == []


def test_a_strategy_removed_while_it_holds_a_position_refuses_the_start(tmp_path: Path) -> None:
    """Its sleeve would be kept but not run: nothing would mark or close the position, and the
    account and /status would leave it out. Once its sleeve is flat, removing it is fine."""
    both = [spot("alpha", "check_hold.py"), spot("beta")]  # beta buys at once
    config = write_config(tmp_path, both)
    assert run_cli("--config", str(config), "--once").returncode == 0
    assert state_doc(tmp_path)["sleeves"]["beta"]["positions"], "beta must hold a position for this test"
    write_config(tmp_path, both[:1])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "state.json.lock"}
    refused = run_cli("--config", str(config), "--once")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "removed from the config still hold open positions (beta:" in refused.stderr
    assert "BTC/USDT" in refused.stderr and "Put beta back in the config" in refused.stderr
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "state.json.lock"}
    assert after == before

    write_config(tmp_path, both)  # put back, closed by hand, removed again
    closed = run_cli("trade", "--config", str(config), "--strategy", "beta", "close")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert not state_doc(tmp_path)["sleeves"]["beta"]["positions"]
    write_config(tmp_path, both[:1])
    assert run_cli("--config", str(config), "--once").returncode == 0
