"""Live public market data through ccxt: Binance spot candles/tickers/markets and Deribit options.

The adapter is the only place that touches ccxt. It
- rewrites every ``urls.api`` entry when a base URL is configured, so the same code
  talks to the real exchange or to the local fake exchange in ``tests/fake_exchange``;
- restricts Binance's market load to spot (otherwise ``load_markets`` also calls the
  futures hosts);
- turns every ccxt error into ours (``market.ccxt_errors``) and retries transient ones
  with backoff and jitter within a budget, honouring Retry-After;
- gives up on an exchange that is not there (``Breaker``): after 3 requests in a row
  that got no connection or no answer (refused, DNS failure, dropped; a timeout is only
  slow and does not count), or 2 calls in a row that used up their retries, every further
  call of this instance raises ``SourceUnavailableError`` at once;
- treats a 2xx body that is not JSON (truncated, malformed, empty) as ccxt's
  ``BadResponse`` (transient) instead of letting ccxt parse a string as data;
- returns closed candles only and refuses stale ones (``check_fresh``).

Calls per use (counted at the exchange): markets 1 (``exchangeInfo``, once per
instance), candles 1 per (symbol, timeframe) for ``limit`` <= 999, prices 1 for any
number of symbols (``ticker/24hr?symbols=[...]``), option chain 1 per underlying
(``get_book_summary_by_currency``; its rows carry mark IV, forward and index) plus the
contract values (``get_instruments``, 1 per underlying once per ``markets_max_age_s``,
kept beside the markets cache), DVOL 1 per underlying for up to 1000 days, index price 1,
greeks 1 per instrument (only for the legs that need exchange greeks), delivery price 1 per
underlying for an expiry among the last 10 dates, 2 for one up to about 1000 days older
(``get_delivery_prices``; records seen are reused for other expiries).

Deribit goes through ccxt's implicit API methods, not ``fetch_option_chain`` /
``fetch_greeks``: those unified methods first load every Deribit market
(``get_currencies`` + ``get_instruments`` for all currencies, several MB, 2 more calls)
and ``fetch_option_chain`` drops the mark IV the chain needs.

Not thread-safe: one instance per thread.
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import numpy as np

from market import fsio
from market.base import Candles, MarketRules, SourceUnavailableError, check_fresh
from market.ccxt_errors import Breaker, RetryPolicy, translate
from market.delivery import days_between, delivery_date, delivery_records
from market.options_data import (
    chain_from_book_summary,
    contract_from_instruments,
    dvol_closes,
    quote_from_deribit,
)
from market.quotes import Quote
from market.specs import CcxtSpec, validate
from options.chain import OptionChain, OptionContract, OptionQuote, positive_or_none
from scheduler.engine.errors import DataError, PermanentExchangeError, TransientExchangeError
from scheduler.engine.timeframes import last_closed_open_ms, timeframe_ms

log = logging.getLogger(__name__)

#: Binance spot's largest klines page.
BINANCE_MAX_KLINES = 1000
#: records asked first from ``public/get_delivery_prices`` (recent expiries are the usual case)
DELIVERY_FIRST_PAGE = 10
#: Deribit's largest ``count`` for ``public/get_delivery_prices``
DELIVERY_MAX_COUNT = 1000
#: calls at most per delivery price looked up (see ``fetch_delivery_price``)
DELIVERY_MAX_PAGES = 3


def spec_from_mapping(spec: Mapping[str, Any]) -> CcxtSpec:
    """Validate a config dict; every problem is reported with its key (ConfigError)."""
    return validate(CcxtSpec, spec)


def _rewrite(url: str, base_url: str) -> str:
    """``https://api.binance.com/api/v3`` + ``http://127.0.0.1:9`` -> ``http://127.0.0.1:9/api/v3``."""
    return base_url.rstrip("/") + urlsplit(url).path


def _strict(exchange_class: type[ccxt.Exchange]) -> type[ccxt.Exchange]:
    """The ccxt class with one change: a 2xx body that is not JSON is a BadResponse.

    Stock ccxt returns such a body as a string, which binance.fetch_ohlcv and friends
    then parse character by character into rows of None.
    """

    class Strict(exchange_class):  # type: ignore[misc, valid-type]
        def handle_errors(self, code, reason, url, method, headers, body, response, *rest):  # type: ignore[no-untyped-def]
            if response is None and code is not None and 200 <= int(code) < 300:
                excerpt = (body or "")[:120]
                raise ccxt.BadResponse(
                    f"{self.id} {method} {url}: HTTP {code} body is not valid JSON "
                    f"({len(body or '')} chars): {excerpt!r}"
                )
            return super().handle_errors(code, reason, url, method, headers, body, response, *rest)

    Strict.__name__ = f"Strict{exchange_class.__name__}"
    return Strict


def make_exchange(
    exchange_id: str, *, base_url: str | None, timeout_s: float, enable_rate_limit: bool
) -> ccxt.Exchange:
    """A ccxt client for ``exchange_id``, pointed at ``base_url`` when given."""
    cls = _strict(getattr(ccxt, exchange_id))
    ex = cls({"timeout": int(timeout_s * 1000), "enableRateLimit": enable_rate_limit})
    if base_url:
        api = ex.urls["api"]
        for key, value in list(api.items()):
            if isinstance(value, str):
                api[key] = _rewrite(value, base_url)
    if exchange_id.startswith("binance"):
        fetch_markets = dict(ex.options.get("fetchMarkets") or {})
        fetch_markets["types"] = ["spot"]
        ex.options["fetchMarkets"] = fetch_markets
        ex.options["fetchCurrencies"] = False  # private call; never wanted here
        ex.options["adjustForTimeDifference"] = False
    return ex


class CcxtSource:
    """MarketSource + OptionsSource over ccxt (see the module docstring for call counts)."""

    def __init__(
        self,
        spec: CcxtSpec | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.spec = spec or CcxtSpec()
        self.name = f"ccxt:{self.spec.exchange}"
        self.options_name = f"ccxt:{self.spec.options_exchange}"
        self.retry = RetryPolicy(
            budget_s=self.spec.retry_budget_s,
            max_retries=self.spec.max_retries,
            sleep=sleep,
            monotonic=monotonic,
            rng=rng if rng is not None else np.random.default_rng(),
        )
        self._spot: ccxt.Exchange | None = None
        self._options: ccxt.Exchange | None = None
        #: per exchange id; kept across close() so a down exchange stays down for this process
        self._breakers: dict[str, Breaker] = {}
        self._contracts: dict[str, OptionContract] = {}
        #: delivery-price records seen, per Deribit index (``{"btc_usd": {date: price}}``)
        self._delivery: dict[str, dict[str, float]] = {}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], **kwargs: Any) -> CcxtSource:
        """Build from the config's market dict; missing keys take the defaults."""
        return cls(spec_from_mapping(spec), **kwargs)

    # --- plumbing -------------------------------------------------------------

    @property
    def spot(self) -> ccxt.Exchange:
        if self._spot is None:
            self._spot = make_exchange(
                self.spec.exchange,
                base_url=self.spec.base_url,
                timeout_s=self.spec.timeout_s,
                enable_rate_limit=self.spec.enable_rate_limit,
            )
        return self._spot

    @property
    def options(self) -> ccxt.Exchange:
        if self._options is None:
            self._options = make_exchange(
                self.spec.options_exchange,
                base_url=self.spec.options_base_url,
                timeout_s=self.spec.timeout_s,
                enable_rate_limit=self.spec.enable_rate_limit,
            )
        return self._options

    def _breaker(self, ex: ccxt.Exchange) -> Breaker:
        if ex.id not in self._breakers:
            base = self.spec.base_url if ex is self._spot else self.spec.options_base_url
            self._breakers[ex.id] = Breaker(f"ccxt:{ex.id}" + (f" at {base}" if base else ""))
        return self._breakers[ex.id]

    def _call(self, ex: ccxt.Exchange, fn: Callable[[], Any], what: str) -> Any:
        """Run one ccxt call with error translation, the retry policy and the breaker (an
        exchange that is not there fails every call at once after the first few)."""
        breaker = self._breaker(ex)
        breaker.check(what)

        def attempt() -> Any:
            ex.last_response_headers = None  # so a Retry-After is never a stale one
            try:
                result = fn()
            except ccxt.BaseError as e:
                headers = ex.last_response_headers
                ours = translate(e, what=what, response_headers=headers)
                # ccxt sets the headers once an HTTP answer arrived: None means no answer at all.
                # A timeout is left out: the host is there but slow (a loaded exchange, a big
                # answer), which the retry budget and the failed-calls count already bound.
                silent = (isinstance(e, ccxt.NetworkError) and not isinstance(e, ccxt.RequestTimeout)
                          and headers is None)
                breaker.attempt_failed(ours, got_response=not silent, what=what)
                raise ours from e
            breaker.answered()
            return result

        try:
            return self.retry.run(attempt, what=what)
        except SourceUnavailableError:
            raise
        except TransientExchangeError as e:
            breaker.call_gave_up(e, what=what)
            raise

    def close(self) -> None:
        for ex in (self._spot, self._options):
            if ex is not None:
                ex.close()
        self._spot = self._options = None

    def __enter__(self) -> CcxtSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- spot ---------------------------------------------------------------

    def load_markets(self) -> dict[str, Any]:
        """The spot markets: one ``exchangeInfo`` call the first time, then cached in memory
        and, with ``markets_cache``, on disk for ``markets_max_age_s`` (so a fresh fetch-step
        process each cycle does not reload them)."""
        ex = self.spot
        if not ex.markets:
            cached = self._read_markets_cache()
            if cached:
                ex.set_markets(cached)
            else:
                self._call(ex, ex.load_markets, f"{self.name} load markets")
                self._write_markets_cache(ex.markets)
        return ex.markets

    def _markets_cache_path(self) -> Path | None:
        return Path(self.spec.markets_cache) if self.spec.markets_cache else None

    def _read_markets_cache(self) -> dict[str, Any] | None:
        path = self._markets_cache_path()
        try:
            if path is None or time.time() - path.stat().st_mtime > self.spec.markets_max_age_s:
                return None
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # missing, old or unreadable: load from the exchange instead
        ok = isinstance(doc, dict) and doc.get("exchange") == self.spec.exchange and isinstance(doc.get("markets"), dict)
        return doc["markets"] if ok and doc["markets"] else None

    def _write_markets_cache(self, markets: dict[str, Any]) -> None:
        path = self._markets_cache_path()
        if path is not None and markets:
            doc = {"exchange": self.spec.exchange, "markets": markets}
            fsio.write_atomic(path, json.dumps(doc, default=str).encode(), durable=False)

    def _market(self, symbol: str) -> dict[str, Any]:
        markets = self.load_markets()
        if symbol not in markets:
            near = difflib.get_close_matches(symbol, list(markets), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise PermanentExchangeError(
                f"{self.name}: unknown symbol {symbol!r} (not among its {len(markets)} spot "
                f"markets){hint}"
            )
        return markets[symbol]

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        """The last ``limit`` candles closed at ``now_ms``; stale data is a DataError."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        tf_ms = _timeframe_ms(timeframe)
        self._market(symbol)
        last_open = last_closed_open_ms(timeframe, now_ms)
        what = f"{self.name} candles {symbol} {timeframe}"
        ex = self.spot
        if limit + 1 <= BINANCE_MAX_KLINES:
            # +1: the exchange also returns the forming candle, which is dropped below
            rows = self._call(ex, lambda: ex.fetch_ohlcv(symbol, timeframe, limit=limit + 1), what)
        else:
            start = last_open - (limit - 1) * tf_ms
            rows = [
                r for page in self._pages(symbol, timeframe, start, last_open + tf_ms) for r in page
            ]
        candles = Candles.from_rows(symbol, timeframe, _rows(rows, what), self.name)
        candles = candles.closed_at(now_ms).tail(limit)
        check_fresh(candles, now_ms, self.spec.max_stale_candles)
        return candles

    def _pages(
        self, symbol: str, timeframe: str, start_ms: int, end_ms: int
    ) -> Iterator[list[list[Any]]]:
        """Raw klines pages from ``start_ms`` (inclusive) to ``end_ms`` (exclusive)."""
        tf_ms = _timeframe_ms(timeframe)
        ex = self.spot
        since = start_ms
        for _ in range(1_000_000 // BINANCE_MAX_KLINES + 10_000):  # bounded; ends long before
            if since >= end_ms:
                return
            what = f"{self.name} candles {symbol} {timeframe} from {since}"
            page = self._call(
                ex,
                lambda s=since: ex.fetch_ohlcv(
                    symbol, timeframe, since=s, limit=BINANCE_MAX_KLINES
                ),
                what,
            )
            page = [r for r in _rows(page, what) if r[0] is not None and since <= r[0] < end_ms]
            if not page:
                return
            yield page
            since = int(page[-1][0]) + tf_ms

    def fetch_ohlcv_range(
        self, symbol: str, timeframe: str, *, start_ms: int, end_ms: int, now_ms: int
    ) -> Iterator[Candles]:
        """Closed candles with ``start_ms <= ts < end_ms``, one Candles per exchange page
        (for ``download-data``). Candles still forming at ``now_ms`` are never yielded."""
        self._market(symbol)
        stop = min(end_ms, last_closed_open_ms(timeframe, now_ms) + 1)
        for page in self._pages(symbol, timeframe, start_ms, stop):
            yield Candles.from_rows(symbol, timeframe, page, self.name)

    def exchange_time_ms(self) -> int:
        """The exchange's clock (``/api/v3/time``)."""
        ex = self.spot
        t = self._call(ex, ex.fetch_time, f"{self.name} server time")
        if not isinstance(t, int):
            raise DataError(f"{self.name}: server time is not an integer: {t!r}")
        return t

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        """Last trade prices (``fetch_quotes``' ``last``); None where there is none."""
        return {s: (q.last if q is not None else None)
                for s, q in self.fetch_quotes(symbols, now_ms=now_ms).items()}

    def fetch_quotes(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, Quote | None]:
        """Bid, ask and last of each symbol from one ticker call, as of the ticker's
        ``timestamp`` (``now_ms`` when it has none). Unknown symbols, tickers with no
        positive price at all and stale ones (older than ``max_price_age_s``) are None;
        a missing or non-positive bid or ask is None beside a good last. A failed call raises."""
        out: dict[str, Quote | None] = {s: None for s in symbols}
        markets = self.load_markets()
        known = sorted({s for s in symbols if s in markets})
        for s in symbols:
            if s not in markets:
                log.warning("%s: no price for unknown symbol %r", self.name, s)
        if not known:
            return out
        ex = self.spot
        tickers = self._call(
            ex, lambda: ex.fetch_tickers(known), f"{self.name} tickers {','.join(known)}"
        )
        if not isinstance(tickers, Mapping):
            raise DataError(
                f"{self.name}: tickers response is not a mapping: {type(tickers).__name__}"
            )
        max_age_ms = self.spec.max_price_age_s * 1000
        for s in known:
            t = tickers.get(s)
            if not isinstance(t, Mapping):
                continue
            ts = t.get("timestamp")
            at_ms = int(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else now_ms
            if now_ms - at_ms > max_age_ms:
                log.warning(
                    "%s: ticker %s is %.0f s old; no price", self.name, s, (now_ms - at_ms) / 1000
                )
                continue
            bid, ask, last = (positive_or_none(t.get(k)) for k in ("bid", "ask", "last"))
            if last is not None or bid is not None or ask is not None:
                out[s] = Quote(bid, ask, last, at_ms)
        return out

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        """Amount step, minimum amount and minimum notional (USD ~ USDT) per symbol."""
        rules = {}
        for s in symbols:
            m = self._market(s)
            step = positive_or_none((m.get("precision") or {}).get("amount"))
            limits = m.get("limits") or {}
            min_amount = positive_or_none((limits.get("amount") or {}).get("min"))
            min_cost = positive_or_none((limits.get("cost") or {}).get("min"))
            if step is None:
                raise DataError(
                    f"{self.name}: market {s} has no amount precision: {m.get('precision')!r}"
                )
            rules[s] = MarketRules(s, step, min_amount or step, min_cost or 0.0)
        return rules

    # --- options (Deribit) -----------------------------------------------------

    def _deribit(self, method: str, params: dict[str, Any], what: str) -> Any:
        ex = self.options
        fn = getattr(ex, method)
        response = self._call(ex, lambda: fn(params), what)
        if not isinstance(response, Mapping) or "result" not in response:
            raise DataError(f"{what}: response has no 'result': {str(response)[:200]!r}")
        return response["result"]

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> OptionChain:
        """All unexpired options of ``underlying`` in one book-summary call (plus, at most
        every ``markets_max_age_s``, one ``get_instruments`` call for the contract values).

        The chain is stale (DataError) when its newest quote is older than
        ``max_chain_age_s``; a single quote that old is left out. Greeks are not in the
        book summary (None here); use ``fetch_option_greeks`` for the legs that need the
        exchange's, or compute them from ``mark_iv_pct``.
        """
        u = underlying.upper()
        what = f"deribit option chain {u}"
        rows = self._deribit(
            "public_get_get_book_summary_by_currency", {"currency": u, "kind": "option"}, what
        )
        if not isinstance(rows, list):
            raise DataError(f"{what}: 'result' is not a list: {str(rows)[:200]!r}")
        rows = [r for r in rows if isinstance(r, Mapping)]
        stamps = [r.get("creation_timestamp") for r in rows]
        stamps = [int(s) for s in stamps if isinstance(s, int | float) and not isinstance(s, bool)]
        max_age_ms = self.spec.max_chain_age_s * 1000
        if stamps and now_ms - max(stamps) > max_age_ms:
            raise DataError(
                f"{what}: stale: newest quote is {(now_ms - max(stamps)) / 1000:.0f} s old "
                f"(allowed {self.spec.max_chain_age_s:g} s, market.max_chain_age_s)"
            )
        fresh = [r for r in rows if not _stale_row(r, now_ms, max_age_ms)]
        if len(fresh) < len(rows):
            log.warning("%s: left out %d quote(s) older than %g s", what, len(rows) - len(fresh),
                        self.spec.max_chain_age_s)
        chain = chain_from_book_summary(u, fresh, now_ms=now_ms, index_price=None)
        if not chain.quotes:
            raise DataError(f"{what}: no unexpired options at {now_ms}")
        return replace(chain, asof_ms=max(stamps) if stamps else None,
                       contract=self.fetch_option_contract(u))

    def fetch_option_contract(self, underlying: str) -> OptionContract:
        """Contract size, minimum amount and tick of ``underlying``'s options, from
        ``public/get_instruments`` once per ``markets_max_age_s`` (kept in memory and, with
        ``markets_cache``, in a file beside it, so each cycle's new process does not reload
        a list of several hundred KB)."""
        u = underlying.upper()
        if u in self._contracts:
            return self._contracts[u]
        contract = self._read_contract_cache(u)
        if contract is None:
            rows = self.fetch_option_instruments(u)
            contract = contract_from_instruments(u, rows)
            if contract is None:
                raise DataError(f"deribit instruments {u}: no option with contract_size, "
                                f"min_trade_amount and tick_size among {len(rows)} rows")
            self._write_contract_cache(contract)
        self._contracts[u] = contract
        return contract

    def _contract_cache_path(self, underlying: str) -> Path | None:
        markets = self._markets_cache_path()
        if markets is None:
            return None
        return markets.with_name(f"{markets.stem}.{self.spec.options_exchange}-{underlying}-options.json")

    def _read_contract_cache(self, underlying: str) -> OptionContract | None:
        path = self._contract_cache_path(underlying)
        try:
            if path is None or time.time() - path.stat().st_mtime > self.spec.markets_max_age_s:
                return None
            doc = json.loads(path.read_text())
            return OptionContract(**doc) if doc.get("underlying") == underlying else None
        except (OSError, ValueError, TypeError, AttributeError):
            return None  # missing, old or unreadable: ask the exchange instead

    def _write_contract_cache(self, contract: OptionContract) -> None:
        path = self._contract_cache_path(contract.underlying)
        if path is not None:
            fsio.write_atomic(path, json.dumps(asdict(contract)).encode(), durable=False)

    def fetch_index_price(self, underlying: str) -> float | None:
        """Deribit's index (``public/get_index_price``, e.g. ``btc_usd``)."""
        u = underlying.lower()
        result = self._deribit(
            "public_get_get_index_price", {"index_name": f"{u}_usd"}, f"deribit index price {u}_usd"
        )
        return positive_or_none(result.get("index_price")) if isinstance(result, Mapping) else None

    def fetch_option_greeks(self, instrument: str) -> OptionQuote:
        """One option's quote with the exchange's greeks (``public/ticker``, one call)."""
        result = self._deribit(
            "public_get_ticker", {"instrument_name": instrument}, f"deribit ticker {instrument}"
        )
        if not isinstance(result, Mapping):
            raise DataError(f"deribit ticker {instrument}: result is not an object")
        try:
            return quote_from_deribit(result)
        except ValueError as e:
            raise DataError(f"deribit ticker {instrument}: {e}") from e

    def fetch_option_instruments(self, underlying: str) -> list[dict[str, Any]]:
        """Listed options of ``underlying`` (``public/get_instruments``): name, strike,
        expiry, ``min_trade_amount``, ``tick_size``, ``contract_size`` as Deribit gives them."""
        u = underlying.upper()
        result = self._deribit(
            "public_get_get_instruments",
            {"currency": u, "kind": "option", "expired": "false"},
            f"deribit instruments {u}",
        )
        if not isinstance(result, list):
            raise DataError(f"deribit instruments {u}: result is not a list")
        return [r for r in result if isinstance(r, Mapping)]

    def fetch_delivery_price(self, underlying: str, expiry_ms: int) -> float | None:
        """Deribit's delivery price of ``underlying``'s options expiring at ``expiry_ms`` (08:00
        UTC): the record of that date in ``public/get_delivery_prices`` (index ``btc_usd`` /
        ``eth_usd``; ``{"data": [{"date": "2026-03-27", "delivery_price": ...}, ...],
        "records_total": N}``, newest first); None when the date is not listed (not yet
        published, or a date Deribit has no record of).

        Calls: one for an expiry among the newest ``DELIVERY_FIRST_PAGE`` records, else one
        more: with at most one record per date, a date ``g`` days older than the oldest
        record seen is within the next ``g`` records, so the second page asks exactly those
        (at most 1000, Deribit's largest page; ``DELIVERY_MAX_PAGES`` in all). Records seen
        are kept for the instance, so other expiries of the same step cost nothing.
        """
        index = f"{underlying.lower()}_usd"
        date = delivery_date(expiry_ms)
        seen = self._delivery.setdefault(index, {})
        if date in seen:
            return seen[date]
        what = f"deribit delivery prices {index}"
        offset, count = 0, DELIVERY_FIRST_PAGE
        for _ in range(DELIVERY_MAX_PAGES):
            result = self._deribit("public_get_get_delivery_prices",
                                   {"index_name": index, "offset": offset, "count": count}, what)
            if not isinstance(result, Mapping) or not isinstance(result.get("data"), list):
                raise DataError(f"{what}: result has no 'data' list: {str(result)[:200]!r}")
            page = delivery_records(result["data"])
            for d, price in page.items():
                seen.setdefault(d, price)
            if date in page:
                return page[date]
            total = result.get("records_total")
            oldest = min(page) if page else None
            offset += len(result["data"])
            if (oldest is None or oldest < date or len(result["data"]) < count
                    or (isinstance(total, int) and offset >= total)):
                return None  # went past the date, or no more records: it is not listed
            count = min(DELIVERY_MAX_COUNT, days_between(oldest, date))
        log.warning("%s: %s not found within %d pages", what, date, DELIVERY_MAX_PAGES)
        return None

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Daily DVOL closes of days closed by ``end_ms`` (``public/get_volatility_index_data``,
        resolution 1D; follows ``continuation`` for ranges over one page)."""
        u = underlying.upper()
        rows: list[Any] = []
        end = end_ms
        for _ in range(50):  # 50 pages of 1000 days: far more than any history
            result = self._deribit(
                "public_get_get_volatility_index_data",
                {
                    "currency": u,
                    "start_timestamp": start_ms,
                    "end_timestamp": end,
                    "resolution": "1D",
                },
                f"deribit DVOL {u}",
            )
            if not isinstance(result, Mapping) or not isinstance(result.get("data"), list):
                raise DataError(
                    f"deribit DVOL {u}: result has no 'data' list: {str(result)[:200]!r}"
                )
            rows.extend(result["data"])
            cont = result.get("continuation")
            if not isinstance(cont, int) or cont <= start_ms or cont >= end:
                break
            end = cont
        return dvol_closes(rows, start_ms=start_ms, end_ms=end_ms)


def _timeframe_ms(timeframe: str) -> int:
    try:
        return timeframe_ms(timeframe)
    except ValueError as e:
        raise PermanentExchangeError(str(e)) from e


def _stale_row(row: Mapping[str, Any], now_ms: int, max_age_ms: float) -> bool:
    stamp = row.get("creation_timestamp")
    ok = isinstance(stamp, int | float) and not isinstance(stamp, bool)
    return ok and now_ms - stamp > max_age_ms


def _rows(rows: Any, what: str) -> list[list[Any]]:
    if not isinstance(rows, list) or not all(
        isinstance(r, list | tuple) and len(r) >= 6 for r in rows
    ):
        raise DataError(f"{what}: malformed candle rows: {str(rows)[:200]!r}")
    return [list(r[:6]) for r in rows]
