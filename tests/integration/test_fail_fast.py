"""Failing loudly and fast: SIGTERM is honoured during the fetch step, and a cycle in which
every check failed turns /health to degraded."""

from __future__ import annotations

import json
import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.clock import ManualClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from tests.integration.harness import REPO, DaemonProcess, spot, write_config


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for c in self._held:
            c.close()


def test_sigterm_during_a_hanging_fetch_step_stops_the_daemon_promptly(tmp_path: Path) -> None:
    hole = BlackHole()
    try:
        config = write_config(tmp_path, [spot("alpha", "check_strategy.py")])
        doc = json.loads(config.read_text())
        doc["market"] = {"source": "ccxt", "base_url": f"http://127.0.0.1:{hole.port}",
                         "timeout_s": 60, "retry_budget_s": 120}
        doc["checkers_dir"] = str(REPO / "checkers")
        config.write_text(json.dumps(doc))
        with DaemonProcess(config) as d:
            assert hole.accepted.wait(60), f"the fetch step never reached the exchange: {d.output}"
            d.signal(signal.SIGTERM)
            # the fetch step would wait 60 s per request and retry for 120 s: a stop must not wait for it
            code = d.wait(timeout=20)
            assert code == 0, d.output
            assert "abandoned: stop requested during the fetch step" in d.output
            assert "Fetch step failed" not in d.output and "[ERROR]" not in d.output  # a stop is no fault
    finally:
        hole.close()


@pytest.mark.parametrize("scripts,failed,code", [
    (("check_crash.py", "check_garbage.py"), ["a", "b"], 503),  # every check failed: degraded
    (("check_crash.py", "check_hold.py"), ["a"], 200),  # one still works: ok
])
def test_health_is_degraded_only_when_every_check_of_a_cycle_failed(
        tmp_path: Path, scripts: tuple[str, str], failed: list[str], code: int) -> None:
    config_path = write_config(tmp_path, [spot("a", scripts[0]), spot("b", scripts[1])])
    d = Daemon(load_config(config_path), config_path, clock=ManualClock(datetime(2026, 3, 1, tzinfo=UTC)),
               state_path=tmp_path / "state.json", log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    try:
        report = d.run_cycle(force=True)
        assert report is not None and report.failed_ids == failed
        status, body = d._health()
        assert status == code
        if code == 503:
            assert body["status"] == "degraded" and "every check of cycle 1 failed (2 of 2)" in body["reason"]
    finally:
        d.close()


def test_an_account_block_tripping_in_a_cycle_is_reported_not_a_crash(tmp_path: Path) -> None:
    """A DAILY_LOSS block is an account-scope event: describing the cycle's outcomes must not
    look it up as a strategy (it did, and the cycle died with a KeyError)."""
    config_path = write_config(tmp_path, [spot("a", "check_hold.py")])
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    d = Daemon(load_config(config_path), config_path, clock=clock, state_path=tmp_path / "state.json",
               log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    try:
        d.run_cycle(force=True)
        d.state.account.day_start_equity_usd = 2000.0  # equity 1000 is now 50 % below the day's start
        clock.advance(3600)
        report = d.run_cycle(force=True)
        assert report is not None
        assert "DAILY_LOSS" in d.state.account.blocks
        assert any(e.kind == "block" and e.data["code"] == "DAILY_LOSS" for e in report.events)
    finally:
        d.close()


def test_a_bug_in_a_cycle_degrades_the_daemon_instead_of_crashing_it(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, [spot("a", "check_hold.py", interval_seconds=60)])
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))

    class Buggy(Daemon):
        def _describe_outcomes(self, state, events):  # type: ignore[no-untyped-def]
            raise ZeroDivisionError("a bug")

    d = Buggy(load_config(config_path), config_path, clock=clock, state_path=tmp_path / "state.json",
              log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    try:
        import threading

        stop = threading.Event()
        d._run_guarded(stop)
        code, body = d._health()
        assert code == 503 and body["status"] == "degraded" and "ZeroDivisionError" in body["reason"]
        assert d.state.cycle_count == 0  # nothing of the failed cycle was committed
        log = (tmp_path / "logs" / "scheduler.log").read_text()
        assert "INTERNAL ERROR in a cycle (ZeroDivisionError: a bug)" in log and "Traceback" in log
        assert len([ln for ln in log.splitlines() if "INTERNAL ERROR" in ln]) == 1  # one line, not a forged many
    finally:
        d.close()
