"""Faults of the notification jobs' warm zygote (scheduler.zygote --preload scheduler.notify.deliver)
and of the guardian it is: killed while the daemon runs, unable to start, import or fork; SIGCHLD
bursts; double-forked leftovers while the guardian is kept between jobs; descriptors over many jobs;
stopped (SIGSTOP) between jobs.

Faults inside the zygote come from tests/fault_checkers/zygote_faults/sitecustomize.py (on
PYTHONPATH; a flag file turns each one on and off while the daemon runs)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from scheduler.notify.service import JOB_PRELOAD
from scheduler.runner import ForkLauncher, Job, _run_one, _Running, run_jobs
from scheduler.state_store import load_state, read_trade_log
from scheduler.zygote import children_of
from tests.fake_telegram import TOKEN, FakeTelegram, Fault
from tests.integration.harness import REPO, DaemonProcess, spot, wait_for, write_config

CHAT = 42
FAULTS = REPO / "tests" / "fault_checkers" / "zygote_faults"


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as f:
        yield f


def _env(fault_dir: Path) -> dict[str, str]:
    return {"ALTERNATE_PERIOD_S": "1", "GO_TRADER_TELEGRAM_TOKEN": TOKEN, "ZYGOTE_FAULT_DIR": str(fault_dir),
            "PYTHONPATH": os.pathsep.join([str(FAULTS), str(REPO), os.environ.get("PYTHONPATH", "")])}


def _config(tmp_path: Path, fake: FakeTelegram, interval_s: int = 1) -> Path:
    return write_config(tmp_path, [spot("s1", interval_seconds=interval_s)], interval_seconds=interval_s,
                        notifications={"telegram": {"chat_ids": [CHAT], "api_base": fake.url, "chat_interval_s": 0.05},
                                       "summary_interval_hours": 0, "timeout_s": 10},
                        runner={"timeout_s": 10})


def _notify_zygotes(daemon_pid: int) -> list[int]:
    found = []
    for pid in children_of(daemon_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"scheduler.zygote" in argv and b"scheduler.notify.deliver" in argv and state != "Z":
            found.append(pid)
    return found


def _cycle_texts(fake: FakeTelegram) -> list[str]:
    return [t for t in fake.texts(CHAT) if t.startswith("go-trader cycle ")]


def _stop_and_check_each_fill_told_once(d: DaemonProcess, tmp_path: Path, fake: FakeTelegram) -> str:
    """Stop the daemon with nothing left to send; every filled cycle was told exactly once."""
    wait_for(lambda: not [m for m in load_state(tmp_path / "state.json").outbox if m.kind == "cycle"], 90,
             "an empty outbox")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0, d.output
    cycles = Counter(int(t.split()[2].rstrip(":")) for t in _cycle_texts(fake))
    filled = {t.cycle for t in read_trade_log(tmp_path / "state.json")}
    assert set(cycles) == filled and set(cycles.values()) == {1}, (cycles, filled)
    return (tmp_path / "logs" / "scheduler.log").read_text()


@pytest.mark.slow
def test_a_killed_notify_zygote_is_replaced_and_nothing_is_lost_or_sent_twice(tmp_path: Path,
                                                                             fake: FakeTelegram) -> None:
    with DaemonProcess(_config(tmp_path, fake), _env(tmp_path)) as d:
        d.port()
        wait_for(lambda: len(_cycle_texts(fake)) >= 2, 60, "first deliveries")
        [first] = wait_for(lambda: _notify_zygotes(d.proc.pid), 30, "the notify zygote")
        os.kill(first, signal.SIGKILL)  # between jobs (a delivery takes milliseconds of each second)
        told = len(_cycle_texts(fake))
        wait_for(lambda: len(_cycle_texts(fake)) >= told + 2, 60, "deliveries after the kill")
        [second] = wait_for(lambda: _notify_zygotes(d.proc.pid), 30, "a new notify zygote")
        assert second != first
        # now in the middle of a send: the job dies with its guardian (PDEATHSIG), its message stays queued
        with fake.lock:
            fake.faults[:] = [Fault(0, hang_s=30.0)]
        wait_for(lambda: any(code == 0 for _, _, code in fake.attempts), 60, "a hanging send")
        os.kill(second, signal.SIGKILL)
        told = len(_cycle_texts(fake))
        wait_for(lambda: len(_cycle_texts(fake)) >= told + 2, 60, "deliveries after the second kill")
        [third] = wait_for(lambda: _notify_zygotes(d.proc.pid), 30, "a third notify zygote")
        assert third not in (first, second)
        assert d.proc.poll() is None
        log = _stop_and_check_each_fill_told_once(d, tmp_path, fake)
    assert log.count("Notifications: starting a new guardian for deliver jobs") >= 2, log[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["no_import", "no_fork"])
def test_a_zygote_that_cannot_run_jobs_keeps_the_messages_and_the_trading(tmp_path: Path, fake: FakeTelegram,
                                                                          fault: str) -> None:
    (tmp_path / fault).touch()
    with DaemonProcess(_config(tmp_path, fake), _env(tmp_path)) as d:
        d.port()
        wait_for(lambda: sum(m.kind == "cycle" for m in load_state(tmp_path / "state.json").outbox) >= 3, 90,
                 "cycles traded and queued while no job can run")
        assert not fake.texts(CHAT) and d.proc.poll() is None
        status = d.get("/status")[1]["notifications"]["destinations"][f"telegram:{CHAT}"]
        assert status["consecutive_errors"] >= 1 and status["pending"] >= 3, status
        expected = {"no_import": "cannot be imported", "no_fork": "cannot fork the job"}[fault]
        assert expected in status["last_error"], status
        (tmp_path / fault).unlink()  # repaired: the queued messages go out (the backoff is at most 300 s)
        wait_for(lambda: len(_cycle_texts(fake)) >= 3, 330, "deliveries once repaired")
        log = _stop_and_check_each_fill_told_once(d, tmp_path, fake)
    assert "Notifications: " in log and expected in log, log[-3000:]


@pytest.mark.slow
def test_a_zygote_that_cannot_start_is_replaced_by_plain_processes(tmp_path: Path, fake: FakeTelegram) -> None:
    (tmp_path / "no_start").touch()
    with DaemonProcess(_config(tmp_path, fake), _env(tmp_path)) as d:
        d.port()
        wait_for(lambda: len(_cycle_texts(fake)) >= 2, 90, "deliveries through plain processes")
        log = _stop_and_check_each_fill_told_once(d, tmp_path, fake)
    assert "Notifications: fork server unavailable" in log, log[-3000:]


def _fault_launcher(monkeypatch: pytest.MonkeyPatch, fault_dir: Path) -> ForkLauncher:
    for name, value in _env(fault_dir).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GO_TRADER_CHECKER_ENV", "ZYGOTE_FAULT_DIR")
    return ForkLauncher(preload=JOB_PRELOAD)


def test_a_failed_fork_refuses_that_job_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EAGAIN from fork (RLIMIT_NPROC) must not take the guardian down, and with it (PDEATHSIG)
    every job it is running."""
    launcher = _fault_launcher(monkeypatch, tmp_path)
    started = tmp_path / "started"
    slow = tmp_path / "slow.py"
    slow.write_text(f"import os, time, pathlib\npathlib.Path({str(started)!r}).touch()\n"
                    f"while not os.path.exists({str(tmp_path / 'go')!r}): time.sleep(0.05)\nprint('done')\n")
    try:
        results: list[Any] = []
        t = threading.Thread(target=lambda: results.extend(run_jobs(launcher, [Job("slow", (), script=slow,
                                                                                   timeout_s=120)])))
        t.start()
        wait_for(started.exists, 60, "the slow job")
        (tmp_path / "no_fork").touch()
        run_jobs(launcher, [Job("refused", (), script=slow, timeout_s=60)])  # warm: the pool's threads
        fds = _fds("self")
        for _ in range(5):
            [refused] = run_jobs(launcher, [Job("refused", (), script=slow, timeout_s=60)])
            assert refused.returncode is None and "cannot fork the job" in (refused.launch_error or ""), refused
        assert _fds("self") == fds  # the refused jobs' pipes are closed
        (tmp_path / "no_fork").unlink()
        (tmp_path / "go").touch()
        t.join(120)
        assert results[0].returncode == 0 and results[0].stdout == b"done\n", results
        assert launcher.alive()
        [again] = run_jobs(launcher, [Job("again", (), script=slow, timeout_s=60)])  # the same guardian
        assert again.returncode == 0, again
    finally:
        launcher.close()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_stopped_guardian_refuses_jobs_at_once_and_is_killed_on_close(tmp_path: Path) -> None:
    """SIGSTOP (or a debugger) freezes a guardian: it can answer nothing until continued. The
    launcher says so instead of waiting out its answer timeout, reports it not alive, and its
    close kills it (a stopped process cannot see the end of file and exit), jobs and all."""
    launcher = ForkLauncher(preload=JOB_PRELOAD)
    guardian = launcher._proc.pid
    job = _deliver_nothing(tmp_path / "journal")
    try:
        [warm] = run_jobs(launcher, [job])
        assert warm.returncode == 0 and launcher.alive()
        os.kill(guardian, signal.SIGSTOP)
        wait_for(lambda: _state(guardian) == "T", 10, "the guardian stopped")
        assert not launcher.alive()
        [refused] = run_jobs(launcher, [job])
        assert refused.returncode is None and "is stopped (SIGSTOP or a debugger)" in (refused.launch_error or ""), \
            refused
    finally:
        launcher.close()
    assert launcher._proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_stopped_notify_zygote_is_replaced_at_the_next_job(tmp_path: Path, fake: FakeTelegram) -> None:
    with DaemonProcess(_config(tmp_path, fake), _env(tmp_path)) as d:
        d.port()
        wait_for(lambda: len(_cycle_texts(fake)) >= 2, 60, "first deliveries")
        [first] = wait_for(lambda: _notify_zygotes(d.proc.pid), 30, "the notify zygote")
        os.kill(first, signal.SIGSTOP)  # between jobs, as a delivery takes milliseconds of each second
        told = len(_cycle_texts(fake))
        # replaced before the next job, not after an answer timeout (30 s) and a close (30 s more)
        wait_for(lambda: len(_cycle_texts(fake)) >= told + 2, 20, "deliveries after the stop")
        [second] = wait_for(lambda: _notify_zygotes(d.proc.pid), 30, "a new notify zygote")
        assert second != first and not Path(f"/proc/{first}").exists()  # killed and reaped, not left stopped
        log = _stop_and_check_each_fill_told_once(d, tmp_path, fake)
    # stopped between jobs, or (on a loaded machine) while a job ran: then the job's exit is lost at once
    broke = [line for line in log.splitlines() if "starting a new guardian for deliver jobs (the last one broke: " in line]
    assert any("it exited or was stopped between jobs" in line or "exited or was stopped before reporting the "
               "job's exit" in line for line in broke), log[-3000:]


def _deliver_nothing(journal: Path) -> Job:
    request = {"mode": "deliver", "journal": str(journal), "destinations": []}
    return Job("(notify)", (), module="scheduler.notify.deliver", stdin=json.dumps(request).encode(), timeout_s=60)


def _fds(pid: int | str) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_many_jobs_exiting_at_once_are_all_reported_and_leak_no_descriptor(tmp_path: Path) -> None:
    """A burst of SIGCHLDs coalesces into one wakeup: every exit is still reaped and reported; over
    many jobs neither the daemon's side nor the guardian keeps a descriptor."""
    launcher = ForkLauncher(preload=JOB_PRELOAD)
    guardian = launcher._proc.pid
    try:
        job = _deliver_nothing(tmp_path / "journal")
        run_jobs(launcher, [job] * 4, max_concurrency=4)  # warm: the pool's threads, the reader
        ours, theirs = _fds("self"), _fds(guardian)
        for _ in range(8):
            results = run_jobs(launcher, [job] * 24, max_concurrency=24)
            assert [r.returncode for r in results] == [0] * 24, [r for r in results if r.returncode != 0][:1]
            assert all(json.loads(r.stdout) == {"destinations": {}} for r in results)
        assert (_fds("self"), _fds(guardian)) == (ours, theirs)
    finally:
        launcher.close()


def test_a_double_forked_leftover_dies_at_job_end_while_the_guardian_is_kept(tmp_path: Path) -> None:
    """The notification guardian lives for the daemon's whole run: a job's daemonised grandchild
    (setsid, its parent gone) must die when the job ends, not when the guardian does."""
    pidfile = tmp_path / "leftover.pid"
    script = tmp_path / "leave.py"
    script.write_text(
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        open({str(pidfile)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"        os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\n"
        "        os.closerange(0, 3)\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        f"while not os.path.exists({str(pidfile)!r}): time.sleep(0.01)\n")
    launcher = ForkLauncher(preload=JOB_PRELOAD)
    try:
        [result] = run_jobs(launcher, [Job("leave", (), script=script, timeout_s=60)])
        assert result.returncode == 0, result.stderr.decode()
        leftover = int(pidfile.read_text())

        def gone() -> bool:
            try:
                return Path(f"/proc/{leftover}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                return True
        wait_for(gone, 30, "the leftover to be killed")
        assert launcher.alive()
    finally:
        launcher.close()


class _HeldPipes:
    """A launcher whose job has exited while something still holds its stdout open."""

    def __init__(self) -> None:
        self.held: list[int] = []

    def launch(self, job: Job) -> _Running:
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
        os.close(in_r)
        os.close(err_w)
        self.held = [out_w]
        rc: Future = Future()
        rc.set_result(0)
        return _Running(os.getpid(), in_w, out_r, err_r, rc)

    def close(self) -> None:
        for fd in self.held:
            os.close(fd)

    def alive(self) -> bool:
        return True


def test_a_jobs_pipes_are_closed_once_even_when_a_leftover_holds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second close of a descriptor number can close another thread's new pipe or socket."""
    closed: list[int] = []
    real_close = os.close

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)

    launcher = _HeldPipes()
    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr("scheduler.runner._kill_group", lambda pid: None)  # the "job" is this process
    result = _run_one(launcher, Job("held", (), stdin=b""), threading.Event(), 0.0)
    monkeypatch.undo()
    launcher.close()
    assert result.returncode == 0
    assert [fd for fd, n in Counter(closed).items() if n > 1] == [], closed


def test_a_killed_poll_zygote_is_replaced_and_each_command_answered_once(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.test_notify import pump, running, telegram

    monkeypatch.setenv("GO_TRADER_TELEGRAM_TOKEN", TOKEN)
    with FakeTelegram() as fake, running(tmp_path, telegram(fake, commands={"chat_ids": [CHAT],
                                                                            "poll_timeout_s": 1})) as d:
        fake.add_update("/status", CHAT)
        pump(d, lambda: [t for t in fake.texts(CHAT) if t.startswith("go-trader: running")])
        first = d.notify._launchers["poll"]._proc.pid  # type: ignore[attr-defined]
        pump(d, lambda: d.notify._poll is not None)  # a long poll in flight
        os.kill(first, signal.SIGKILL)
        pump(d, lambda: d.notify.poll_runtime.errors or ("poll" in d.notify._launchers
                                                         and d.notify._launchers["poll"]._proc.pid != first))
        fake.add_update("/pnl", CHAT)
        pump(d, lambda: len(fake.texts(CHAT)) >= 2 and "poll" in d.notify._launchers)
        assert d.notify._launchers["poll"]._proc.pid != first  # type: ignore[attr-defined]
        pump(d, lambda: (load_state(tmp_path / "state.json").notify.telegram_offset or 0) >= 2)
        answers = fake.texts(CHAT)
        assert sum(a.startswith("go-trader: running") for a in answers) == 1 and len(answers) == 2, answers
        log = (tmp_path / "logs" / "scheduler.log").read_text()
    assert "Notifications: starting a new guardian for poll jobs" in log, log[-2000:]


def test_a_guardian_stopped_while_its_job_runs_loses_the_job_at_once_not_after_its_time_limit(
        tmp_path: Path) -> None:
    """Stopped mid-job, the guardian cannot report the job's exit: the runner says so once the
    job's pipes close, instead of waiting out the job's limit and KILL_REAP_S after it."""
    script = tmp_path / "slow.py"
    script.write_text("import sys, time\nprint('{}')\nsys.stdout.flush()\ntime.sleep(1.0)\n")
    launcher = ForkLauncher(preload=JOB_PRELOAD)
    guardian = launcher._proc.pid
    try:
        done: Future = Future()
        threading.Thread(target=lambda: done.set_result(
            run_jobs(launcher, [Job("slow", (), script=script, timeout_s=600)], max_concurrency=1)[0])).start()
        wait_for(lambda: [p for p in children_of(guardian)], 30, "the job to start")
        os.kill(guardian, signal.SIGSTOP)
        result = done.result(timeout=120)
        assert result.lost and "stopped" in result.lost and not result.timed_out, result
        assert result.returncode is None and result.stdout == b"{}\n"
        assert not launcher.alive()
    finally:
        launcher.close()
    assert launcher._proc.returncode == -signal.SIGKILL
