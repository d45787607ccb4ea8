"""Give the C heap's free memory back to the system after a cycle.

A cycle allocates and frees a few MB (checker output, the state's JSON, the status
snapshot). glibc keeps freed heap pages mapped, so the daemon's resident size would
settle at its busiest cycle's; ``malloc_trim(0)`` returns the free pages, so the idle
daemon is as small as what it holds (bench/bench_notify.py and bench_cycle.py measure it).
On a libc without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
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
