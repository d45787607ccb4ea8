"""Spot strategies and their indicators: pure functions from closed candles to signals.

Public API (what checkers/check_strategy.py and any replay call):

- ``signal_series(name, candles, params=None, candles_b=None) -> SignalSeries``
- ``evaluate(name, candles, params=None, candles_b=None) -> Evaluation``
- ``min_bars(name, params=None) -> int``, ``recommended_bars(name, params=None) -> int``
- ``STRATEGY_NAMES``, ``describe()`` (the ``list-strategies`` table)

Importing this package costs numpy and the standard library only.
Indicators live in ``strategies.indicators``; names and defaults in ``strategies.catalog``.
"""

from typing import Any

from strategies.catalog import CATALOG, describe, validate_params

_API = ("STRATEGY_NAMES", "Evaluation", "SignalSeries", "evaluate", "min_bars", "recommended_bars", "signal_series")


def __getattr__(name: str) -> Any:
    """The numpy-backed API loads on first use, so ``strategies.catalog`` (imported by the
    daemon's config validation) stays free of numpy."""
    if name in _API:
        from strategies import api

        return getattr(api, name)
    raise AttributeError(f"module 'strategies' has no attribute {name!r}")


__all__ = ["CATALOG", "describe", "validate_params", *_API]
