"""The walk-forward's runner over a real config: a picklable callable (it crosses process and
Dask boundaries) that replays one strategy of the config with a parameter set on a range."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtest.result import BacktestResult


@dataclass(frozen=True)
class ConfigRunner:
    """``run(params, start_ms, end_ms)`` for backtest.walkforward: the strategy ``strategy_id``
    of the config (as its JSON document, so it pickles) with ``params`` over its own."""

    config_doc: dict[str, Any]
    strategy_id: str
    base_dir: str

    def __call__(self, params: dict[str, Any], start_ms: int, end_ms: int) -> BacktestResult:
        from backtest.cli import open_sources
        from backtest.runner import find_strategy, run
        from scheduler.config import parse_config

        s_doc = next(s for s in self.config_doc["strategies"] if s["id"] == self.strategy_id)
        doc = {**self.config_doc, "strategies": [{**s_doc, "params": {**s_doc.get("params", {}), **params}}]}
        config = parse_config(doc, base_dir=Path(self.base_dir))
        source, options_source = open_sources(config, Path(self.base_dir))
        try:
            net, _ = run(config, find_strategy(config, self.strategy_id), source, start_ms, end_ms,
                         options_source=options_source)
        finally:
            source.close()
            if options_source is not None:
                options_source.close()
        return net
