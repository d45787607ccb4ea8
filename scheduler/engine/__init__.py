"""The pure trading engine: fills, portfolio accounting and risk rules.

No network, files, subprocesses, environment or wall clock in here: time and
prices come in as arguments. The daemon and the backtester both call
``engine.step``.
"""

from scheduler.engine.step import SleeveRules, SpotIntent, step

__all__ = ["SleeveRules", "SpotIntent", "step"]
