"""scheduler.memory: the heap's free pages go back to the system, and OpenSSL stays out of the
daemon (the idle RSS budget)."""

from __future__ import annotations

import hashlib
import hmac
import json
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


def _libraries(maps: str) -> set[str]:
    return {line.split()[-1].rsplit("/", 1)[-1].split(".so")[0] for line in maps.splitlines() if ".so" in line}


def test_keep_openssl_out_leaves_a_working_process_without_openssl():
    # a fresh interpreter, as the daemon's entry point calls it: first, before any import
    code = textwrap.dedent("""
        import json, sys
        from scheduler.memory import keep_openssl_out
        absent = keep_openssl_out()
        import hashlib, hmac, http.server, secrets, urllib.request
        import scheduler.daemon  # pydantic, the status server, the engine: all of the daemon
        try:
            import ssl
            ssl_ok = True
        except ImportError:
            ssl_ok = False
        print(json.dumps({
            "absent": absent, "ssl": ssl_ok, "https": hasattr(urllib.request, "HTTPSHandler"),
            "sha256": hashlib.sha256(b"go-trader").hexdigest(),
            "hmac": hmac.new(b"k", b"m", "sha256").hexdigest(),
            "equal": secrets.compare_digest("a", "a"),
            "maps": open("/proc/self/maps").read(),
        }))
    """)
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["absent"] == ["_hashlib", "_ssl"] and out["ssl"] is False and out["https"] is False
    # Python's own SHA-2 and HMAC give the same digests OpenSSL's would
    assert out["sha256"] == hashlib.sha256(b"go-trader").hexdigest()
    assert out["hmac"] == hmac.new(b"k", b"m", "sha256").hexdigest() and out["equal"] is True
    libs = _libraries(out["maps"])
    assert not {"libcrypto", "libssl"} & libs, sorted(libs)


def test_keep_openssl_out_leaves_an_imported_module_alone():
    code = "import hashlib\nfrom scheduler.memory import keep_openssl_out\nprint(keep_openssl_out())\nimport _hashlib"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('_ssl',)"
