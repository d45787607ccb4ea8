"""The walk-forward's runner over a real config: a picklable callable (it crosses process and
Dask boundaries) that replays one strategy of the config with a parameter set on a range.

A walk-forward runs the same few ranges with many parameter sets, so each process opens the
config's market source once per runner and reads each distinct candle request once
(``_ReadOnce``): the key is the request itself (symbol, timeframe, end, count) under the
runner's market section, base folder and ``cache_token``. The token is drawn when the runner
is made, so a new runner (a new walk-forward) reads the data afresh, even in a long-lived
Dask worker; parameters never touch the data. Only the net run is replayed (the walk-forward
scores net; no gross twin).
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtest.result import BacktestResult

_SOURCES_KEPT = 4  # open (source, options source) pairs per process, least recently used dropped
_READS_KEPT = 64  # candle requests kept per source (a year of 1h candles is about 0.4 MB)


class _ReadOnce:
    """A market source whose candle and market-rules reads are each made once and served
    again (the arrays frozen, so a caller cannot change what the next job reads); every
    other attribute is the source's."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._reads: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.reads = self.hits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def _once(self, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
        if key in self._reads:
            self.hits += 1
            self._reads.move_to_end(key)
            return self._reads[key]
        value = read()
        self.reads += 1
        self._reads[key] = value
        if len(self._reads) > _READS_KEPT:
            self._reads.popitem(last=False)
        return value

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Any:
        def read() -> Any:
            candles = self._source.fetch_candles(symbol, timeframe, now_ms=now_ms, limit=limit)
            for name in ("ts_ms", "open", "high", "low", "close", "volume"):
                getattr(candles, name).flags.writeable = False
            return candles

        return self._once(("candles", symbol, timeframe, int(now_ms), int(limit)), read)

    def fetch_market_rules(self, symbols: Sequence[str]) -> Any:
        rules = self._once(("rules", tuple(symbols)), lambda: self._source.fetch_market_rules(list(symbols)))
        return dict(rules)

    def close(self) -> None:
        self._reads.clear()
        self._source.close()


#: this process's open sources: key (token, base folder, market section, strategy type) -> pair
_OPEN: OrderedDict[str, tuple[_ReadOnce, Any]] = OrderedDict()


def cache_stats() -> dict[str, int]:
    """This process's source cache: sources open, candle/rules reads made and served again."""
    return {"sources": len(_OPEN), "reads": sum(s.reads for s, _ in _OPEN.values()),
            "hits": sum(s.hits for s, _ in _OPEN.values())}


def clear_cache() -> None:
    """Close and forget this process's sources."""
    while _OPEN:
        _close(_OPEN.popitem()[1])


def _close(pair: tuple[_ReadOnce, Any]) -> None:
    source, options_source = pair
    source.close()
    if options_source is not None:
        options_source.close()


@dataclass(frozen=True)
class ConfigRunner:
    """``run(params, start_ms, end_ms)`` for backtest.walkforward: the strategy ``strategy_id``
    of the config (as its JSON document, so it pickles) with ``params`` over its own; the net
    run (``backtest.runner.run`` without the gross one)."""

    config_doc: dict[str, Any]
    strategy_id: str
    base_dir: str
    cache_token: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False, repr=False)

    def __call__(self, params: dict[str, Any], start_ms: int, end_ms: int) -> BacktestResult:
        from backtest.runner import find_strategy, run

        config = self._config(params)
        source, options_source = self._sources(config)
        net, _ = run(config, find_strategy(config, self.strategy_id), source, start_ms, end_ms,
                     options_source=options_source, with_gross=False)
        return net

    def warm_up(self) -> None:
        """Import what a run needs and open the source (a pool calls this in each worker
        before the first job)."""
        self._sources(self._config({}))

    def _config(self, params: dict[str, Any]) -> Any:
        from scheduler.config import parse_config

        s_doc = next(s for s in self.config_doc["strategies"] if s["id"] == self.strategy_id)
        doc = {**self.config_doc, "strategies": [{**s_doc, "params": {**s_doc.get("params", {}), **params}}]}
        return parse_config(doc, base_dir=Path(self.base_dir))

    def _sources(self, config: Any) -> tuple[_ReadOnce, Any]:
        """This process's open sources for the config's market (opened on first use)."""
        from backtest.cli import open_sources

        key = json.dumps([self.cache_token, self.base_dir, config.market.model_dump(mode="json"),
                          [s.type for s in config.strategies]], sort_keys=True)
        pair = _OPEN.get(key)
        if pair is None:
            source, options_source = open_sources(config, Path(self.base_dir))
            pair = _OPEN[key] = (_ReadOnce(source), options_source)
            while len(_OPEN) > _SOURCES_KEPT:
                _close(_OPEN.popitem(last=False)[1])
        _OPEN.move_to_end(key)
        return pair
