#!/usr/bin/env python3
"""The real checkers/check_options.py, from the fault-checker folder (so a test config whose
checkers_dir is this folder can run a real options strategy beside the fault checkers)."""

import runpy
import sys
from pathlib import Path

script = Path(__file__).resolve().parents[2] / "checkers" / "check_options.py"
sys.argv[0] = str(script)
runpy.run_path(str(script), run_name="__main__")
