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
