"""A config built from command-line flags instead of a file (``go-trader paper`` and
``go-trader backtest`` without ``--config``): the same document a file would hold, validated
the same way (``scheduler.config.parse_config``). Its own module, so the backtester can use it
without importing the CLI (the CLI imports the backtester: that edge goes one way)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from scheduler.engine.errors import ConfigError


def market_from_flags(source: str, data_root: Path | None, seed: int = 42) -> dict:
    """The config's ``market`` section for ``--source`` (and ``--data-root`` for files)."""
    if source == "synthetic":
        return {"source": "synthetic", "seed": seed}
    if source == "files":
        return {"source": "files", "root": str((data_root or Path("data")).resolve())}
    return {"source": "ccxt", "exchange": "binance"}


def config_from_flags(strategy: str, symbols: Sequence[str], timeframe: str, capital: float, market: dict, *,
                      params: dict | None = None, interval_s: int | None = None, state_file: str = "state.json",
                      log_dir: str = "logs") -> dict:
    """A config document for one catalog strategy on ``symbols`` (one spot strategy per symbol,
    or the pair for pairs_spread; an options strategy takes the underlying, e.g. BTC), built in
    memory and validated like a file (``scheduler.config.parse_config``)."""
    from options import OPTIONS_STRATEGIES
    from strategies.catalog import CATALOG

    base: dict = {"capital": capital}
    if params:
        base["params"] = params
    if strategy in OPTIONS_STRATEGIES:
        entries = [{"id": f"{strategy}-{u.split('/')[0].lower()}", "type": "options", "script": "check_options.py",
                    "args": [strategy, u.split("/")[0]], **base} for u in symbols]
    elif strategy in CATALOG and CATALOG[strategy].needs_second_symbol:
        if len(symbols) != 2:
            raise ConfigError([f"--symbols: {strategy} trades a pair; give two symbols, e.g. BTC/USDT,ETH/USDT"])
        entries = [{"id": f"{strategy}-{symbols[0].split('/')[0].lower()}-{symbols[1].split('/')[0].lower()}",
                    "type": "spot", "script": "check_strategy.py", "args": [strategy, symbols[0], timeframe, symbols[1]],
                    **base}]
    else:
        entries = [{"id": f"{strategy}-{sym.split('/')[0].lower()}", "type": "spot", "script": "check_strategy.py",
                    "args": [strategy, sym, timeframe], **base} for sym in symbols]
    from scheduler.engine.timeframes import TIMEFRAMES, timeframe_ms

    interval = interval_s or (timeframe_ms(timeframe) // 1000 if timeframe in TIMEFRAMES else 3600)
    return {"interval_seconds": interval, "state_file": state_file, "log_dir": log_dir, "market": market,
            "strategies": entries}


def file_path(value: str) -> Path:
    """An argparse type for an option that names a file: a path ending in a slash names a
    folder (``Path`` would drop the slash and write a file of the folder's name), so it is
    refused, saying so."""
    import argparse
    import os

    if value.endswith(("/", os.sep)) or value in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"{value!r} names a folder (it ends in a slash); give a file's name, "
                                         "in that folder or another")
    return Path(value)


def json_object(what: str = "an object", example: str = '{"fast": 10}') -> Callable[[str], dict]:
    """An argparse type for a JSON object option (--params; --walk-forward's grid): what is wrong
    with the text, in words, instead of json's own exception text."""
    import argparse
    import json

    def parse(value: str) -> dict:
        try:
            doc = json.loads(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{value!r} is not JSON ({e}); give {what} such as '{example}'") from None
        if not isinstance(doc, dict):
            raise argparse.ArgumentTypeError(f"{value!r} is JSON but not an object; give {what} such as '{example}'")
        return doc

    return parse
