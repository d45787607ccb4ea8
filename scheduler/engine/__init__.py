"""The pure trading engine: fills, portfolio accounting and risk rules.

No network, files, subprocesses, environment or wall clock in here: time and
prices come in as arguments. Everything that trades (the daemon, a
manual trade, a replay) calls ``engine.step``, spot and options alike.
"""

from scheduler.engine.option_fills import (
           OptionIntent,
           OptionLeg,
           OptionLimits,
           OptionMark,
           OptionRules,
)
from scheduler.engine.step import SleeveRules, SpotIntent, step

__all__ = ["OptionIntent", "OptionLeg", "OptionLimits", "OptionMark", "OptionRules", "SleeveRules", "SpotIntent",
           "step"]
