"""Debian's chromium, headless, for the tests that look at a page the way a person would
(the dashboard, the backtest report): where it is, the flags this machine needs, one run that
returns the DOM (``--dump-dom``) or writes a screenshot, and the console lines it logged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test "
                                                             "installs it when run as root with apt)")
# headless as root, no GPU, and no background connections to the internet
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0"]


def chromium(tmp_path: Path, url: str, *mode: str, window: str = "1300,1000") -> tuple[str, str]:
    """Load ``url`` once with ``mode`` (e.g. ``--dump-dom``) in a fresh profile under
    ``tmp_path``; (stdout, stderr)."""
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run([CHROMIUM, *FLAGS, f"--window-size={window}", f"--user-data-dir={profile}", *mode, url],
                          capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr


def console(stderr: str) -> list[str]:
    """The page's console messages in chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]
