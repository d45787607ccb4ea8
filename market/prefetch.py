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
     "prices": {"BTC/USDT": 67000.0 | null},     # the mark: the ticker's last price
     "quotes": {"BTC/USDT": {"bid": ..., "ask": ..., "last": ..., "at_ms": ...} | null},
     "price_errors": {"BTC/USDX": ERROR},        # only when the batch had to be split
     "rules": {"BTC/USDT": {...MarketRules...}},
     "errors": [{"what": "market rules" | "prices", ERROR}],
     "options_source": "ccxt:deribit" | null,
     "options_source_failed": null | {"what": "option chain BTC", ERROR},
     "options": {"BTC": {"ok": true, "quotes": 812, "expiries": 11, "index_price": 70000.0,
                         "asof_ms": ..., "contract": "exchange" | "deribit default" | null,
                         "dvol": {"ok": true, "days": 399, "last_ms": ...} | {"ok": false, ERROR}}
                        | {"ok": false, ERROR}},
     "deliveries": {"BTC": {"<expiry_ms>": {"ok": true, "price": 70123.4, "method": "..."}
                                           | {"ok": false, ERROR}}}}

where ERROR is ``"error": "TypeName: message", "error_class": "transient" |
"permanent", "error_type": "TypeName", "transient": bool``.

A pair that failed is reported with its error; it never stops the others. But when
the source gives up on its exchange (``SourceUnavailableError``: unreachable, or
failing call after call), ``source_failed`` records that error and nothing else is
asked of the source: every pair and price still missing gets the same error at once.
Checkers of the cycle read these records (market.cache_source) instead of asking the
exchange again. A price that could not be had is null, never 0.

``quotes`` are what an order fills at (README "Paper execution"): the ticker's bid and ask
where the source has them (ccxt), its last price, and when they were current. The synthetic
and files sources replay history: their quote at ``now_ms`` is the open of the candle
starting at the clock time, bid = ask = last.

With ``"option_underlyings": ["BTC", "ETH"]`` in the request it also fetches, once per
underlying, the whole option chain (one book-summary call on Deribit), the index (from
the chain; one index call only when the chain has none) and the trailing ``dvol_days``
(400) of daily DVOL, and writes them to ``options-<UND>.json`` in the cache
(market.options_cache). The options source has its own failure record,
``options_source_failed``, with the same rules: once it gives up, every underlying still
missing gets that error at once. A chain that failed is recorded and its DVOL is not
asked; a DVOL that failed is recorded beside a good chain. Candles an options strategy
needs (4h candles of BTC/USDT for momentum_options) come in ``pairs`` like any others.

With ``"deliveries": {"BTC": [expiry_ms, ...]}`` (expiries, 08:00 UTC, at or before
``now_ms``, of held options to settle) it finds each one's delivery price, in this order,
and says in ``method`` which it is:

1. the options exchange's own (``fetch_delivery_price`` of the options source: Deribit's
   ``public/get_delivery_prices`` through ccxt; the files and synthetic options sources
   have none);
2. else the mean of the closes of the market source's ``<UND>/USDT`` candles opening in the
   30 minutes before expiry, from 1m candles, else 5m, else 15m
   (market.delivery.delivery_from_candles: the window exactly covered, or not used). ccxt
   is asked for that range (``fetch_ohlcv_range``), the files and synthetic sources for the
   candles closed at expiry. This is spot of one exchange, not Deribit's index: close to,
   not equal to, the exchange's price;
3. else ``{"ok": false, ERROR}`` naming every step tried and why it failed (transient when
   one of them was, or the window was incomplete less than 15 minutes after expiry, so the
   next cycle tries again). Never a guessed price.

The options source's calls go through ``options_source_failed`` and the candles through
``source_failed``, so a source that gave up is not asked again: an exchange price that
could not be had falls back to candles, and when both are down every expiry fails at once.
An expiry that is not 08:00 UTC, lies after ``now_ms`` or has a bad underlying is recorded
as a permanent error under its own key; a ``deliveries`` that is not ``{str: [..]}`` is a
ValueError.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from market.base import Candles, MarketSource, SourceUnavailableError, check_fresh
from market.cache import MANIFEST, write_candles, write_json_atomic
from market.delivery import (
    WINDOW_MS,
    delivery_date,
    delivery_from_candles,
    is_expiry_ms,
    next_date,
    utc_text,
    window_bars,
)
from market.options_cache import write_options
from market.options_data import OptionsSource
from market.quotes import Quote
from options.chain import OptionChain
from options.chain_greeks import fill_model_greeks
from scheduler.engine.errors import (
    DataError,
    ExchangeError,
    PermanentExchangeError,
    TransientExchangeError,
)
from scheduler.engine.timeframes import DAY_MS, TIMEFRAMES, timeframe_ms

DEFAULT_LIMIT = 500
#: days of DVOL history cached per underlying: a 365-day IV rank and some slack
DVOL_DAYS = 400
#: closed candles per pair returned to the scheduler (protective stops are checked against them)
BARS_REPORTED = 48
#: candles a delivery price may be averaged from when the exchange has none, finest first
DELIVERY_TIMEFRAMES = ("1m", "5m", "15m")
#: an expiry this recent whose candle window is incomplete may still get its last bars
RECENT_EXPIRY_MS = 15 * 60_000
#: how long after expiry the exchange's own delivery price is waited for before the spot fallback
EXCHANGE_DELIVERY_GRACE_MS = 60 * 60_000


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
    deliveries: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Fetch and cache one cycle's market data; returns the manifest it wrote.

    ``cache_dir`` must exist: the scheduler creates it for the cycle and removes
    it afterwards; a fetch step that outlived its scheduler must not re-create it.
    """
    if not cache_dir.is_dir():
        raise FileNotFoundError(f"cycle cache folder {cache_dir} does not exist (the cycle is over)")
    wanted = _delivery_request(deliveries)
    unique_pairs = sorted({(s, tf) for s, tf in pairs})
    symbols = sorted({s for s, _ in unique_pairs} | set(price_symbols))
    result: dict[str, Any] = {"now_ms": now_ms, "source": source.name, "source_failed": None, "pairs": {},
                              "prices": {}, "quotes": {}, "price_errors": {}, "rules": {}, "errors": [],
                              "options_source": None, "options_source_failed": None, "options": {},
                              "deliveries": {}}
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
    for u, expiries in wanted.items():
        result["deliveries"][u] = {
            str(key): _delivery(fetch, source, options_source, u, expiry, now_ms) for key, expiry in expiries
        }
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
    # the whole-chain call carries no greeks (Deribit's book summary): Black-76 at mark IV fills them
    chain, model_greeks = fill_model_greeks(chain)
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
            "contract": chain.contract.source if chain.contract is not None else None, "dvol": summary,
            "model_greeks": model_greeks}


def _delivery_request(deliveries: Mapping[str, Sequence[Any]] | None) -> dict[str, list[tuple[Any, Any]]]:
    """``{underlying: [(manifest key, expiry), ...]}`` from the request's ``deliveries``, each
    expiry once. An integral float is taken as its integer (JSON has one number type); any
    other value is kept to be reported in its entry. A request of the wrong shape is a
    ValueError: it is the daemon's bug, and the message says what was expected."""
    if deliveries is None:
        return {}
    if not isinstance(deliveries, Mapping):
        raise ValueError(f"request 'deliveries' must be an object like {{\"BTC\": [expiry_ms, ...]}}, "
                         f"got {type(deliveries).__name__}: {str(deliveries)[:100]}")
    out: dict[str, list[tuple[Any, Any]]] = {}
    for u, expiries in deliveries.items():
        if isinstance(expiries, (str, bytes)) or not isinstance(expiries, Sequence):
            raise ValueError(f"request 'deliveries'[{u!r}] must be a list of expiry times (integer ms), "
                             f"got {type(expiries).__name__}: {str(expiries)[:100]}")
        keyed: dict[str, Any] = {}
        for e in expiries:
            if isinstance(e, float) and e.is_integer():
                e = int(e)
            keyed.setdefault(str(e), e)
        if keyed:
            out[str(u)] = list(keyed.items())
    return out


def _delivery(fetch: _Fetch, source: MarketSource, options_source: Any, underlying: str, expiry_ms: Any,
              now_ms: int) -> dict[str, Any]:
    """One expiry's delivery price: the options exchange's own, else the mean of the spot
    closes of the 30 minutes before expiry (1m, then 5m, then 15m candles of the market
    source), else an error saying what was tried and why each failed. Never a guess."""
    bad = _bad_expiry(underlying, expiry_ms, now_ms)
    if bad is not None:
        return {"ok": False, **error_entry(bad)}
    date = delivery_date(expiry_ms)
    tried: list[str] = []
    transient = False
    fetch_price = getattr(options_source, "fetch_delivery_price", None)
    name = str(getattr(options_source, "options_name", None) or getattr(options_source, "name", None)
               or type(options_source).__name__)
    if fetch_price is not None:
        options_fetch = _Fetch(fetch.result, "options_source_failed")
        price, err = options_fetch.call(f"delivery price {underlying} {date}",
                                        lambda: fetch_price(underlying, expiry_ms))
        if err is None and _positive(price) is not None:
            return {"ok": True, "price": float(price),
                    "method": f"{name} delivery price of {underlying} on {date} (the exchange's own: "
                              "its index averaged over 07:30-08:00 UTC)"}
        transient |= bool(err and err["transient"])
        if err is None and now_ms - expiry_ms < EXCHANGE_DELIVERY_GRACE_MS:
            # just after expiry the exchange may not have published its price yet: wait for it
            # rather than settle for good on the spot approximation
            wait = TransientExchangeError(
                f"{name} has not published the delivery price of {underlying} on {date} yet; asked again next "
                f"cycle (after {EXCHANGE_DELIVERY_GRACE_MS // 60_000} minutes the spot candles are used)")
            return {"ok": False, **error_entry(wait)}
        tried.append(f"{name} delivery price: {err['error'] if err else f'no record for {date}'}")
    elif options_source is not None:
        tried.append(f"{name} has no exchange delivery prices")
    symbol = f"{underlying}/USDT"
    span = f"{utc_text(expiry_ms - WINDOW_MS)[11:16]}-{utc_text(expiry_ms)[11:]}"
    failures: dict[str, list[str]] = {}  # reason -> timeframes, so one reason is said once
    for tf in DELIVERY_TIMEFRAMES:
        tf_ms = timeframe_ms(tf)
        rows, err = fetch.call(f"delivery candles {symbol} {tf}",
                               lambda t=tf: _window_rows(source, symbol, t, expiry_ms, now_ms))
        if err is not None:
            transient |= err["transient"]
            failures.setdefault(err["error"], []).append(tf)
            continue
        price = delivery_from_candles(rows, expiry_ms, tf_ms)
        n = window_bars(tf_ms)
        if price is not None:
            method = f"average of {n} {tf} closes of {symbol} from {source.name} (spot, not Deribit's index) {span}"
            return {"ok": True, "price": price, "method": method + (f"; {tried[0]}" if fetch_price else "")}
        have = sorted({int(r[0]) for r in rows if expiry_ms - WINDOW_MS <= r[0] < expiry_ms})
        # just after expiry the newest bars may not be published yet: worth asking again
        transient |= now_ms - expiry_ms < RECENT_EXPIRY_MS
        failures.setdefault(f"{len(have)} of the {n} bars opening {span} on {date} (opens "
                            f"{[utc_text(t)[11:16] for t in have]}): the window is not covered", []).append(tf)
    tried += [f"{', '.join(tfs)} candles of {symbol}: {why}" for why, tfs in failures.items()]
    cls = TransientExchangeError if transient else DataError
    err_ = cls(f"no delivery price for {underlying} options expired {utc_text(expiry_ms)} ({expiry_ms}): "
               + "; ".join(tried) + _files_hint(source, symbol, expiry_ms))
    return {"ok": False, **error_entry(err_)}


def _files_hint(source: MarketSource, symbol: str, expiry_ms: int) -> str:
    """For a files source without 1m/5m/15m files: which timeframes it has, and the download
    that would do."""
    folder = getattr(source, "folder", None)
    download_hint = getattr(source, "download_hint", None)
    if folder is None or download_hint is None:
        return ""
    from market.files_source import find_candle_file  # only here: it imports pandas

    have = [tf for tf in TIMEFRAMES if find_candle_file(Path(folder), symbol, tf) is not None]
    if set(have) & set(DELIVERY_TIMEFRAMES):
        return ""  # it has fine candles: their errors above say what is wrong with them
    has = f"{source.name} has {symbol} candles of {', '.join(have)} only" if have else \
        f"{source.name} has no {symbol} candles"
    hint = str(download_hint([symbol], ["1m"], expiry_ms - WINDOW_MS))
    if hint.startswith("get it with: "):  # the command: one day of 1m candles is enough
        hint += f" --until {next_date(delivery_date(expiry_ms))}"
    return (f". {has}, and a delivery price needs candles of 15m or finer (1m or 5m best): "
            f"`go-trader download-data` can fetch 1m or 5m candles; {hint}")


def _bad_expiry(underlying: str, expiry_ms: Any, now_ms: int) -> ExchangeError | None:
    if not (underlying.isascii() and underlying.isalnum() and underlying.isupper()):
        return PermanentExchangeError(f"delivery underlying {underlying!r} is not a coin code such as 'BTC'")
    if not is_expiry_ms(expiry_ms):
        return PermanentExchangeError(
            f"delivery expiry {expiry_ms!r} of {underlying} is not an expiry: expected integer ms at 08:00 UTC "
            f"(Deribit's expiry time, ms % 86400000 == 28800000), as the position's expiry gives it")
    if expiry_ms > now_ms:
        return PermanentExchangeError(
            f"delivery expiry {utc_text(expiry_ms)} ({expiry_ms}) of {underlying} is after now "
            f"({now_ms}): it has not expired, so there is no delivery price yet")
    return None


def _window_rows(source: MarketSource, symbol: str, tf: str, expiry_ms: int, now_ms: int) -> list[list[Any]]:
    """The candles of ``symbol`` opening in the 30 minutes before ``expiry_ms``. A source with
    ``fetch_ohlcv_range`` (ccxt) is asked for exactly that range (its ``fetch_candles`` gives
    the latest candles only); the others are time-addressable: the last ones closed at expiry."""
    start_ms = expiry_ms - WINDOW_MS
    ranged = getattr(source, "fetch_ohlcv_range", None)
    if ranged is not None:
        pages = list(ranged(symbol, tf, start_ms=start_ms, end_ms=expiry_ms, now_ms=now_ms))
    else:
        pages = [source.fetch_candles(symbol, tf, now_ms=expiry_ms, limit=window_bars(timeframe_ms(tf)))]
    return [[int(t), float(o), float(h), float(lo), float(c)] for page in pages
            for t, o, h, lo, c in zip(page.ts_ms, page.open, page.high, page.low, page.close, strict=True)]


def _candles(source: MarketSource, symbol: str, tf: str, now_ms: int, limit: int) -> Candles:
    candles = source.fetch_candles(symbol, tf, now_ms=now_ms, limit=limit)
    check_fresh(candles, now_ms)
    return candles


def _prices(fetch: _Fetch, source: MarketSource, symbols: list[str], now_ms: int) -> None:
    """One ticker batch: ``quotes`` (bid, ask, last, as of when) and ``prices`` (the last, the
    mark). When the batch is refused permanently (a symbol the source does not have), each
    symbol alone, so one bad symbol does not leave every mark unpriced."""
    result = fetch.result
    quotes, err = fetch.call("prices", lambda: _quotes(source, symbols, now_ms))
    if err is not None and err["error_class"] == "permanent" and len(symbols) > 1:
        quotes = {}
        for s in symbols:
            one, one_err = fetch.call(f"price {s}", lambda s=s: _quotes(source, [s], now_ms))
            if one_err is None:
                quotes[s] = one.get(s)
            else:
                result["price_errors"][s] = one_err
    elif err is not None:
        result["errors"].append({"what": "prices", **err})
        quotes = {}
    result["quotes"] = {s: _quote_json(quotes.get(s)) for s in symbols}
    result["prices"] = {s: (q or {}).get("last") for s, q in result["quotes"].items()}


def _quotes(source: MarketSource, symbols: list[str], now_ms: int) -> dict[str, Any]:
    """The source's quotes; a source with prices only (no ``fetch_quotes``) gives its last
    price as of ``now_ms``, with no bid or ask."""
    fetch_quotes = getattr(source, "fetch_quotes", None)
    if fetch_quotes is not None:
        return dict(fetch_quotes(symbols, now_ms=now_ms))
    prices = source.fetch_prices(symbols, now_ms=now_ms)
    return {s: (Quote(None, None, p, now_ms) if (p := _positive(prices.get(s))) is not None else None)
            for s in symbols}


def _quote_json(q: Any) -> dict[str, Any] | None:
    """A quote as the manifest records it; None when it has no usable last price (the mark)
    and no side either. Prices that are not finite and positive are null, never 0."""
    if not isinstance(q, Quote):
        return None
    out = {"bid": _positive(q.bid), "ask": _positive(q.ask), "last": _positive(q.last), "at_ms": int(q.at_ms)}
    return out if any(out[k] is not None for k in ("bid", "ask", "last")) else None


def _positive(p: Any) -> float | None:
    return float(p) if isinstance(p, (int, float)) and math.isfinite(p) and p > 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    from market.sources import open_options_source, open_source

    request = json.loads(sys.stdin.read())
    spec = request["market"]
    unders = [str(u) for u in request.get("option_underlyings") or []]
    deliveries = request.get("deliveries") or None
    source = open_source(spec)
    # ccxt serves both from one client pair (each exchange keeps its own breaker); of the
    # options sources only ccxt has delivery prices, so the others are opened for chains only
    if spec.get("source") == "ccxt":
        options = source if unders or deliveries else None
    else:
        options = open_options_source(spec) if unders else None
    try:
        result = prefetch(
            source, [tuple(p) for p in request["pairs"]], request["price_symbols"],
            int(request["now_ms"]), Path(request["cache_dir"]), int(request.get("limit", DEFAULT_LIMIT)),
            options_source=options, option_underlyings=unders, deliveries=deliveries,
        )
    finally:
        source.close()
        if options is not None and options is not source:
            options.close()
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
