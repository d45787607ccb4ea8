"""The scheduler's fetch step: everything a cycle needs, fetched once.

Run as a job by the scheduler (``python -m market.prefetch``), with a JSON
request on stdin::

    {"market": {...config market section...}, "now_ms": 1700000000000,
     "pairs": [["BTC/USDT", "1h"], ...], "price_symbols": ["BTC/USDT", ...],
     "cache_dir": "/path/to/cycle/cache", "limit": 500}

It loads market rules once, fetches candles once per unique (symbol,
timeframe), fetches one ticker batch, writes them to the per-cycle cache
(market.cache) and prints one JSON document, also written to the cache as
``manifest.json``::

    {"now_ms": ..., "source": "ccxt:binance",
     "source_failed": null | {"what": "market rules", ERROR},
     "pairs": {"BTC/USDT 1h": {"ok": true, "bars": 500, "last_open_ms": ..., "gaps": 0,
                               "recent": [[ts_ms, open, high, low, close], ...]}
                              | {"ok": false, ERROR}},
     "prices": {"BTC/USDT": 67000.0 | null},
     "price_errors": {"BTC/USDX": ERROR},        # only when the batch had to be split
     "rules": {"BTC/USDT": {...MarketRules...}},
     "errors": [{"what": "market rules" | "prices", ERROR}],
     "options_source": "ccxt:deribit" | null,
     "options_source_failed": null | {"what": "option chain BTC", ERROR},
     "options": {"BTC": {"ok": true, "quotes": 812, "expiries": 11, "index_price": 70000.0,
                         "asof_ms": ..., "contract": "exchange" | "deribit default" | null,
                         "dvol": {"ok": true, "days": 399, "last_ms": ...} | {"ok": false, ERROR}}
                        | {"ok": false, ERROR}}}

where ERROR is ``"error": "TypeName: message", "error_class": "transient" |
"permanent", "error_type": "TypeName", "transient": bool``.

A pair that failed is reported with its error; it never stops the others. But when
the source gives up on its exchange (``SourceUnavailableError``: unreachable, or
failing call after call), ``source_failed`` records that error and nothing else is
asked of the source: every pair and price still missing gets the same error at once.
Checkers of the cycle read these records (market.cache_source) instead of asking the
exchange again. A price that could not be had is null, never 0.

With ``"option_underlyings": ["BTC", "ETH"]`` in the request it also fetches, once per
underlying, the whole option chain (one book-summary call on Deribit), the index (from
the chain; one index call only when the chain has none) and the trailing ``dvol_days``
(400) of daily DVOL, and writes them to ``options-<UND>.json`` in the cache
(market.options_cache). The options source has its own failure record,
``options_source_failed``, with the same rules: once it gives up, every underlying still
missing gets that error at once. A chain that failed is recorded and its DVOL is not
asked; a DVOL that failed is recorded beside a good chain. Candles an options strategy
needs (4h candles of BTC/USDT for momentum_options) come in ``pairs`` like any others.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from market.base import Candles, MarketSource, SourceUnavailableError, check_fresh
from market.cache import MANIFEST, write_candles, write_json_atomic
from market.options_cache import write_options
from market.options_data import OptionChain, OptionsSource
from scheduler.errors import ExchangeError, PermanentExchangeError, TransientExchangeError

DEFAULT_LIMIT = 500
#: days of DVOL history cached per underlying: a 365-day IV rank and some slack
DVOL_DAYS = 400
DAY_MS = 86_400_000
#: closed candles per pair returned to the scheduler (protective stops are checked against them)
BARS_REPORTED = 48


def error_entry(e: ExchangeError) -> dict[str, Any]:
    """How a failure is recorded: the message, its class (what the caller should do) and
    its type (so a checker reading the cache raises the same kind of error)."""
    transient = isinstance(e, TransientExchangeError)
    return {"error": f"{type(e).__name__}: {e}", "error_class": "transient" if transient else "permanent",
            "error_type": type(e).__name__, "transient": transient}


class _Fetch:
    """One fetch step's bookkeeping for one source: once it is down, nothing else is tried.
    ``failed_key`` is where its failure is recorded in the manifest."""

    def __init__(self, result: dict[str, Any], failed_key: str = "source_failed") -> None:
        self.result = result
        self.failed_key = failed_key

    def call(self, what: str, fn: Callable[[], Any]) -> tuple[Any, dict[str, Any] | None]:
        """(value, None), or (None, the recorded error) when it failed or the source is down."""
        down = self.result[self.failed_key]
        if down is not None:
            return None, {k: v for k, v in down.items() if k != "what"}
        try:
            return fn(), None
        except ExchangeError as e:
            entry = error_entry(e)
            if isinstance(e, SourceUnavailableError):
                self.result[self.failed_key] = {"what": what, **entry}
            return None, entry


def prefetch(
    source: MarketSource,
    pairs: Sequence[tuple[str, str]],
    price_symbols: Sequence[str],
    now_ms: int,
    cache_dir: Path,
    limit: int = DEFAULT_LIMIT,
    *,
    options_source: OptionsSource | None = None,
    option_underlyings: Sequence[str] = (),
    dvol_days: int = DVOL_DAYS,
) -> dict[str, Any]:
    """Fetch and cache one cycle's market data; returns the manifest it wrote.

    ``cache_dir`` must exist: the scheduler creates it for the cycle and removes
    it afterwards; a fetch step that outlived its scheduler must not re-create it.
    """
    if not cache_dir.is_dir():
        raise FileNotFoundError(f"cycle cache folder {cache_dir} does not exist (the cycle is over)")
    unique_pairs = sorted({(s, tf) for s, tf in pairs})
    symbols = sorted({s for s, _ in unique_pairs} | set(price_symbols))
    result: dict[str, Any] = {"now_ms": now_ms, "source": source.name, "source_failed": None, "pairs": {},
                              "prices": {}, "price_errors": {}, "rules": {}, "errors": [],
                              "options_source": None, "options_source_failed": None, "options": {}}
    fetch = _Fetch(result)
    rules, err = fetch.call("market rules", lambda: source.fetch_market_rules(symbols))
    if err is None:
        result["rules"] = {s: r.as_json() for s, r in rules.items()}
    else:
        result["errors"].append({"what": "market rules", **err})
    for symbol, tf in unique_pairs:
        key = f"{symbol} {tf}"
        candles, err = fetch.call(f"candles {key}", lambda s=symbol, t=tf: _candles(source, s, t, now_ms, limit))
        if err is not None:
            result["pairs"][key] = {"ok": False, **err}
            continue
        write_candles(cache_dir, candles)
        tail = candles.tail(BARS_REPORTED)
        result["pairs"][key] = {
            "ok": True, "bars": len(candles), "last_open_ms": int(candles.ts_ms[-1]), "gaps": len(candles.gaps),
            "recent": [[int(t), float(o), float(h), float(lo), float(c)] for t, o, h, lo, c in
                       zip(tail.ts_ms, tail.open, tail.high, tail.low, tail.close, strict=True)],
        }
    if symbols:
        _prices(fetch, source, symbols, now_ms)
    unders = list(dict.fromkeys(option_underlyings))
    if unders:
        if options_source is None:
            raise ValueError("option_underlyings given without an options_source")
        # a source serving spot and options (ccxt) names its options exchange apart
        name = getattr(options_source, "options_name", None) or getattr(options_source, "name", None)
        result["options_source"] = str(name or type(options_source).__name__)
        options_fetch = _Fetch(result, "options_source_failed")
        for u in unders:
            result["options"][u] = _options(options_fetch, options_source, u, now_ms, cache_dir, dvol_days)
    write_json_atomic(cache_dir / MANIFEST, result)
    return result


def _options(fetch: _Fetch, source: OptionsSource, underlying: str, now_ms: int, cache_dir: Path,
             dvol_days: int) -> dict[str, Any]:
    """Fetch one underlying's chain, index and DVOL, write them, return its manifest entry."""
    if not (underlying.isascii() and underlying.isalnum() and underlying.isupper()):
        err = PermanentExchangeError(f"option underlying {underlying!r} is not a coin code such as 'BTC'")
        return {"ok": False, **error_entry(err)}
    chain, err = fetch.call(f"option chain {underlying}",
                            lambda: source.fetch_option_chain(underlying, now_ms=now_ms))
    if err is not None:
        return {"ok": False, **err}
    assert isinstance(chain, OptionChain)
    if chain.index_price is None:  # the chain's rows carry the index; ask only when they did not
        index, _ = fetch.call(f"index price {underlying}", lambda: source.fetch_index_price(underlying))
        if index is not None:
            chain = replace(chain, index_price=_positive(index))
    start_ms = now_ms - dvol_days * DAY_MS
    closes, err = fetch.call(f"DVOL {underlying}",
                             lambda: source.fetch_dvol(underlying, start_ms=start_ms, end_ms=now_ms))
    dvol: dict[str, Any] = {"start_ms": start_ms, "end_ms": now_ms}
    if err is None:
        dvol["closes"] = [[int(t), float(c)] for t, c in closes]
        summary = {"ok": True, "days": len(closes), "last_ms": int(closes[-1][0]) if closes else None}
    else:
        dvol.update(err)
        summary = {"ok": False, **err}
    write_options(cache_dir, chain, str(fetch.result["options_source"]), dvol)
    return {"ok": True, "quotes": len(chain.quotes), "expiries": len(chain.expiries_ms()),
            "index_price": chain.index_price, "asof_ms": chain.asof_ms,
            "contract": chain.contract.source if chain.contract is not None else None, "dvol": summary}


def _candles(source: MarketSource, symbol: str, tf: str, now_ms: int, limit: int) -> Candles:
    candles = source.fetch_candles(symbol, tf, now_ms=now_ms, limit=limit)
    check_fresh(candles, now_ms)
    return candles


def _prices(fetch: _Fetch, source: MarketSource, symbols: list[str], now_ms: int) -> None:
    """One batch; when the batch is refused permanently (a symbol the source does not
    have), each symbol alone, so one bad symbol does not leave every mark unpriced."""
    result = fetch.result
    prices, err = fetch.call("prices", lambda: source.fetch_prices(symbols, now_ms=now_ms))
    if err is not None and err["error_class"] == "permanent" and len(symbols) > 1:
        prices = {}
        for s in symbols:
            one, one_err = fetch.call(f"price {s}", lambda s=s: source.fetch_prices([s], now_ms=now_ms))
            if one_err is None:
                prices[s] = one.get(s)
            else:
                result["price_errors"][s] = one_err
    elif err is not None:
        result["errors"].append({"what": "prices", **err})
        prices = {}
    result["prices"] = {s: _positive(prices.get(s)) for s in symbols}


def _positive(p: Any) -> float | None:
    return float(p) if isinstance(p, (int, float)) and math.isfinite(p) and p > 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    from market.sources import open_options_source, open_source

    request = json.loads(sys.stdin.read())
    spec = request["market"]
    unders = [str(u) for u in request.get("option_underlyings") or []]
    source = open_source(spec)
    # ccxt serves both from one client pair (each exchange keeps its own breaker)
    options = (source if spec.get("source") == "ccxt" else open_options_source(spec)) if unders else None
    try:
        result = prefetch(
            source, [tuple(p) for p in request["pairs"]], request["price_symbols"],
            int(request["now_ms"]), Path(request["cache_dir"]), int(request.get("limit", DEFAULT_LIMIT)),
            options_source=options, option_underlyings=unders,
        )
    finally:
        source.close()
        if options is not None and options is not source:
            options.close()
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
