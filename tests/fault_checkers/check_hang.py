"""Hangs forever (and leaves a grandchild behind): the runner must kill the whole group."""
import os
import time

os.fork()
time.sleep(3600)
