"""Leaves a background child and a daemonised grandchild (see orphan_spawn), then hangs."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orphan_spawn import spawn_orphans  # noqa: E402

spawn_orphans()
time.sleep(3600)
