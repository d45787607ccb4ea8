"""Unwritable folders and refused states: a clear refusal at start (exit 1, nothing written,
no traceback); while running, a halt that retries with backoff, never a crash or a spin."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.clock import ManualClock
from scheduler.daemon import RETRY_MAX_S, Daemon
from scheduler.logs import Logs
from tests.integration.harness import open_daemon, run_cli, spot, write_config

T0 = datetime(2026, 3, 10, 10, 20, tzinfo=UTC)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for this process: a read-only bind mount as root (root ignores modes),
    mode 0555 otherwise."""
    if os.geteuid() == 0:
        try:
            subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            pytest.skip(f"cannot make a read-only bind mount here ({e}); as root, modes do not stop writes")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def test_a_read_only_state_folder_is_refused_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha")], state_file="state/state.json", log_dir="logs")
    (tmp_path / "state").mkdir()
    before = listing(tmp_path)
    with read_only(tmp_path / "state"):
        result = run_cli("--config", str(config), "--once")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "the state folder" in result.stderr and "is not writable" in result.stderr
    assert listing(tmp_path) == before  # nothing half-written: no logs, no state


def test_a_read_only_log_folder_is_refused_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha")])
    (tmp_path / "logs").mkdir()
    before = listing(tmp_path)
    with read_only(tmp_path / "logs"):
        result = run_cli("--config", str(config), "--once")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "the log folder" in result.stderr and "is not writable" in result.stderr
    assert listing(tmp_path) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder another user's")
def test_a_foreign_owned_state_folder_is_refused_for_an_unprivileged_user() -> None:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="go-trader-foreign-", dir="/tmp"))  # pytest's tmp is 0700
    try:
        folder.chmod(0o755)
        config = write_config(folder, [spot("alpha")], state_file="state/state.json")
        (folder / "state").mkdir(mode=0o755)  # root's; the daemon below runs as nobody
        logs = folder / "logs"
        logs.mkdir()
        os.chown(logs, 65534, 65534)
        os.chown(config, 65534, 65534)
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *run_cli_argv(
            "--config", str(config), "--once")], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and "is not writable" in result.stderr
        assert list((folder / "state").iterdir()) == [] and list(logs.iterdir()) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_cli_argv(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "scheduler", *args]


def test_a_state_behind_the_trade_log_is_refused_at_start_and_the_log_kept(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha")])
    assert run_cli("--config", str(config), "--once").returncode == 0  # check_alternate buys: fill 1
    log = tmp_path / "state.trades.jsonl"
    assert len(log.read_text().splitlines()) == 1
    (tmp_path / "state.json").write_text("{}")
    kept = log.read_bytes()
    result = run_cli("--config", str(config), "--once")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "schema_version" in result.stderr
    doc = json.loads((tmp_path / "state.json.last-good").read_text())
    doc["next_trade_seq"] = 1
    doc["sleeves"]["alpha"]["trades"] = []
    (tmp_path / "state.json").write_text(json.dumps(doc))
    result = run_cli("--config", str(config), "--once")
    assert result.returncode == 1, result.stderr
    assert "is behind the trade log" in result.stderr and "Traceback" not in result.stderr
    assert log.read_bytes() == kept


def _daemon(config_path: Path, clock: ManualClock) -> Daemon:
    return open_daemon(config_path, clock, config_path.parent / "state" / "state.json")


def test_a_state_folder_turning_read_only_halts_without_crash_or_spin(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", interval_seconds=60)])
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    stop = threading.Event()
    sleeps: list[float] = []
    real_sleep = clock.sleep

    def counting_sleep(seconds: float, wake: threading.Event) -> bool:
        sleeps.append(seconds)
        if (clock.now() - T0).total_seconds() > 1800:
            stop.set()
        return real_sleep(seconds, wake)

    clock.sleep = counting_sleep  # type: ignore[method-assign]
    try:
        d.run_cycle()
        with read_only(tmp_path / "state"):
            clock.advance(60)
            loop = threading.Thread(target=d.serve_forever, args=(stop,), daemon=True)
            loop.start()
            deadline = time.monotonic() + 60
            while loop.is_alive() and time.monotonic() < deadline:
                loop.join(0.2)
                if not stop.is_set() and d._health()[0] == 503:
                    status, body = d._health()
                    assert body["status"] in ("halted", "degraded")
            stop.set()
            loop.join(10)
            assert not loop.is_alive(), "the loop did not stop"
            assert d.halted or d.fault
        log = (tmp_path / "logs" / "scheduler.log").read_text()
        failures = log.count("STILL STOPPED") + log.count("CYCLE FAILED") + log.count("repeated")
        # 30 simulated minutes with retries at 1, 2, 4, ... s capped at RETRY_MAX_S: a few dozen at most
        assert failures < 30 + 1800 / RETRY_MAX_S, failures
        assert len(log.splitlines()) < 100
        assert max(sleeps) <= max(RETRY_MAX_S, 5.0) + 1e-9
    finally:
        d.close()


def test_repeated_log_lines_are_collapsed(tmp_path: Path) -> None:
    logs = Logs(tmp_path, 1_000_000, 1, stdout=False)
    try:
        for _ in range(500):
            logs.scheduler.critical("TRADING STILL STOPPED: disk full")
        logs.scheduler.info("something else")
    finally:
        logs.close()
    lines = (tmp_path / "scheduler.log").read_text().splitlines()
    assert len(lines) == 3, lines
    assert "(repeated 499 times) TRADING STILL STOPPED: disk full" in lines[1]
    assert lines[2].endswith("something else")


def test_log_errors_never_raise_or_flood_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    logs = Logs(tmp_path, 1_000_000, 1, stdout=False)
    try:
        for h in logs.scheduler.handlers:
            h.stream.close()  # type: ignore[attr-defined]  # every write now fails
        for i in range(200):
            logs.scheduler.error(f"line {i}")
    finally:
        logs.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count("cannot write log") == 1


def test_log_files_are_private_and_lines_cannot_be_forged(tmp_path: Path) -> None:
    logs = Logs(tmp_path, 1_000_000, 1, stdout=False)
    try:
        logs.strategy("alpha").warning("reset by mallory\n[2026-01-01 00:00:00] [alpha] [INFO] forged")
    finally:
        logs.close()
    assert (tmp_path / "alpha.log").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "scheduler.log").stat().st_mode & 0o777 == 0o600
    lines = (tmp_path / "alpha.log").read_text().splitlines()
    assert len(lines) == 1 and "mallory\\n[2026" in lines[0]


def test_a_failed_trade_log_append_never_leaves_a_hole(tmp_path: Path) -> None:
    """While the trade log cannot be appended, no new trade is made; once it can, every missing
    fill is appended in order, and the next start accepts the log."""
    config = write_config(tmp_path, [spot("alpha", interval_seconds=60)])
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    log = tmp_path / "state" / "state.trades.jsonl"
    try:
        d.run_cycle()  # buys: fill 1
        kept = log.read_bytes()
        log.unlink()
        log.mkdir()  # appends now fail (root ignores modes; a folder in the way does not)
        out = d.execute("trade", {"strategy": "alpha", "action": "close"}, "test")  # fill 2: saved, append fails
        assert out["ok"] is True and d.state.next_trade_seq == 3
        clock.advance(60)
        assert d.run_cycle() is None and d._health()[0] == 503  # no trading while the log is behind
        log.rmdir()
        log.write_bytes(kept)
        clock.advance(60)
        assert d.run_cycle() is not None
    finally:
        d.close()
    from scheduler.state_store import read_trade_log

    seqs = [t.seq for t in read_trade_log(tmp_path / "state" / "state.json")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 2
    d2 = _daemon(config, clock)  # the next start accepts it
    d2.close()
