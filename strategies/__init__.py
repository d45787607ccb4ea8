"""Spot strategies and their indicators: pure functions from closed candles to signals.

Public API (what checkers/check_strategy.py and the backtester call):

- ``signal_series(name, candles, params=None, candles_b=None) -> SignalSeries``
- ``evaluate(name, candles, params=None, candles_b=None) -> Evaluation``
- ``min_bars(name, params=None) -> int``, ``recommended_bars(name, params=None) -> int``
- ``STRATEGY_NAMES``, ``describe()`` (the ``list-strategies`` table)

Importing this package costs numpy and the standard library only.
Indicators live in ``strategies.indicators``; names and defaults in ``strategies.catalog``.
"""

from strategies.api import (
    STRATEGY_NAMES,
    Evaluation,
    SignalSeries,
    evaluate,
    min_bars,
    recommended_bars,
    signal_series,
)
from strategies.catalog import CATALOG, describe, validate_params

__all__ = [
    "CATALOG",
    "STRATEGY_NAMES",
    "Evaluation",
    "SignalSeries",
    "describe",
    "evaluate",
    "min_bars",
    "recommended_bars",
    "signal_series",
    "validate_params",
]
