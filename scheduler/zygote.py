"""A warm fork server for checker processes.

The scheduler starts one per cycle (``python -m scheduler.zygote FD``). It
imports the heavy libraries once (numpy, the strategies, the market cache),
then, for each request on the control socket, forks a child that becomes a
fresh checker process: its own session and process group, the request's
pipes as stdin/stdout/stderr, its own argv and environment, the checker run
as ``__main__``. Children hold no state from one another: each starts from
the zygote's clean, just-imported memory. It saves the import cost of every
check (hundreds of milliseconds of CPU) while keeping checks isolated.

Protocol (one JSON document per packet on a Unix SOCK_SEQPACKET socket; pipes passed
as SCM_RIGHTS):
  request:  {"id": N, "script": PATH | null, "module": NAME | null, "args": [...], "env": {...}}
            + 3 file descriptors (stdin read end, stdout write end, stderr write end)
  replies:  {"id": N, "pid": PID}  then later  {"id": N, "returncode": RC}
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import socket
import sys
import traceback

PRELOAD = ("numpy", "strategies", "market.base", "market.cache", "market.synthetic", "market.prefetch")


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module must not stop the checks; the child will fail clearly
            traceback.print_exc()


def _child(request: dict, fds: list[int], control: socket.socket) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        control.close()
        os.setsid()  # own session and process group: the scheduler can kill the whole group
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.environ.update(request.get("env") or {})
        script, module = request.get("script"), request.get("module")
        sys.argv = [script or module or "checker", *request.get("args", [])]
        try:
            if script:
                sys.path[0] = os.path.dirname(os.path.abspath(script))
                runpy.run_path(script, run_name="__main__")
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


def serve(control: socket.socket) -> None:
    """Fork a child per request until the scheduler closes the socket and all children are reaped."""
    pending: dict[int, int] = {}  # pid -> request id
    open_ = True

    def send(doc: dict) -> None:
        nonlocal open_
        try:
            control.send(json.dumps(doc).encode())
        except OSError:
            open_ = False

    while open_ or pending:
        ready = select.select([control] if open_ else [], [], [], 0.01)[0]
        if ready:
            data, ancdata, _, _ = control.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
            if not data:
                # The scheduler closed the socket. After a normal cycle nothing is pending; if children
                # are still running, the scheduler died and nobody enforces their timeouts: stop them.
                open_ = False
                for pid in pending:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                continue
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload), 4))
            request = json.loads(data)
            pid = os.fork()
            if pid == 0:
                _child(request, fds, control)
            for fd in fds:
                os.close(fd)
            pending[pid] = request["id"]
            send({"id": request["id"], "pid": pid})
        while pending:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pending.clear()
                break
            if pid == 0:
                break
            rid = pending.pop(pid, None)
            if rid is not None and open_:
                send({"id": rid, "returncode": os.waitstatus_to_exitcode(status)})


def main() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS threads in a process that forks
    control = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides when checks stop
    _preload()
    control.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    serve(control)


if __name__ == "__main__":
    main()
