"""No process of ours outlives its deadline or the daemon (hardening items 7 and 13).

Real daemons with real checkers that leave processes behind (tests/fault_checkers/
orphan_spawn.py: a background child and a setsid'd, double-forked grandchild). Survivors
are found by a marker in their argv. Every daemon runs in its own session, so that
killing "the daemon's process group" kills exactly it and what it left in its group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.runner import ForkLauncher, Job, Launcher, SubprocessLauncher, run_jobs
from tests.integration.harness import (
    FAULTS,
    REPO,
    pids_alive,
    spot,
    state_doc,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

TIMEOUT_S = 20.0  # the checkers' timeout in these configs
SLACK_S = 5.0
SLEEP = b"import time; time.sleep(300)"  # what orphan_spawn's leftovers run
LAUNCHERS = {"fork": ForkLauncher, "subprocess": SubprocessLauncher}


def marked(marker: str, sleepers_only: bool = False) -> list[int]:
    """Pids of live processes with ``marker`` in their argv (only the final sleepers, not the
    short-lived process that daemonises one, with ``sleepers_only``)."""
    found = []
    needle = marker.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_sleeper = len(argv) > 2 and argv[2] == SLEEP
        if any(needle in arg for arg in argv) and (is_sleeper or not sleepers_only):  # zombies: no argv
            found.append(int(name))
    return found


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[str]:
    """The marker the fault checkers put in their leftovers' argv. Afterwards, whatever survived
    (the leftovers, and the hung checkers themselves, which record their pids) is killed."""
    value = f"go-trader-orphan-test:{tmp_path}"
    yield value
    pidfile = tmp_path / "orphans.pids"
    checkers = [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []
    for pid in [*marked(value), *checkers]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Daemon:
    """``go-trader --config ...`` in its own session (its pid is its process group)."""

    def __init__(self, config: Path, *args: str) -> None:
        self.out_path = config.parent / "daemon.out"
        with open(self.out_path, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "scheduler", "--config", str(config), *args],
                                         cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, whole_group: bool) -> None:
        if whole_group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def _config(folder: Path, mode: str, script: str) -> Path:
    return write_config(folder, [spot("orphans", script)], runner={"mode": mode, "timeout_s": TIMEOUT_S})


@pytest.mark.parametrize("whole_group", [False, True], ids=["kill-daemon", "kill-daemon-group"])
@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_killed_daemon_leaves_no_hung_checker_or_grandchild(tmp_path, marker, mode, whole_group):
    daemon = Daemon(_config(tmp_path, mode, "check_orphans_hang.py"))
    try:
        wait_for(lambda: len(marked(marker, sleepers_only=True)) == 2, 60, "the hung checker's child and daemonised grandchild")
        daemon.kill(whole_group)
        checker_pids = [int(p) for p in (tmp_path / "orphans.pids").read_text().split()]
        wait_for(lambda: not marked(marker) and not pids_alive(tmp_path / "orphans.pids"),
                 TIMEOUT_S + SLACK_S, "the hung checker and every process it left to die")
    finally:
        daemon.close()
    assert len(checker_pids) == 1 and pids_alive(tmp_path / "orphans.pids") == []
    assert marked(marker) == []


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_successful_checkers_leftovers_die_with_it(tmp_path, marker, mode):
    daemon = Daemon(_config(tmp_path, mode, "check_orphans_hold.py"))
    try:
        wait_for(lambda: (state_doc(tmp_path) or {}).get("cycle_count", 0) >= 1, 60, "the first cycle")
        check = state_doc(tmp_path)["sleeves"]["orphans"]["last_check"]
        # its leftovers held its stdout open: the check still succeeded, well before its timeout
        assert check["ok"] and check.get("error") is None, check
        wait_for(lambda: not marked(marker), SLACK_S, "the checker's leftovers to die")
        assert daemon.proc.poll() is None  # ... while the daemon runs on
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
    finally:
        daemon.close()
    assert marked(marker) == []


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_once_leaves_nothing_behind(tmp_path, marker, mode):
    config = _config(tmp_path, mode, "check_orphans_hold.py")
    result = subprocess.run([sys.executable, "-m", "scheduler", "--config", str(config), "--once"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert marked(marker) == []


# -- stop is honoured whatever the job does (item 13) ------------------------------------------

def _launcher(mode: str) -> Launcher:
    return LAUNCHERS[mode]()


def _stop_later(event: threading.Event, after_s: float) -> threading.Timer:
    timer = threading.Timer(after_s, event.set)
    timer.start()
    return timer


@pytest.mark.parametrize("script", ["check_hang.py", "check_closed_pipes_hang.py"])
@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_stop_kills_a_running_job_after_the_grace_even_with_its_pipes_closed(mode, script):
    launcher = _launcher(mode)
    stop = threading.Event()
    timer = _stop_later(stop, 0.5)
    try:
        job = Job("hang", (), script=FAULTS / script, timeout_s=120)
        result = run_jobs(launcher, [job], max_concurrency=1, stop=stop, grace_s=0.5)[0]
    finally:
        timer.cancel()
        launcher.close()
    assert result.timed_out and result.returncode == -signal.SIGKILL
    assert result.duration_s < 60  # the stop, not the 120 s timeout, ended it


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_jobs_own_stop_event_is_honoured(mode):
    """What the daemon's fetch step needs: a stop event on the Job, with no run_jobs(stop=...)."""
    launcher = _launcher(mode)
    stop = threading.Event()
    timer = _stop_later(stop, 0.5)
    try:
        job = Job("prefetch", (), script=FAULTS / "check_hang.py", timeout_s=120, stop=stop)
        started = time.monotonic()
        result = run_jobs(launcher, [job], max_concurrency=1, grace_s=0.0)[0]
        elapsed_s = time.monotonic() - started
    finally:
        timer.cancel()
        launcher.close()
    assert result.timed_out and elapsed_s < 60


def test_a_set_job_stop_event_cancels_before_start():
    stop = threading.Event()
    stop.set()
    launcher = SubprocessLauncher()
    try:
        result = run_jobs(launcher, [Job("x", (), script=FAULTS / "check_hold.py", stop=stop)])[0]
    finally:
        launcher.close()
    assert result.cancelled and result.returncode is None
