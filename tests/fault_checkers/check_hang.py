"""Hangs forever and leaves a grandchild behind: the runner must kill the whole group.

When HANG_PIDFILE is set, both pids are appended to it so a test can check they die.
"""
import os
import time

pid = os.fork()
if pid and os.environ.get("HANG_PIDFILE"):
    with open(os.environ["HANG_PIDFILE"], "a") as f:
        f.write(f"{os.getpid()}\n{pid}\n")
time.sleep(3600)
