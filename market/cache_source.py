"""A checker's market while a cycle runs: the fetch step's cache first, the real source
only for what the fetch step never asked.

What the fetch step (market.prefetch) got is served from the cycle's cache. What it
tried and failed to get is failed again at once with the recorded error, of the same
type and class, and never fetched again: when the exchange is down, twenty checkers
must not each spend a retry budget finding that out. When the fetch step recorded that
the whole source failed (``source_failed``), everything not in the cache fails at
once. Only data the fetch step was never asked for (or a cycle whose fetch step wrote
no manifest) goes to the real source, opened lazily.

Options (OptionsSource: chain, index, DVOL) follow the same rules with their own records:
an underlying's entry in the manifest's ``options``, then ``options_source_failed``, then,
for a manifest without option records at all (the daemon's record of a fetch step that
failed), ``source_failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from market.base import Candles, MarketSource, SourceUnavailableError
from market.cache import read_candles, read_manifest
from market.options_cache import chain_from_json, read_options
from options.chain import OptionChain
from scheduler.engine.errors import (
    DataError,
    ExchangeError,
    PermanentExchangeError,
    TransientExchangeError,
)
from scheduler.engine.market_rules import MarketRules

_TYPES: dict[str, type[ExchangeError]] = {
    cls.__name__: cls
    for cls in (SourceUnavailableError, TransientExchangeError, PermanentExchangeError, DataError)
}


def recorded_error(entry: Mapping[str, Any], what: str, source: str) -> ExchangeError:
    """The error a fetch-step record describes, raised again for ``what``: same type when
    known, else the recorded class (transient or permanent)."""
    cls = _TYPES.get(str(entry.get("error_type")))
    if cls is None:
        cls = TransientExchangeError if entry.get("error_class") == "transient" else PermanentExchangeError
    return cls(
        f"the fetch step of this cycle failed to get {what} from {source}, so it is not asked "
        f"again this cycle: {entry.get('error', 'no detail recorded')}"
    )


class CycleCacheSource:
    """MarketSource over one cycle's cache (see the module docstring)."""

    def __init__(self, cache_dir: Path | None, open_source: Callable[[], MarketSource],
                 open_options_source: Callable[[], Any] | None = None) -> None:
        """``open_options_source`` opens the real OptionsSource (market.sources.
        open_options_source); without it, the market source serves options when it can.
        ``cache_dir`` None: no cache (a checker run by hand), everything from the real sources."""
        self.cache_dir = cache_dir
        self._open_source = open_source
        self._open_options = open_options_source
        self._source: MarketSource | None = None
        self._options: Any = None
        self._manifest = read_manifest(cache_dir) if cache_dir is not None else None
        self._named = (self._manifest or {}).get("source")

    @property
    def name(self) -> str:
        """The fetch step's source name; without a manifest, the real source's once opened."""
        if self._named is not None:
            return str(self._named)
        return str(getattr(self._source, "name", None) or getattr(self._options, "name", None) or "cycle cache")

    def _live(self) -> MarketSource:
        if self._source is None:
            self._source = self._open_source()
        return self._source

    def _failure(self, entry: Mapping[str, Any] | None, what: str) -> ExchangeError | None:
        """The recorded failure for ``what``: its own record, else the source's."""
        m = self._manifest or {}
        if isinstance(entry, Mapping) and entry.get("error"):
            return recorded_error(entry, what, self.name)
        down = m.get("source_failed")
        return recorded_error(down, what, self.name) if isinstance(down, Mapping) else None

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        cached = read_candles(self.cache_dir, symbol, timeframe) if self.cache_dir is not None else None
        if cached is not None:
            return cached.closed_at(now_ms).tail(limit)
        if self._manifest is not None:
            pair = (self._manifest.get("pairs") or {}).get(f"{symbol} {timeframe}")
            failure = self._failure(pair, f"candles {symbol} {timeframe}")
            if failure is not None:
                raise failure
        return self._live().fetch_candles(symbol, timeframe, now_ms=now_ms, limit=limit)

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        """The fetch step's prices (null stays null: it was asked and had none); a recorded
        failure of any of ``symbols`` is raised; symbols it never asked go to the source."""
        if self._manifest is None:
            return self._live().fetch_prices(symbols, now_ms=now_ms)
        m = self._manifest
        cached = m.get("prices") or {}
        batch = next((e for e in m.get("errors") or [] if e.get("what") == "prices"), None)
        failed: dict[int, tuple[Mapping[str, Any], list[str]]] = {}  # one error per record
        for s in symbols:
            if cached.get(s) is not None:
                continue
            if s in (m.get("price_errors") or {}):
                entry = m["price_errors"][s]
            elif s in cached:  # asked: the batch failed, or the source had no price for it
                entry = batch
            else:  # never asked: only a failure of the whole source applies
                entry = m.get("source_failed")
            if isinstance(entry, Mapping):
                failed.setdefault(id(entry), (entry, []))[1].append(s)
        if failed:
            raise _combined([recorded_error(e, f"the price of {', '.join(syms)}", self.name)
                             for e, syms in failed.values()])
        out: dict[str, float | None] = {s: cached.get(s) for s in symbols}
        unasked = [s for s in symbols if s not in cached]
        if unasked:
            out.update(self._live().fetch_prices(unasked, now_ms=now_ms))
        return out

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        if self._manifest is None:
            return self._live().fetch_market_rules(symbols)
        cached = self._manifest.get("rules") or {}
        unasked = [s for s in symbols if s not in cached]
        if unasked:
            batch = next((e for e in self._manifest.get("errors") or [] if e.get("what") == "market rules"), None)
            failure = self._failure(batch, f"the market rules of {', '.join(unasked)}")
            if failure is not None:
                raise failure
        out = {s: MarketRules.from_json(cached[s]) for s in symbols if s in cached}
        if unasked:
            out.update(self._live().fetch_market_rules(unasked))
        return out

    # --- options (OptionsSource) ---

    def _live_options(self) -> Any:
        if self._options is None:
            if self._open_options is not None:
                self._options = self._open_options()
            else:
                live = self._live()
                if not hasattr(live, "fetch_option_chain"):
                    raise PermanentExchangeError(
                        f"{getattr(live, 'name', 'the market source')} has no option chains and no "
                        "options source was given (pass open_options_source)")
                self._options = live
        return self._options

    def _options_failure(self, underlying: str, what: str) -> ExchangeError | None:
        m = self._manifest or {}
        source = str(m.get("options_source") or self.name)
        entry = (m.get("options") or {}).get(underlying)
        if isinstance(entry, Mapping) and entry.get("error"):
            return recorded_error(entry, what, source)
        down = m.get("options_source_failed")
        if not isinstance(down, Mapping) and "options" not in m:
            down = m.get("source_failed")  # the fetch step itself failed: nothing was fetched
        return recorded_error(down, what, source) if isinstance(down, Mapping) else None

    def _cached_options(self, underlying: str, what: str) -> dict[str, Any] | None:
        """The cached document, None when it must come from the real source; raises the
        recorded failure."""
        doc = (read_options(self.cache_dir, underlying)
               if self.cache_dir is not None and underlying.isalnum() else None)
        if doc is not None or self._manifest is None:
            return doc
        failure = self._options_failure(underlying, what)
        if failure is not None:
            raise failure
        return None

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> OptionChain:
        """The fetch step's chain (without options expired by ``now_ms``)."""
        doc = self._cached_options(underlying, f"the option chain of {underlying}")
        if doc is None:
            return self._live_options().fetch_option_chain(underlying, now_ms=now_ms)
        chain = chain_from_json(doc)
        if now_ms == chain.now_ms:
            return chain
        return replace(chain, now_ms=now_ms, quotes=tuple(q for q in chain.quotes if q.expiry_ms > now_ms))

    def fetch_index_price(self, underlying: str) -> float | None:
        """The fetch step's index (None stays None: it was asked and had none)."""
        doc = self._cached_options(underlying, f"the index price of {underlying}")
        if doc is None:
            return self._live_options().fetch_index_price(underlying)
        price = doc.get("index_price")
        return float(price) if price is not None else None

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """The fetch step's DVOL closes within ``[start_ms, end_ms]`` of days closed by
        ``end_ms``; a range beyond what it fetched goes to the real source."""
        doc = self._cached_options(underlying, f"the DVOL of {underlying}")
        dvol = (doc or {}).get("dvol")
        if isinstance(dvol, Mapping) and dvol.get("error"):
            raise recorded_error(dvol, f"the DVOL of {underlying}",
                                 str(doc.get("source") if doc else self.name))
        if not isinstance(dvol, Mapping) or start_ms < dvol["start_ms"] or end_ms > dvol["end_ms"]:
            return self._live_options().fetch_dvol(underlying, start_ms=start_ms, end_ms=end_ms)
        day_ms = 86_400_000
        return [(int(t), float(c)) for t, c in dvol["closes"] if start_ms <= t and t + day_ms <= end_ms]

    def close(self) -> None:
        if self._options is not None and self._options is not self._source:
            close = getattr(self._options, "close", None)
            if close is not None:
                close()
        self._options = None
        if self._source is not None:
            self._source.close()
            self._source = None


def _combined(failures: list[ExchangeError]) -> ExchangeError:
    """One error for several: their type when they share one, else transient only when
    every one is (otherwise retrying cannot fix it)."""
    if len(failures) == 1:
        return failures[0]
    types = {type(f) for f in failures}
    if len(types) == 1:
        cls = types.pop()
    elif all(isinstance(f, TransientExchangeError) for f in failures):
        cls = TransientExchangeError
    else:
        cls = PermanentExchangeError
    return cls("; ".join(str(f) for f in failures))
