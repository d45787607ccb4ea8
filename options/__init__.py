"""Options: pricing, greeks, implied volatility, IV rank, the six strategies and their
scoring (pure). checkers/check_options.py runs a strategy; the engine
(scheduler/engine/option_book.py) paper-trades what it proposes.
"""

#: The options strategies, by name.
OPTIONS_STRATEGIES = (
    "momentum_options", "vol_mean_reversion", "protective_puts", "covered_calls", "wheel", "butterfly",
)
#: Underlyings Deribit lists options on that the project supports.
UNDERLYINGS = ("BTC", "ETH")

#: Names re-exported lazily (PEP 562), so that ``import options`` (the config validator
#: in the daemon, which imports no numpy) stays free of numpy.
_LAZY = {
    "propose": "options.strategies", "StrategyInputs": "options.strategies",
    "Proposal": "options.strategies", "Skip": "options.strategies", "Leg": "options.strategies",
    "PARAMS": "options.params", "validate_params": "options.params", "roc_last_two": "options.strategies",
    "HeldOption": "options.scoring", "score_proposal": "options.scoring",
    "IvRank": "options.ivrank", "IvRankUnavailable": "options.ivrank", "iv_rank": "options.ivrank",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'options' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
