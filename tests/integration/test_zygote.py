"""The guardian and warm zygote (scheduler.zygote) as the runner uses them: what a forked job
inherits, what a zygote preloads, and that a guardian kept between jobs sleeps instead of polling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


def _voluntary_switches(path: str) -> int:
    with open(f"{path}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in {path}/status")


def _writer(fifo: Path) -> int | None:
    """A write end of ``fifo`` once a reader has it open, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return None


def _wakeups_while_a_job_waits(mode: str, tmp_path: Path, seconds: float, **job: Any) -> tuple[int, int]:
    """How often (the guardian, the runner's thread for the job) woke while a job sat silent for
    ``seconds``: counted in wakeups (voluntary context switches), not in time."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = tmp_path / "block.py"
    script.write_text(f"open({str(fifo)!r}).read()")  # runs until the test writes and closes
    launcher = LAUNCHERS[mode]()
    stop = threading.Event()
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(
        run_jobs(launcher, [Job("block", (), script=script, timeout_s=60, stop=stop, **job)], grace_s=0.0)))
    writer: int | None = None
    try:
        runner.start()
        writer = wait_for(lambda: _writer(fifo), 30, "the job to open the fifo")
        [worker] = [t.native_id for t in threading.enumerate() if t.name.startswith("checker")]
        watched = [f"/proc/{launcher._proc.pid}", f"/proc/self/task/{worker}"]  # type: ignore[attr-defined]
        before = [_voluntary_switches(p) for p in watched]
        time.sleep(seconds)
        guardian, thread = (_voluntary_switches(p) - b for p, b in zip(watched, before, strict=True))
    finally:
        if writer is not None:
            os.close(writer)
        else:
            stop.set()
        runner.join(60)
        launcher.close()
    assert results and results[0].returncode == 0, results
    return guardian, thread


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_a_guardian_sleeps_while_its_job_runs(mode: str, tmp_path: Path) -> None:
    """The notification service keeps a guardian for the daemon's whole run, with a poll job
    running for minutes: it must wake for events (a request, a child's exit) and the orphan
    sweep's backstop (ORPHAN_SWEEP_S, 0.5 s), not every 10 ms."""
    guardian, _ = _wakeups_while_a_job_waits(mode, tmp_path, 2.0)
    assert guardian <= 20, f"the guardian woke {guardian} times in 2 s while its job ran (polling?)"


def test_a_job_with_a_slower_stop_check_wakes_its_runner_thread_less(tmp_path: Path) -> None:
    """The notification poll job (minutes long, stop_check_s 1): its thread in the daemon wakes
    about once a second, not ten times."""
    _, thread = _wakeups_while_a_job_waits("fork", tmp_path, 3.0, stop_check_s=1.0)
    assert thread <= 10, f"the runner's thread woke {thread} times in 3 s"


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


@pytest.mark.parametrize("preloaded", [True, False])
def test_a_preloaded_job_modules_main_is_called_not_its_body_run_again(preloaded: bool) -> None:
    """As ``python -m``: argv, stdin and main()'s return value as the exit code; a module the zygote
    preloaded is not executed a second time (nor warned about), one it did not is run by runpy."""
    module = "tests.fault_checkers.preloaded_main"
    launcher = ForkLauncher(preload=(module,) if preloaded else ("json",))
    try:
        result = run_jobs(launcher, [Job("m", ("a", "b"), module=module, stdin=b"in", timeout_s=60)])[0]
    finally:
        launcher.close()
    assert result.returncode == 3 and result.stderr == b"", result.stderr.decode()
    out = json.loads(result.stdout)
    assert out["argv"] == ["a", "b"] and out["stdin"] == "in"
    assert out["body_runs"] == [module if preloaded else "__main__"]
