"""The pure trading engine: fills, portfolio accounting and risk rules.

No network, files, subprocesses, environment or wall clock in here: time and
prices come in as arguments. Everything that trades (the daemon, a manual trade,
a replay, the backtester) calls ``scheduler.engine.step.step``, spot and options alike.

The package imports only the standard library, pydantic and itself
(tests/unit/test_layering.py). Its value modules sit below everything that uses
them: ``market_rules`` (MarketRules), ``timeframes`` and ``errors`` (the project's
error hierarchy); market/ and the checkers import those. This ``__init__`` imports
nothing, so that importing a value module does not load pydantic or the models;
import names from their modules (``from scheduler.engine.step import SpotIntent, step``).
"""
