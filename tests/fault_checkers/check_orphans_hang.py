"""Leaves a background child and a daemonised grandchild (see orphan_spawn), then hangs.

Its own pid goes to orphans.pids in the daemon's state folder, for the test's clean-up."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orphan_spawn import record_pid, spawn_orphans  # noqa: E402

record_pid()
spawn_orphans()
time.sleep(3600)
