"""The guardian and warm zygote (scheduler.zygote) as the runner uses them: what a forked job
inherits, what a zygote preloads, and that a guardian kept between jobs sleeps instead of polling."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scheduler.runner import ForkLauncher, Job, Launcher, SubprocessLauncher, run_jobs
from scheduler.zygote import _children_by_scan, children_of
from tests.integration.harness import wait_for

LAUNCHERS = {"fork": ForkLauncher, "subprocess": SubprocessLauncher}


def _run_code(launcher: Launcher, code: str, tmp_path: Path) -> str:
    script = tmp_path / "job.py"
    script.write_text(code)
    result = run_jobs(launcher, [Job("job", (), script=script, timeout_s=60)])[0]
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_job_inherits_only_its_three_pipes(mode: str, tmp_path: Path) -> None:
    """No descriptor of the guardian (its control socket, its wakeup pipe) leaks into a job."""
    launcher = LAUNCHERS[mode]()
    try:
        out = _run_code(launcher, "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))",
                        tmp_path)
    finally:
        launcher.close()
    assert eval(out)[:3] == [0, 1, 2] and len(eval(out)) == 4, out  # the 4th: listdir's own


def test_a_zygote_preloads_what_it_is_told(tmp_path: Path) -> None:
    code = "import sys; print(' '.join(str(m in sys.modules) for m in ('numpy', 'urllib.request')))"
    checkers, notify = ForkLauncher(), ForkLauncher(preload=("scheduler.notify.deliver",))
    try:
        assert _run_code(checkers, code, tmp_path) == "True False"
        assert _run_code(notify, code, tmp_path) == "False True"
    finally:
        checkers.close()
        notify.close()


def _voluntary_switches(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc/PID/status")


def _writer(fifo: Path) -> int | None:
    """A write end of ``fifo`` once a reader has it open, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return None


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_guardian_sleeps_while_its_job_runs(mode: str, tmp_path: Path) -> None:
    """The notification service keeps a guardian for the daemon's whole run, with a poll job
    running for minutes: it must wake for events (a request, a child's exit) and the orphan
    sweep's backstop (ORPHAN_SWEEP_S), not every 10 ms. Counted in wakeups, not in time."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = tmp_path / "block.py"
    script.write_text(f"open({str(fifo)!r}).read()")  # runs until the test writes and closes
    launcher = LAUNCHERS[mode]()
    stop = threading.Event()
    job = Job("block", (), script=script, timeout_s=60, stop=stop)
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(run_jobs(launcher, [job], grace_s=0.0)))
    writer: int | None = None
    try:
        runner.start()
        writer = wait_for(lambda: _writer(fifo), 30, "the job to open the fifo")
        guardian = launcher._proc.pid  # type: ignore[attr-defined]
        before = _voluntary_switches(guardian)
        time.sleep(2.0)
        woke = _voluntary_switches(guardian) - before
    finally:
        if writer is not None:
            os.close(writer)
        else:
            stop.set()
        runner.join(60)
        launcher.close()
    assert results and results[0].returncode == 0, results
    assert woke <= 20, f"the guardian woke {woke} times in 2 s while its job ran (polling?)"


def test_children_of_lists_a_processes_children_as_a_scan_of_proc_does() -> None:
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)]
    try:
        me = os.getpid()
        listed = set(children_of(me))
        assert {k.pid for k in kids} <= listed
        assert listed == set(_children_by_scan(me))
    finally:
        for k in kids:
            k.kill()
            k.wait()
    assert not {k.pid for k in kids} & set(children_of(os.getpid()))
