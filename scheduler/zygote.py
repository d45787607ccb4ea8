"""A warm fork server for checker processes.

The scheduler starts one per cycle (``python -m scheduler.zygote FD``). It
imports the heavy libraries once (numpy, the strategies, the market cache),
then, for each request on the control socket, forks a child that becomes a
fresh checker process: its own session and process group, the request's
pipes as stdin/stdout/stderr, its own argv and environment, the checker run
as ``__main__`` (a preloaded module's ``main()`` called, see runner.Job). Children hold no state from one another: each starts from
the zygote's clean, just-imported memory. It saves the import cost of every
check (hundreds of milliseconds of CPU) while keeping checks isolated.

With ``--exec PYTHON`` it preloads nothing and each child execs a fresh
``PYTHON SCRIPT ARGS`` instead (the runner's "subprocess" mode): the same
supervision, a plain interpreter. With ``--preload MODULE,MODULE`` it imports
those modules instead of PRELOAD (the notification jobs need urllib, not numpy).

It sleeps between events: the control socket and SIGCHLD (through a wakeup
pipe) wake it, and while jobs run a sweep for orphans every ORPHAN_SWEEP_S
reads only its own children list, so a guardian kept between jobs (the
notification service keeps one for its whole run) costs next to no CPU idle.

It is also the checkers' guardian, so that no process of ours outlives its
deadline or the scheduler:

- It runs in its own session (the runner starts it so): killing the
  scheduler's process group does not take the guardian with it, and the
  guardian sees the scheduler die as end-of-file on the control socket
  (the kernel closes a dead process's sockets, whatever killed it). It then
  kills every checker's group and every descendant it has, and exits.
- Every child sets PR_SET_PDEATHSIG=SIGKILL relative to the guardian (whose
  only thread forks it, so "parent thread" and "parent process" agree) and
  re-checks getppid() afterwards to close the race with an early death.
  The signal survives exec, so it covers both modes.
- Each checker and the guardian are child subreapers (PR_SET_CHILD_SUBREAPER,
  kept across exec): a checker's descendant whose parent dies is re-parented
  to the checker while it runs, and to the guardian once the checker is
  gone, never to init, even after setsid() or a double fork. So every child
  of the guardian that is not a running checker is something a finished
  checker left behind, and is killed on sight.
- When a checker exits (normally or not), its whole process group is killed
  before it is reaped (waitid WNOWAIT keeps the group id from being reused),
  so background grandchildren die with it.

Residual: a descendant escapes only if it is re-parented away from the
guardian by something outside it (ptrace, a nested subreaper it started),
or if the guardian itself is SIGKILLed while the scheduler lives (the
children then die by PDEATHSIG; their own orphans go to init).

Protocol (one JSON document per packet on a Unix SOCK_SEQPACKET socket; pipes passed
as SCM_RIGHTS):
  request:  {"id": N, "script": PATH | null, "module": NAME | null, "args": [...], "env": {...}}
            + 3 file descriptors (stdin read end, stdout write end, stderr write end)
  replies:  {"id": N, "pid": PID}  then later  {"id": N, "returncode": RC},
            or {"id": N, "error": TEXT} when the job could not be forked (the guardian goes on)
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable

PRELOAD = ("numpy", "strategies", "market.base", "market.cache", "market.cache_source", "market.synthetic",
           "market.prefetch")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36
ORPHAN_SWEEP_S = 0.5  # a backstop: orphans are also looked for after every reap
FINAL_SWEEP_S = 10.0  # bound on killing and reaping what is left when the guardian ends


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, or None where there is none (not Linux): then only group kills protect us."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


PRCTL = _prctl()


def _die_with(parent_pid: int) -> None:
    """Make the kernel SIGKILL this process when ``parent_pid`` (its parent) dies, and adopt
    this process's orphaned descendants (see the module docstring)."""
    if PRCTL is not None:
        PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        PRCTL(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the call took effect
        os._exit(1)


def children_of(ppid: int) -> list[int]:
    """Processes whose parent is ``ppid``: the kernel's list of each of its threads' children
    (/proc/PID/task/TID/children, one small read), else, where the kernel has no such list, the
    live (non-zombie) ones found by reading every /proc/*/stat."""
    try:
        found = []
        for tid in os.listdir(f"/proc/{ppid}/task"):
            with open(f"/proc/{ppid}/task/{tid}/children", "rb") as f:
                found += [int(pid) for pid in f.read().split()]
        return found
    except OSError:  # no such process or thread, or a kernel without CONFIG_PROC_CHILDREN
        return _children_by_scan(ppid)


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name: the state (R, S, T, Z, ...), the
    parent's pid, ...; None when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children_by_scan(ppid: int) -> list[int]:
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        fields = stat_fields(name) if name.isdigit() else None
        if fields is not None and len(fields) > 1 and fields[0] != b"Z" and int(fields[1]) == ppid:
            found.append(int(name))
    return found


def _kill(pids: Iterable[int], group: bool) -> None:
    for pid in pids:
        try:
            (os.killpg if group else os.kill)(pid, signal.SIGKILL)
        except OSError:
            pass


def _preload(modules: Iterable[str]) -> None:
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module must not stop the checks; the child will fail clearly
            traceback.print_exc()


def _child(request: dict, fds: list[int], control: socket.socket, close_fds: tuple[int, ...], guardian_pid: int,
           exec_python: str | None) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # before anything: a signal must never write into a reused fd number
        control.close()
        for fd in close_fds:
            os.close(fd)
        os.setsid()  # own session and process group: the scheduler can kill the whole group
        _die_with(guardian_pid)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)  # ignored signals would stay ignored across exec
        os.environ.update(request.get("env") or {})
        script, module = request.get("script"), request.get("module")
        if exec_python is not None:
            target = [script] if script else ["-m", str(module)]
            try:
                os.execve(exec_python, [exec_python, *target, *request.get("args", [])], dict(os.environ))
            except OSError as e:
                print(f"cannot start {exec_python}: {e}", file=sys.stderr)
                code = 127
            return
        sys.argv = [script or module or "checker", *request.get("args", [])]
        try:
            if script:
                sys.path[0] = os.path.dirname(os.path.abspath(script))
                runpy.run_path(script, run_name="__main__")
            elif callable(main := getattr(sys.modules.get(str(module)), "main", None)):
                # Preloaded: runpy would run its body a second time (and warn that it is imported
                # already), milliseconds per job; a job module ends in sys.exit(main()) (runner.Job).
                raise SystemExit(main())
            else:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int) and e.code is not None:
                print(e.code, file=sys.stderr)
        except BaseException as e:
            tb = e.__traceback__  # hide the zygote's own frames: show the checker's traceback as python would
            while tb is not None and (tb.tb_frame.f_code.co_filename in (__file__, runpy.__file__)
                                      or tb.tb_frame.f_code.co_filename.startswith("<frozen runpy")):
                tb = tb.tb_next
            traceback.print_exception(type(e), e, tb)
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            code = code or 1
    finally:
        os._exit(code)


def serve(control: socket.socket, exec_python: str | None = None) -> None:
    """Fork a child per request until the scheduler closes the socket and all children are reaped;
    then kill and reap whatever is left of their descendants."""
    me = os.getpid()
    pending: dict[int, int] = {}  # pid (= its process group) -> request id
    open_ = True
    next_sweep = 0.0
    # A child's exit wakes the loop through this pipe (the signal module writes to it from the C
    # handler, so a SIGCHLD between the reap and the select still wakes it): no polling.
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def send(doc: dict) -> None:
        nonlocal open_
        try:
            control.send(json.dumps(doc).encode())
        except OSError:
            open_ = False

    def report(rid: int, returncode: int) -> None:
        if open_:
            send({"id": rid, "returncode": returncode})

    while open_ or pending:
        ready = select.select([control, wake_r] if open_ else [wake_r], [], [],
                              ORPHAN_SWEEP_S if pending else None)[0]
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if control in ready:
            data, ancdata, _, _ = control.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
            if not data:
                # The scheduler closed the socket. After a normal cycle nothing is pending; if children
                # are still running, the scheduler died and nobody enforces their timeouts: stop them.
                open_ = False
                _kill(pending, group=True)
                continue
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload), 4))
            request = json.loads(data)
            try:
                pid = os.fork()
            except OSError as e:  # EAGAIN (RLIMIT_NPROC, pids cgroup) or ENOMEM: refuse this job, not all
                pid = -1
                send({"id": request["id"], "error": f"cannot fork the job: {e}"})
            if pid == 0:
                _child(request, fds, control, (wake_r, wake_w), me, exec_python)
            for fd in fds:
                os.close(fd)
            if pid > 0:
                pending[pid] = request["id"]
                send({"id": request["id"], "pid": pid})
        reaped = _reap(pending, report)
        now = time.monotonic()
        if reaped or (pending and now >= next_sweep):
            # Anything of ours that is not a checker is an orphan re-parented to us (we are the subreaper).
            _kill([pid for pid in children_of(me) if pid not in pending], group=False)
            next_sweep = now + ORPHAN_SWEEP_S
    signal.set_wakeup_fd(-1)
    _kill_descendants(me)


def _reap(pending: dict[int, int], report: Callable[[int, int], None]) -> bool:
    """Reap every exited child; a checker's process group is killed first. True if any was reaped."""
    reaped = False
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped
        if info is None or info.si_pid == 0:
            return reaped
        pid = info.si_pid
        if pid in pending:
            # The leader is a zombie until waitpid below, so its group id cannot be reused yet.
            _kill([pid], group=True)
        _, status = os.waitpid(pid, 0)
        reaped = True
        rid = pending.pop(pid, None)
        if rid is not None:
            report(rid, os.waitstatus_to_exitcode(status))


def _kill_descendants(me: int) -> None:
    """Kill every child until none is left: each death re-parents its own children to us."""
    deadline = time.monotonic() + FINAL_SWEEP_S
    while time.monotonic() < deadline:
        _kill(children_of(me), group=False)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.01)


def main() -> None:
    """``python -m scheduler.zygote FD [--exec PYTHON | --preload MODULE,MODULE]``."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS threads in a process that forks
    control = socket.socket(fileno=int(sys.argv[1]))
    exec_python = sys.argv[3] if sys.argv[2:3] == ["--exec"] else None
    preload = [m for m in sys.argv[3].split(",") if m] if sys.argv[2:3] == ["--preload"] else PRELOAD
    for sig in (signal.SIGINT, signal.SIGTERM):  # the scheduler decides when checks stop
        signal.signal(sig, signal.SIG_IGN)
    if PRCTL is not None:
        PRCTL(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if exec_python is None:
        import pkgutil  # noqa: F401 - runpy.run_path imports it when first called: once here, not per child

        _preload(preload)
    try:
        control.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    except OSError:  # the daemon went (kill -9) while this started: nobody to serve, nothing to say
        return
    serve(control, exec_python)


if __name__ == "__main__":
    main()
