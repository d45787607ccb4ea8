"""A real daemon as a subprocess: /status and /health over HTTP, SIGTERM, restart,
one writer per state file, systemd's notify protocol, and shutdown mid-check."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from scheduler.state_store import load_state
from tests.integration.harness import (
    DaemonProcess,
    pids_alive,
    raw_request,
    run_cli,
    spot,
    state_doc,
    wait_for,
    write_config,
)


def _cycles(folder) -> int:
    doc = state_doc(folder)
    return doc["cycle_count"] if doc else 0


def test_status_health_sigterm_and_restart(tmp_path):
    config = write_config(tmp_path, [spot("alpha"), spot("beta", "check_crash.py")])
    with DaemonProcess(config) as d:
        wait_for(lambda: _cycles(tmp_path) >= 1, what="the first cycle")
        # the snapshot is published just after the save: wait for it, not only for state.json
        wait_for(lambda: d.get("/status")[1].get("cycle_count", 0) >= 1, what="the first cycle on /status")
        code, status = d.get("/status")
        assert code == 200 and status["cycle_count"] == 1 and status["synthetic_market"] is True
        by_id = {s["id"]: s for s in status["strategies"]}
        alpha = by_id["alpha"]
        assert alpha["trade_count"] == 1 and alpha["positions"][0]["symbol"] == "BTC/USDT"
        assert alpha["portfolio_value_usd"] == pytest.approx(alpha["cash_usd"] + alpha["positions"][0]["value_usd"])
        assert by_id["beta"]["last_check"]["error_class"] == "permanent"
        assert d.get("/health") == (200, {"status": "ok"})
        # the daemon process never loads OpenSSL (scheduler.memory.keep_openssl_out: ~5 MB of its
        # idle budget); its checkers and the fetch step run in processes of their own
        maps = Path(f"/proc/{d.proc.pid}/maps").read_text()
        assert "libcrypto" not in maps and "libssl" not in maps

        # malformed or unknown requests get 4xx, and the server keeps serving
        assert d.get("/nope")[0] == 404
        conn = http.client.HTTPConnection("127.0.0.1", d.port(), timeout=10)
        conn.request("POST", "/status", body=b"x")
        assert conn.getresponse().status == 405
        conn.close()
        assert raw_request(d.port(), b"BLAH\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert raw_request(d.port(), b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")[:12] in (b"HTTP/1.1 414", b"HTTP/1.0 414")
        assert raw_request(d.port(), b"\x00\xff\xfe garbage\r\n\r\n")[:12].split()[1] == b"400"
        assert d.get("/status")[0] == 200

        saved = load_state(tmp_path / "state.json")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
        assert "go-trader stopped; state saved" in d.output

    # restart: same portfolios, and nothing re-runs before its interval is up
    with DaemonProcess(config) as d2:
        code, status = d2.get("/status")
        assert code == 200
        time.sleep(2.0)
        assert _cycles(tmp_path) == 1
        alpha = {s["id"]: s for s in d2.get("/status")[1]["strategies"]}["alpha"]
        assert alpha["cash_usd"] == saved.sleeves["alpha"].cash_usd
        assert alpha["positions"][0]["quantity"] == saved.sleeves["alpha"].positions["BTC/USDT"].quantity
        assert alpha["last_run_at"] is not None
        d2.signal(signal.SIGINT)
        assert d2.wait(30) == 0
    assert load_state(tmp_path / "state.json") == saved.model_copy(update={})  # nothing changed on disk


def test_second_daemon_on_the_same_state_refuses(tmp_path):
    config = write_config(tmp_path, [spot("alpha")])
    with DaemonProcess(config) as d:
        wait_for(lambda: _cycles(tmp_path) >= 1, what="the first cycle")
        second = run_cli("--config", str(config), "--once")
        assert second.returncode == 1
        assert f"another go-trader (pid {d.proc.pid})" in second.stderr
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


def test_status_never_waits_for_a_running_cycle(tmp_path):
    config = write_config(tmp_path, [spot("alpha"), spot("slow", "check_hang.py")],
                          runner={"timeout_s": 60, "shutdown_grace_s": 1})
    pidfile = tmp_path / "hang.pids"
    with DaemonProcess(config, {"HANG_PIDFILE": str(pidfile)}) as d:
        port = d.port()
        wait_for(lambda: len(pids_alive(pidfile)) == 2, what="the hanging checker and its child")
        started = time.monotonic()
        code, status = d.get("/status")
        assert code == 200 and status["cycle_count"] == 0  # the cycle is still running
        assert time.monotonic() - started < 30  # answered long before the 60 s check could finish
        # SIGTERM mid-check: running checks get the grace period, then their group is killed
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
        assert port
    state = state_doc(tmp_path)
    assert state["cycle_count"] == 1
    assert state["sleeves"]["slow"]["last_check"]["error_class"] == "transient"
    assert pids_alive(pidfile) == []


def test_non_loopback_bind_needs_a_token(tmp_path):
    config = write_config(tmp_path, [spot("alpha")], status={"host": "0.0.0.0", "port": 0})
    env = {k: v for k, v in os.environ.items() if k != "GO_TRADER_STATUS_TOKEN"}
    result = run_cli("--config", str(config), env=env, timeout=60)
    assert result.returncode == 2 and "GO_TRADER_STATUS_TOKEN" in result.stderr


def test_bearer_token_is_checked_when_set(tmp_path):
    config = write_config(tmp_path, [spot("alpha")])
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": "s3cret"}) as d:
        assert d.get("/status")[0] == 401
        assert d.get("/status", token="wrong")[0] == 401
        assert d.get("/status", token="s3cret")[0] == 200
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


def test_sd_notify_ready_watchdog_stopping(tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    config = write_config(tmp_path, [spot("alpha")])
    try:
        with DaemonProcess(config, {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}) as d:
            messages: list[str] = []
            while not any("READY=1" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            while sum("WATCHDOG=1" in m for m in messages) < 3:
                messages.append(sock.recv(4096).decode())
            d.signal(signal.SIGTERM)
            while not any("STOPPING=1" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            assert d.wait(30) == 0
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=" in ready
        assert messages.index(ready) < max(i for i, m in enumerate(messages) if "WATCHDOG=1" in m)
    finally:
        sock.close()


def test_health_reports_a_stale_loop(tmp_path):
    """/health turns 503 with a reason when no cycle ran for 3 intervals (a hung checker here)."""
    config = write_config(tmp_path, [spot("slow", "check_hang.py", interval_seconds=1)], interval_seconds=1,
                          runner={"timeout_s": 30, "shutdown_grace_s": 0})
    with DaemonProcess(config) as d:
        d.port()
        code, doc = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(d.get("/health")), timeout=20,
                             what="/health to report the stale loop")
        assert doc["status"] == "stale" and "no cycle for" in doc["reason"]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


def test_checks_not_started_before_a_sigterm_are_not_failures(tmp_path):
    """One check at a time: the second never starts when SIGTERM ends the first. It is not a
    failed check: its last check and run time are left as they were, and it runs at the next start."""
    config = write_config(tmp_path, [spot("slow", "check_hang.py"), spot("later")],
                          runner={"timeout_s": 60, "shutdown_grace_s": 1, "max_concurrency": 1})
    pidfile = tmp_path / "hang.pids"
    with DaemonProcess(config, {"HANG_PIDFILE": str(pidfile)}) as d:
        wait_for(lambda: len(pids_alive(pidfile)) == 2, what="the hanging checker and its child")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    state = state_doc(tmp_path)
    assert state["sleeves"]["slow"]["last_check"]["ok"] is False
    assert state["sleeves"]["later"]["last_check"] is None and state["sleeves"]["later"]["last_run_at"] is None
    log = (tmp_path / "logs" / "scheduler.log").read_text()
    assert "| 1 strategies checked |" in log and "| 1 failed: slow | 1 not run (shutting down)" in log, log
