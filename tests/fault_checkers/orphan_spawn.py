"""Leaves processes behind for the orphan tests: a plain background child and a daemonised one.

Both sleep for 300 s with MARKER (``go-trader-orphan-test:`` + the daemon's state folder, the
parent of GO_TRADER_CACHE_DIR) in their argv, so a test finds survivors in /proc/*/cmdline.
Both inherit the checker's stdout and stderr, as a careless checker's helpers would.
"""
import os
import subprocess
import sys
from pathlib import Path

SLEEP = "import time; time.sleep(300)"
# The intermediate starts the sleeper in a new session (setsid) and exits at once: a classic
# daemon that escapes process-group kills and is re-parented away from the checker.
DAEMONISE = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
             "start_new_session=True)")


def folder() -> Path:
    return Path(os.environ["GO_TRADER_CACHE_DIR"]).parent


def marker() -> str:
    return "go-trader-orphan-test:" + str(folder())


def record_pid() -> None:
    with open(folder() / "orphans.pids", "a") as f:
        f.write(f"{os.getpid()}\n")


def spawn_orphans() -> None:
    subprocess.Popen([sys.executable, "-c", SLEEP, marker() + ":child"])
    subprocess.run([sys.executable, "-c", DAEMONISE, SLEEP, marker() + ":daemonised"], check=True)
