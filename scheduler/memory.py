"""Give the C heap's free memory back to the system after a cycle.

A cycle allocates and frees a few MB (checker output, the state's JSON, the status
snapshot). glibc keeps freed heap pages mapped, so the daemon's resident size would
settle at its busiest cycle's; ``malloc_trim(0)`` returns the free pages, so the idle
daemon is as small as what it holds (bench/bench_notify.py and bench_cycle.py measure it).
On a libc without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

_trim: Callable[[int], int] | None | bool = False  # False: not looked up yet; None: not available


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; whether the libc could."""
    global _trim
    if _trim is False:
        try:
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _trim = None
    if _trim is None:
        return False
    _trim(0)  # type: ignore[operator]
    return True


#: The extension modules that load OpenSSL (libcrypto, libssl) into a process.
OPENSSL_MODULES = ("_hashlib", "_ssl")


def keep_openssl_out() -> tuple[str, ...]:
    """Keep OpenSSL out of this process, for the daemon's idle size; return what it kept out.

    The daemon itself never speaks TLS: the fetch step (ccxt) and the notification jobs
    (Telegram, webhooks) run in processes of their own, each a fresh interpreter; the daemon
    serves plain HTTP on loopback and hashes with SHA-256. Yet pydantic imports ``secrets``
    (so ``hashlib``, so ``_hashlib``) and ``http.server`` imports ``http.client`` (so
    ``ssl``), and initialising OpenSSL costs about 5 MB of the daemon's 40 MB idle budget
    (bench/bench_notify.py). With these modules marked absent, ``hashlib`` uses Python's own
    SHA-2 code, ``hmac`` its pure-Python path, and ``http.client`` and ``urllib`` simply lack
    HTTPS, as on a Python built without OpenSSL. A module already imported stays as it is, so
    this is for the program's entry point, before anything is imported (scheduler/cli.py)."""
    absent = tuple(m for m in OPENSSL_MODULES if m not in sys.modules)
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not available"
    return absent
