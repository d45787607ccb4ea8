"""Closes its stdout and stderr, then hangs: the runner must still notice stop and the deadline."""
import os
import time

os.close(1)
os.close(2)
time.sleep(3600)
