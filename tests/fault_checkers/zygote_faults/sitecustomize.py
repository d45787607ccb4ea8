"""Fault injection for a notification zygote (``python -m scheduler.zygote FD --preload ...``),
loaded through PYTHONPATH by tests/integration/test_notify_zygote_faults.py.

In a process started with ``--preload`` and ZYGOTE_FAULT_DIR set, while a file in that folder
exists (looked at on every call, so a test turns a fault on and off at run time):

- ``no_import``: importing scheduler.notify.deliver fails (a broken install or preload);
- ``no_fork``: os.fork raises EAGAIN, as it does at RLIMIT_NPROC or a full pids cgroup
  (root ignores RLIMIT_NPROC, so the test cannot set the real limit);
- ``no_start``: the process exits at once, before saying it is ready.
"""

import errno
import os
import sys

_DIR = os.environ.get("ZYGOTE_FAULT_DIR")


def _on(name: str) -> bool:
    return _DIR is not None and os.path.exists(os.path.join(_DIR, name))


if _DIR and "--preload" in sys.argv:
    if _on("no_start"):
        print("zygote fault: no_start", file=sys.stderr)
        os._exit(3)

    class _NoDeliver:
        @staticmethod
        def find_spec(name, path=None, target=None):  # noqa: ANN001, ANN205 - importlib's finder protocol
            if name == "scheduler.notify.deliver" and _on("no_import"):
                raise ImportError("zygote fault: scheduler.notify.deliver cannot be imported")
            return None

    sys.meta_path.insert(0, _NoDeliver)
    _real_fork = os.fork

    def _fork() -> int:
        if os.getpid() == _ZYGOTE and _on("no_fork"):
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable (zygote fault: no_fork)")
        return _real_fork()

    _ZYGOTE = os.getpid()
    os.fork = _fork
