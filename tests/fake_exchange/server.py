"""A local fake of the Binance spot REST API and the Deribit public API, on 127.0.0.1.

Answers what our ccxt calls use:

- Binance ``/api/v3``: ``exchangeInfo``, ``klines``, ``ticker/24hr``, ``time``, ``ping``.
- Deribit ``/api/v2/public``: ``get_book_summary_by_currency``, ``get_instruments``,
  ``get_index_price``, ``ticker``, ``get_volatility_index_data``, ``get_delivery_prices``,
  ``get_time``. Delivery prices are the ones a test set (``set_delivery_prices``), listed
  once their 08:00 UTC has passed (``ExchangeData.delivery_prices``).

Its clock is ``now_ms`` (settable). Like the real exchange, klines run up to and
INCLUDING the candle still forming at ``now_ms``: the client must drop it.
It counts requests and bytes per endpoint, and injects faults programmed per endpoint
(``add_fault``), including Deribit chains with missing bids and a stale quote. Every wait is bounded and wakes on ``stop()``.
"""

from __future__ import annotations

import gzip
import json
import math
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from scheduler.engine.timeframes import TIMEFRAMES, timeframe_ms
from tests.fake_exchange.data import ExchangeData

BINANCE = "/api/v3/"
DERIBIT = "/api/v2/public/"
#: the indexes ``get_delivery_prices`` knows (Deribit has more; these are the ones used here)
DELIVERY_INDEXES = ("btc_usd", "eth_usd", "sol_usdc", "btc_usdc", "eth_usdc")

#: Fault kinds and what the client sees.
FAULT_KINDS = (
    "status",  # HTTP ``status`` with the exchange's error body (+ Retry-After if given)
    "delay",  # answer normally after ``delay_s`` (slow; a timeout when over the client's)
    "truncate",  # 200 with the JSON body cut in half
    "malformed",  # 200 with a body that is not JSON
    "empty",  # 200 with an empty body
    "disconnect",  # close the connection without answering
    "stale",  # data as if the feed stopped ``lag`` candles (or seconds for Deribit) ago
    "gap",  # klines: drop the candles at ``drop`` (indexes from the newest closed, 1 = newest)
    "unknown_symbol",  # the exchange's invalid-symbol / not-found error
    "no_bids",  # Deribit book summary: every ``every``-th row without a bid (null, or 0 on odd ones)
    "stale_quote",  # Deribit book summary: the first row's quote ``lag`` seconds old, the rest fresh
)


@dataclass
class Fault:
    """One programmed fault: lets ``after`` matching requests through, then applies to
    the next ``count`` requests to ``path`` (None = every one) whose query contains ``match``."""

    path: str
    kind: str
    count: int | None = 1
    after: int = 0
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    lag: int = 5
    drop: tuple[int, ...] = (2, 3)
    every: int = 2
    match: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")


class _Reply(Exception):
    """Raised by a route to answer with an error status and body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _num(x: float) -> str:
    """A float as Binance sends numbers (a string); repr round-trips exactly."""
    return repr(float(x))


class FakeExchange:
    """The server. Use ``with fake_exchange(...) as fx`` or ``start()``/``stop()``."""

    def __init__(
        self, shared_data: Path | None = None, *, now_ms: int = 0, exchange_info: str = "full"
    ) -> None:
        self.data = ExchangeData(shared_data, exchange_info=exchange_info)
        self.now_ms = now_ms
        self.requests: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, str]]] = []
        self._faults: list[Fault] = []
        self._book: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeExchange:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.block_on_close = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-exchange",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stop.set()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:  # wake handler threads parked on keep-alive reads
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()  # joins the handler threads
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._httpd = None

    # --- programming ---

    def add_fault(self, path: str, kind: str, **kw: Any) -> Fault:
        """Program a fault, e.g. ``add_fault("/api/v3/klines", "status", status=429,
        retry_after="1", count=2)``."""
        fault = Fault(path, kind, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent.clear()
            self.log.clear()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent.values())

    def set_candles(self, symbol: str, interval: str, rows: Any) -> None:
        self.data.set_candles(symbol, interval, rows)

    def set_book(self, symbol: str, *, bid: float, ask: float) -> None:
        """Serve this bid and ask for ``symbol`` in ``ticker/24hr`` from now on (last price
        and as-of time stay the candles'); by default bid = ask = last."""
        with self._lock:
            self._book[symbol.replace("/", "")] = (float(bid), float(ask))

    def set_delivery_prices(self, index_name: str, prices: dict[str, float]) -> None:
        """Serve these ``{"2026-03-27": price}`` delivery prices for ``index_name`` (``btc_usd``)."""
        self.data.set_delivery_prices(index_name, prices)

    def _take_fault(self, path: str, query: dict[str, str]) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.path == path and all(query.get(k) == v for k, v in f.match.items()):
                    if f.after > 0:
                        f.after -= 1
                        return None
                    if f.count is not None:
                        f.count -= 1
                        if f.count <= 0:
                            self._faults.remove(f)
                    return f
        return None

    def _count(self, path: str, query: dict[str, str], nbytes: int) -> None:
        with self._lock:
            self.bytes_sent[path] += nbytes

    def _record(self, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self.requests[path] += 1
            self.log.append((path, query))

    # --- Binance routes ---

    def binance(self, endpoint: str, q: dict[str, str], fault: Fault | None) -> Any:
        if fault and fault.kind == "unknown_symbol":
            raise _Reply(400, {"code": -1121, "msg": "Invalid symbol."})
        if endpoint == "ping":
            return {}
        if endpoint == "time":
            return {"serverTime": self.now_ms}
        if endpoint == "exchangeInfo":
            info = dict(self.data.exchange_info())
            info["serverTime"] = self.now_ms
            return info
        if endpoint == "klines":
            return self._klines(q, fault)
        if endpoint == "ticker/24hr":
            return self._tickers(q, fault)
        raise _Reply(404, {"code": -1, "msg": f"unknown endpoint {endpoint}"})

    def _series(self, symbol: str | None, interval: str) -> np.ndarray:
        if not symbol:
            raise _Reply(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."})
        arr = self.data.candles(symbol, interval)
        if arr is None:
            raise _Reply(400, {"code": -1121, "msg": "Invalid symbol."})
        return arr

    def _klines(self, q: dict[str, str], fault: Fault | None) -> list[list[Any]]:
        interval = q.get("interval", "")
        if interval not in TIMEFRAMES:
            raise _Reply(400, {"code": -1120, "msg": "Invalid interval."})
        try:
            limit = int(q.get("limit", "500"))
        except ValueError:
            raise _Reply(
                400, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}
            ) from None
        if not 1 <= limit <= 1000:
            raise _Reply(
                400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
            )
        arr = self._series(q.get("symbol"), interval)
        tf = timeframe_ms(interval)
        horizon = self.now_ms
        if fault and fault.kind == "stale":
            horizon = self.now_ms - (fault.lag + 1) * tf
        arr = arr[arr[:, 0] <= horizon]  # up to and including the forming candle
        if fault and fault.kind == "gap" and len(arr) > max(fault.drop) + 1:
            keep = np.ones(len(arr), dtype=bool)
            for i in fault.drop:  # 1 = newest closed (the forming one is the last row)
                keep[len(arr) - 1 - i] = False
            arr = arr[keep]
        start, end = q.get("startTime"), q.get("endTime")
        if end is not None:
            arr = arr[arr[:, 0] <= int(end)]
        arr = arr[arr[:, 0] >= int(start)][:limit] if start is not None else arr[-limit:]
        return [
            [
                int(r[0]),
                _num(r[1]),
                _num(r[2]),
                _num(r[3]),
                _num(r[4]),
                _num(r[5]),
                int(r[0]) + tf - 1,
                _num(r[4] * r[5]),
                100,
                _num(r[5] / 2),
                _num(r[4] * r[5] / 2),
                "0",
            ]
            for r in arr
        ]

    def _last_price(self, mid: str, fault: Fault | None) -> tuple[float, int] | None:
        """(price, as-of ms): the open of the finest candle forming at now (a price that
        existed at its open time), else the newest close with its close time."""
        best: tuple[float, int] | None = None
        for interval in ("1m", "15m", "1h", "1d"):
            arr = self.data.candles(mid, interval)
            if arr is None or not len(arr):
                continue
            tf = timeframe_ms(interval)
            horizon = self.now_ms - ((fault.lag + 1) * tf if fault and fault.kind == "stale" else 0)
            past = arr[arr[:, 0] <= horizon]
            if not len(past):
                continue
            last = past[-1]
            if last[0] + tf > self.now_ms:  # forming now
                return float(last[1]), self.now_ms
            got = (float(last[4]), int(last[0]) + tf - 1)
            if best is None or got[1] > best[1]:
                best = got
        return best

    def _tickers(self, q: dict[str, str], fault: Fault | None) -> Any:
        if "symbols" in q:
            try:
                mids = json.loads(q["symbols"])
            except ValueError:
                raise _Reply(
                    400, {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}
                ) from None
        elif "symbol" in q:
            mids = [q["symbol"]]
        else:
            mids = self.data.symbols()
        out = []
        for mid in mids:
            got = self._last_price(mid, fault)
            if got is None:  # listed but no data here: left out, as if never traded
                if "symbol" in q:
                    raise _Reply(400, {"code": -1121, "msg": "Invalid symbol."})
                continue
            price, asof = got
            with self._lock:
                bid, ask = self._book.get(mid, (price, price))
            out.append(
                {
                    "symbol": mid,
                    "priceChange": "0",
                    "priceChangePercent": "0",
                    "weightedAvgPrice": _num(price),
                    "prevClosePrice": _num(price),
                    "lastPrice": _num(price),
                    "lastQty": "0",
                    "bidPrice": _num(bid),
                    "bidQty": "0",
                    "askPrice": _num(ask),
                    "askQty": "0",
                    "openPrice": _num(price),
                    "highPrice": _num(price),
                    "lowPrice": _num(price),
                    "volume": "0",
                    "quoteVolume": "0",
                    "openTime": asof - 86_400_000,
                    "closeTime": asof,
                    "firstId": 1,
                    "lastId": 1,
                    "count": 1,
                }
            )
        return out[0] if "symbol" in q else out

    # --- Deribit routes ---

    def deribit(self, method: str, q: dict[str, str], fault: Fault | None) -> Any:
        if fault and fault.kind == "unknown_symbol":
            raise _Reply(400, _deribit_error(13020, "not_found"))
        if method == "get_time":
            return self.now_ms
        if method == "get_volatility_index_data":
            return self._dvol(q)
        if method == "get_delivery_prices":
            return self._delivery_prices(q)
        currency = q.get("currency") or q.get("index_name", "").split("_")[0].upper()
        if method == "ticker":
            currency = q.get("instrument_name", "").split("-")[0].split("_")[0]
        if currency not in ("BTC", "ETH"):
            raise _Reply(400, _deribit_error(-32602, "Invalid params"))
        snap = self.data.chain_snapshot(currency, self.now_ms)
        stamp = self.now_ms - (fault.lag * 1000 if fault and fault.kind == "stale" else 0)
        if method == "get_book_summary_by_currency":
            rows = [_book_row(r, stamp) for r in snap.itertuples(index=False)]
            if fault and fault.kind == "no_bids":
                for i in range(0, len(rows), max(fault.every, 1)):
                    rows[i]["bid_price"] = 0.0 if (i // max(fault.every, 1)) % 2 else None
            if fault and fault.kind == "stale_quote" and rows:
                rows[0]["creation_timestamp"] = self.now_ms - fault.lag * 1000
            return rows
        if method == "get_index_price":
            if snap.empty:
                raise _Reply(400, _deribit_error(-32602, "Invalid params"))
            idx = float(snap["index_price"].median())
            return {"index_price": idx, "estimated_delivery_price": idx}
        if method == "get_instruments":
            return [_instrument(r) for r in snap.itertuples(index=False)]
        if method == "ticker":
            row = snap[snap["instrument_name"] == q.get("instrument_name")]
            if row.empty:
                raise _Reply(400, _deribit_error(13020, "not_found"))
            return _ticker(next(row.itertuples(index=False)), stamp)
        raise _Reply(400, _deribit_error(-32601, "Method not found"))

    def _delivery_prices(self, q: dict[str, str]) -> dict[str, Any]:
        """``public/get_delivery_prices``: the dates whose 08:00 UTC delivery is at or before
        the clock, newest first, paged by ``offset`` and ``count`` (1-1000, default 10)."""
        index = q.get("index_name", "")
        try:
            offset, count = int(q.get("offset", "0")), int(q.get("count", "10"))
        except ValueError:
            raise _Reply(400, _deribit_error(-32602, "Invalid params")) from None
        if index not in DELIVERY_INDEXES or offset < 0 or not 1 <= count <= 1000:
            raise _Reply(400, _deribit_error(-32602, "Invalid params"))
        rows = self.data.delivery_prices(index, self.now_ms)
        return {"data": [{"date": d, "delivery_price": p} for d, p in rows[offset : offset + count]],
                "records_total": len(rows)}

    def _dvol(self, q: dict[str, str]) -> dict[str, Any]:
        arr = self.data.dvol(q.get("currency", ""))
        try:
            start, end = int(q["start_timestamp"]), int(q["end_timestamp"])
        except (KeyError, ValueError):
            raise _Reply(400, _deribit_error(-32602, "Invalid params")) from None
        if q.get("resolution") not in ("1D", "86400"):
            raise _Reply(400, _deribit_error(-32602, "Invalid params"))
        sel = arr[(arr[:, 0] >= start) & (arr[:, 0] <= min(end, self.now_ms))]
        cont = None
        if len(sel) > 1000:
            sel = sel[-1000:]
            cont = int(sel[0, 0]) - 1
        return {"data": [[int(t), c, c, c, c] for t, c in sel], "continuation": cont}


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _deribit_error(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "testnet": False}


def _book_row(r: Any, stamp: int) -> dict[str, Any]:
    iv = _f(r.implied_volatility)
    return {
        "instrument_name": r.instrument_name,
        "base_currency": r.currency,
        "quote_currency": r.currency,
        "underlying_index": r.underlying_name,
        "underlying_price": _f(r.underlying),
        "mark_price": _f(r.mark_price),
        "bid_price": _f(r.bid_price),
        "ask_price": _f(r.ask_price),
        "mid_price": _f(r.mid_price),
        "mark_iv": None if iv is None else round(iv * 100, 4),
        "open_interest": _f(r.open_interest),
        "volume": _f(r.volume),
        "volume_usd": _f(r.volume_usd),
        "estimated_delivery_price": _f(r.index_price),
        "interest_rate": 0.0,
        "price_change": None,
        "last": None,
        "high": None,
        "low": None,
        "creation_timestamp": stamp,
    }


def _instrument(r: Any) -> dict[str, Any]:
    return {
        "instrument_name": r.instrument_name,
        "kind": "option",
        "base_currency": r.currency,
        "counter_currency": "USD",
        "quote_currency": r.currency,
        "settlement_currency": r.currency,
        "strike": float(r.strike),
        "option_type": r.option_type,
        "expiration_timestamp": int(r.expiry_ms),
        "is_active": True,
        "tick_size": 0.0001,
        "min_trade_amount": 0.1 if r.currency == "BTC" else 1.0,
        "contract_size": 1.0,
        "settlement_period": "month",
        "instrument_type": "reversed",
    }


def _ticker(r: Any, stamp: int) -> dict[str, Any]:
    row = _book_row(r, stamp)
    return {
        "instrument_name": r.instrument_name,
        "timestamp": stamp,
        "state": "open",
        "best_bid_price": row["bid_price"],
        "best_ask_price": row["ask_price"],
        "mark_price": row["mark_price"],
        "mark_iv": row["mark_iv"],
        "underlying_price": row["underlying_price"],
        "underlying_index": row["underlying_index"],
        "index_price": _f(r.index_price),
        "open_interest": row["open_interest"],
        "greeks": {
            "delta": _f(r.delta),
            "vega": _f(r.vega),
            "gamma": None,
            "theta": None,
            "rho": None,
        },
        "interest_rate": 0.0,
        "stats": {"volume": row["volume"]},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeExchange  # set on the subclass made in start()

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        with suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        fake = self.fake
        fake._record(path, query)
        fault = fake._take_fault(path, query)
        if fault and fault.kind == "delay" and fake._stop.wait(fault.delay_s):
            self.close_connection = True
            return
        if fault and fault.kind == "disconnect":
            self.close_connection = True
            return
        if fault and fault.kind == "status":
            self._send(
                path,
                fault.status,
                self._error_body(path, fault.status),
                {"Retry-After": fault.retry_after} if fault.retry_after else {},
            )
            return
        try:
            if path.startswith(BINANCE):
                result = fake.binance(path[len(BINANCE) :], query, fault)
                body: Any = result
            elif path.startswith(DERIBIT):
                result = fake.deribit(path[len(DERIBIT) :], query, fault)
                body = {
                    "jsonrpc": "2.0",
                    "result": result,
                    "usIn": fake.now_ms * 1000,
                    "usOut": fake.now_ms * 1000 + 50,
                    "usDiff": 50,
                    "testnet": False,
                }
            else:
                raise _Reply(404, {"code": -1, "msg": f"no such path {path}"})
        except _Reply as r:
            self._send(path, r.status, json.dumps(r.body).encode(), r.headers)
            return
        raw = json.dumps(body, separators=(",", ":")).encode()
        if fault and fault.kind == "truncate":
            raw = raw[: max(1, len(raw) // 2)]
        elif fault and fault.kind == "malformed":
            raw = (
                b'{"code": 0, "msg": oops' if path.startswith(DERIBIT) else b"[[1700000000000,'x',"
            )
        elif fault and fault.kind == "empty":
            raw = b""
        self._send(path, 200, raw, {})

    def _error_body(self, path: str, status: int) -> bytes:
        if path.startswith(DERIBIT):
            if status == 429:
                return json.dumps(_deribit_error(10028, "too_many_requests")).encode()
            return b"<html><body>Service unavailable</body></html>"
        if status in (418, 429):
            return json.dumps(
                {
                    "code": -1003,
                    "msg": "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE.",
                }
            ).encode()
        if status == 400:
            return json.dumps({"code": -1121, "msg": "Invalid symbol."}).encode()
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>"

    def _send(self, path: str, status: int, raw: bytes, headers: dict[str, str]) -> None:
        is_json = raw[:1] in (b"{", b"[")
        if "gzip" in (self.headers.get("Accept-Encoding") or "") and len(raw) > 1024:
            raw = gzip.compress(raw, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if is_json else "text/html")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) or went away
            self.close_connection = True
        self.fake._count(path, {}, len(raw))


@contextmanager
def fake_exchange(
    shared_data: Path | None = None, *, now_ms: int = 0, exchange_info: str = "full"
) -> Iterator[FakeExchange]:
    """Run a FakeExchange for the duration of a ``with`` block."""
    fx = FakeExchange(shared_data, now_ms=now_ms, exchange_info=exchange_info).start()
    try:
        yield fx
    finally:
        fx.stop()


def iso_ms(text: str) -> int:
    """``2024-06-01T12:30`` (UTC) -> epoch ms; a helper for tests."""
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)
