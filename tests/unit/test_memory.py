"""scheduler.memory: the heap's free pages go back to the system (the idle RSS budget)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from scheduler.memory import release_free_memory

needs_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@needs_glibc
def test_freed_heap_pages_are_returned():
    # in a child process, so this test's own heap does not matter: 200 MB in 50 KB blocks (the
    # heap, not mmap), all freed but one at the top that pins it, as a cycle's garbage would
    code = textwrap.dedent("""
        def rss():
            for line in open('/proc/self/status'):
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
        from scheduler.memory import release_free_memory
        blocks = [bytearray(50_000) for _ in range(4000)]
        pin = bytearray(50_000)
        del blocks
        before = rss()
        assert release_free_memory()
        print(before, rss())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after = map(float, out.split())
    assert before - after > 100, (before, after)


def test_a_second_call_reuses_the_lookup():
    first = release_free_memory()
    assert release_free_memory() is first
