"""Runs checker processes: no shell, argv lists, stdin for data, hard limits.

Every job is its own process in its own process group. Limits: a per-job
timeout that kills the whole group, a stdout cap (the job is killed when it
prints more), a kept stderr tail, and a bound on how many run at once. Two
ways to start the process, with identical behaviour:

- ``SubprocessLauncher``: ``python SCRIPT ARGS`` (or ``python -m MODULE``).
- ``ForkLauncher``: forked from a warm zygote (scheduler.zygote) that has
  the libraries imported already; the same isolation, a fraction of the CPU.

Both start their jobs through a guardian process (scheduler.zygote, with
``--exec`` for plain python) in its own session, so that when the scheduler
dies, however it is killed, the guardian kills every checker and every
process a checker left behind (see that module for how).

A job's environment is built from an allow-list (``child_env``) plus the
job's own ``env``: checkers never see the status token or exchange and
Telegram secrets of the scheduler's environment.

``run_jobs`` never raises for a job's failure: each JobResult says what
happened, and the caller classifies it.
"""

from __future__ import annotations

import array
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from scheduler.zygote import stat_fields

STDERR_KEEP_BYTES = 64 * 1024
CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "0"}
#: After a job exits, how long to keep reading pipes that an escaped descendant still holds open.
EXIT_DRAIN_S = 2.0
#: After the runner kills a job, how long to wait for the guardian to report its exit.
KILL_REAP_S = 5.0
#: how long a guardian may take to say it forked a job (it takes milliseconds when well)
LAUNCH_ANSWER_S = 30.0
#: while waiting for that answer, how often to look whether the guardian is stopped
STOPPED_CHECK_S = 0.5

#: What a checker may inherit from the scheduler's environment: the interpreter's and the C
#: library's settings, network settings ccxt needs to reach an exchange, and the GO_TRADER_
#: variables the checkers read (checkers/common.py; tests/conftest.py for the data path).
ENV_ALLOW = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS", "PYTHONDEVMODE",
    "PYTHONFAULTHANDLER", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONSAFEPATH",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "GO_TRADER_NOW_MS", "GO_TRADER_MARKET", "GO_TRADER_CACHE_DIR", "GO_TRADER_CANDLES_LIMIT",
    "GO_TRADER_SHARED_DATA",
})
ENV_ALLOW_PREFIXES = ("LC_",)
#: Names (space- or comma-separated) of further variables to pass, e.g. for a custom checker.
PASSTHROUGH_ENV = "GO_TRADER_CHECKER_ENV"
#: A variable whose name matches this is never passed on, allow-listed or not.
SECRET_NAME_RE = re.compile(r"TOKEN|SECRET|PASSW|PASSPHRASE|API_?KEY|PRIVATE|CREDENTIAL|AUTH|COOKIE"
                            r"|SIGNATURE|_KEY$|^KEY", re.IGNORECASE)


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME_RE.search(name)) or name.startswith(("GO_TRADER_TELEGRAM_", "GO_TRADER_WEBHOOK_"))


def child_env(parent: Mapping[str, str]) -> dict[str, str]:
    """The environment every job starts from: the allow-listed variables of ``parent`` (and the
    names listed in its GO_TRADER_CHECKER_ENV), never one whose name looks like a secret, plus
    CHILD_ENV. The job's own ``env`` goes on top of this."""
    extra = set(parent.get(PASSTHROUGH_ENV, "").replace(",", " ").split())
    kept = {name: value for name, value in parent.items()
            if (name in ENV_ALLOW or name in extra or name.startswith(ENV_ALLOW_PREFIXES))
            and not looks_secret(name)}
    return {**kept, **CHILD_ENV}


@dataclass(frozen=True)
class Job:
    key: str  # the strategy id, or a name such as "prefetch"
    args: tuple[str, ...]
    script: Path | None = None  # run a checker script as __main__ ...
    # ... or a module (python -m). A job module ends in ``if __name__ == "__main__": sys.exit(main())``:
    # forked from a zygote that preloaded it, its main() is called (its body is not run twice).
    module: str | None = None
    stdin: bytes = b""
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    max_output_bytes: int = 1_048_576
    # Set to stop this job (grace_s later) even when run_jobs was given no stop event, or another.
    stop: threading.Event | None = field(default=None, compare=False)
    # How often the stop events are looked at while the job is silent (an Event cannot wake the wait
    # on its pipes): a job that runs for minutes and may take a second to stop sets more.
    stop_check_s: float = 0.1


@dataclass(frozen=True)
class JobResult:
    key: str
    returncode: int | None  # None: never started or never reaped
    stdout: bytes
    stderr: bytes  # the last STDERR_KEEP_BYTES
    duration_s: float
    timed_out: bool = False
    output_overflow: bool = False
    cancelled: bool = False  # not started because the scheduler is stopping
    launch_error: str | None = None
    #: the job ran but its exit can never be reported: its guardian exited or is stopped
    lost: str | None = None


@dataclass
class _Running:
    pid: int
    stdin: int
    stdout: int
    stderr: int
    returncode: Future  # resolves to the exit code


class Launcher(Protocol):
    def launch(self, job: Job) -> _Running: ...
    def close(self) -> None: ...
    def alive(self) -> bool:
        """Whether it can take jobs now (a guardian that exited or is stopped cannot)."""
        ...


def _pipes() -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return os.pipe(), os.pipe(), os.pipe()


class _GuardedLauncher:
    """Starts jobs through a guardian (scheduler.zygote) in its own session; see that module."""

    def __init__(self, python: str, start_timeout_s: float, exec_mode: bool,
                 preload: Sequence[str] | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        mode = ["--exec", python] if exec_mode else [] if preload is None else ["--preload", ",".join(preload)]
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
                [python, "-m", "scheduler.zygote", str(theirs.fileno()), *mode], pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=child_env(os.environ),
                start_new_session=True,  # a kill of the scheduler's process group must leave it to clean up
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pid_futures: dict[int, Future] = {}
        self._rc_futures: dict[int, Future] = {}
        ours.settimeout(start_timeout_s)
        try:
            hello = json.loads(ours.recv(65536) or b"{}")
        except (OSError, ValueError) as e:
            self.close()
            raise RuntimeError(f"checker zygote did not start: {e}") from e
        if not hello.get("ready"):
            self.close()
            raise RuntimeError(f"checker zygote did not start (exit code {self._proc.poll()})")
        ours.settimeout(None)
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()

    def _read_replies(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            msg = json.loads(data)
            with self._lock:
                if "error" in msg:  # not forked: the guardian goes on with the other jobs
                    self._rc_futures.pop(msg["id"]).set_exception(RuntimeError(msg["error"]))
                    self._pid_futures.pop(msg["id"]).set_exception(RuntimeError(msg["error"]))
                elif "pid" in msg:
                    self._pid_futures.pop(msg["id"]).set_result(msg["pid"])
                else:
                    self._rc_futures.pop(msg["id"]).set_result(msg["returncode"])
        with self._lock:  # the zygote is gone: nothing pending will ever be answered
            for fut in [*self._pid_futures.values(), *self._rc_futures.values()]:
                if not fut.done():
                    fut.set_exception(RuntimeError("checker zygote exited"))
            self._pid_futures.clear()
            self._rc_futures.clear()

    def launch(self, job: Job) -> _Running:
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = _pipes()
        pid_fut: Future = Future()
        rc_fut: Future = Future()
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            self._pid_futures[rid] = pid_fut
            self._rc_futures[rid] = rc_fut
        request = {"id": rid, "script": str(job.script) if job.script else None, "module": job.module,
                   "args": list(job.args), "env": dict(job.env)}
        try:
            self._sock.sendmsg([json.dumps(request).encode()],
                               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [in_r, out_w, err_w]).tobytes())])
        except OSError as e:
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise RuntimeError(f"checker zygote is gone: {e}") from e
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        try:
            pid = self._answer(pid_fut)
        except BaseException:  # refused (fork failed), the guardian died or hangs: our ends are ours to close
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise
        return _Running(pid, in_w, out_r, err_r, rc_fut)

    def _answer(self, pid_fut: Future) -> int:
        """The pid the guardian forked for a job; RuntimeError at once when the guardian is
        stopped (SIGSTOP, a debugger: it would answer nothing until continued), TimeoutError
        after LAUNCH_ANSWER_S without an answer."""
        deadline = time.monotonic() + LAUNCH_ANSWER_S
        while True:
            try:
                return pid_fut.result(timeout=max(0.0, min(STOPPED_CHECK_S, deadline - time.monotonic())))
            except TimeoutError:
                if self._stopped():
                    raise RuntimeError(f"the guardian (pid {self._proc.pid}) is stopped (SIGSTOP or a debugger), "
                                       "so it cannot start the job") from None
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the guardian (pid {self._proc.pid}) did not start the job within "
                                       f"{LAUNCH_ANSWER_S:g} s") from None

    def _stopped(self) -> bool:
        """Whether the guardian process is stopped (state T, or t when a tracer stopped it); a
        guardian that is gone is not (the reader says it is gone)."""
        fields = stat_fields(self._proc.pid)
        return bool(fields) and fields[0] in (b"T", b"t")

    def alive(self) -> bool:
        """Whether the guardian is there to take jobs: False once it exited (killed, say) or while
        it is stopped."""
        return self._reader.is_alive() and self._proc.poll() is None and not self._stopped()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._proc.poll() is None and self._stopped():  # it cannot see the end of file and exit
            self._proc.kill()  # its jobs die with it (PR_SET_PDEATHSIG)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class SubprocessLauncher(_GuardedLauncher):
    """Starts each job as a fresh ``python`` process (exec'd by a guardian that imports nothing)."""

    def __init__(self, python: str = sys.executable, start_timeout_s: float = 60.0) -> None:
        self.python = python
        super().__init__(python, start_timeout_s, exec_mode=True)


class ForkLauncher(_GuardedLauncher):
    """Forks jobs from a warm zygote process started for this launcher, with the checkers'
    libraries imported (scheduler.zygote.PRELOAD), or the modules ``preload`` names."""

    def __init__(self, python: str = sys.executable, start_timeout_s: float = 60.0,
                 preload: Sequence[str] | None = None) -> None:
        super().__init__(python, start_timeout_s, exec_mode=False, preload=preload)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _run_one(launcher: Launcher, job: Job, stop: threading.Event, grace_s: float) -> JobResult:
    started = time.monotonic()
    stops = [e for e in (stop, job.stop) if e is not None]
    if any(e.is_set() for e in stops):
        return JobResult(job.key, None, b"", b"", 0.0, cancelled=True)
    try:
        running = launcher.launch(job)
    except (OSError, RuntimeError, TimeoutError) as e:
        return JobResult(job.key, None, b"", b"", time.monotonic() - started, launch_error=str(e))
    deadline = started + job.timeout_s
    out, err = bytearray(), bytearray()
    timed_out = overflow = False
    sel = selectors.DefaultSelector()
    for fd in (running.stdout, running.stderr):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pending_in = memoryview(job.stdin)
    if pending_in:
        os.set_blocking(running.stdin, False)
        sel.register(running.stdin, selectors.EVENT_WRITE)
    else:
        os.close(running.stdin)
    stop_deadline: float | None = None
    exited_at: float | None = None
    killed_at: float | None = None
    lost: str | None = None
    looked_at = started
    try:
        # One loop until the job has exited and its pipes are drained, checking the deadline and
        # the stop events every stop_check_s whatever the job does (also once it has closed its pipes).
        while True:
            now = time.monotonic()
            if stop_deadline is None and any(e.is_set() for e in stops):
                stop_deadline = now + grace_s
            limit = deadline if stop_deadline is None else min(deadline, stop_deadline)
            if exited_at is None and running.returncode.done():
                exited_at = now
            if exited_at is not None and (not sel.get_map() or now >= exited_at + EXIT_DRAIN_S):
                break  # exited; a pipe still open after the drain time is held by an escaped descendant
            if exited_at is None and (killed_at is not None or not sel.get_map()) \
                    and now >= looked_at + STOPPED_CHECK_S:
                # done with its pipes (or killed) but not reported reaped: a guardian that is stopped
                # or gone never will report it, so do not wait out the job's time limit for it
                looked_at = now
                if not launcher.alive():
                    lost = "its guardian (fork server) exited or was stopped before reporting the job's exit"
                    break
            if killed_at is not None:
                if now >= killed_at + KILL_REAP_S:
                    break  # killed but never reported reaped
            elif now >= limit:
                timed_out = True
                killed_at = now
                _kill_group(running.pid)
            wait_s = max(0.0, min(job.stop_check_s, limit - now)) if killed_at is None else 0.1
            if not sel.get_map():
                try:
                    running.returncode.exception(timeout=wait_s)
                except TimeoutError:
                    pass
                continue
            for key, _ in sel.select(timeout=wait_s):
                fd = key.fd
                if fd == running.stdin:
                    try:
                        n = os.write(fd, pending_in[:65536])
                        pending_in = pending_in[n:]
                    except (BrokenPipeError, BlockingIOError):
                        pending_in = pending_in[:0]
                    if not pending_in:
                        sel.unregister(fd)
                        os.close(fd)
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                if fd == running.stdout:
                    out += chunk
                    if len(out) > job.max_output_bytes:
                        overflow = True
                        killed_at = killed_at or time.monotonic()
                        _kill_group(running.pid)
                        del out[job.max_output_bytes:]
                        sel.unregister(fd)
                else:
                    err += chunk
                    if len(err) > 2 * STDERR_KEEP_BYTES:
                        del err[:-STDERR_KEEP_BYTES]
        returncode: int | None = None
        if running.returncode.done() and running.returncode.exception() is None:
            returncode = running.returncode.result()
        else:  # never reaped in time, or the guardian is gone: make sure it is dead and report it
            _kill_group(running.pid)
            timed_out = lost is None
    finally:
        # Each descriptor closed exactly once: a second close could hit a number another thread
        # has just been given (another job's pipe, a socket of the daemon).
        still_open = {running.stdout, running.stderr} | set(sel.get_map())
        for fd in list(sel.get_map()):
            sel.unregister(fd)
        sel.close()
        for fd in still_open:
            os.close(fd)
    return JobResult(job.key, returncode, bytes(out), bytes(err[-STDERR_KEEP_BYTES:]),
                     time.monotonic() - started, timed_out=timed_out, output_overflow=overflow, lost=lost)


def run_jobs(launcher: Launcher, jobs: Sequence[Job], *, max_concurrency: int | None = None,
             stop: threading.Event | None = None, grace_s: float = 10.0) -> list[JobResult]:
    """Run ``jobs`` with at most ``max_concurrency`` at once; results in job order.

    When ``stop`` (or a job's own ``Job.stop``) is set, jobs not yet started are
    cancelled and running ones get ``grace_s`` seconds more before their
    process group is killed; run_jobs returns at most about KILL_REAP_S after that.
    """
    stop = stop or threading.Event()
    workers = max(1, min(max_concurrency or os.cpu_count() or 2, len(jobs) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="checker") as pool:
        futures = [pool.submit(_run_one, launcher, job, stop, grace_s) for job in jobs]
        return [f.result() for f in futures]
