"""What the fake exchange serves: real candles, option chains and DVOL from ../shared/data,
or candles given by a test. Loaded lazily and cached per process (the files are large)."""

from __future__ import annotations

import functools
import gzip
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scheduler.engine.timeframes import timeframe_ms

#: Intervals the server derives from 1h candles (UTC-aligned, as Binance aligns them).
DERIVED_FROM_1H = ("2h", "4h", "6h", "8h", "12h")
DAY_MS = 86_400_000


def market_id(symbol: str) -> str:
    """``BTC/USDT`` or ``BTCUSDT`` -> ``BTCUSDT``."""
    return symbol.replace("/", "").upper()


@functools.lru_cache(maxsize=32)
def _read_ohlcv(path: str) -> np.ndarray:
    df = pd.read_csv(path)
    return df[["timestamp", "open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)


def resample(rows: np.ndarray, interval: str) -> np.ndarray:
    """Aggregate candles into ``interval`` buckets aligned to the epoch (first open, max
    high, min low, last close, sum volume); buckets with missing candles are kept."""
    if not len(rows):
        return rows
    length = timeframe_ms(interval)
    buckets = (rows[:, 0].astype(np.int64) // length) * length
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    out = np.empty((len(starts), 6))
    out[:, 0] = buckets[starts]
    out[:, 1] = rows[starts, 1]
    out[:, 2] = np.maximum.reduceat(rows[:, 2], starts)
    out[:, 3] = np.minimum.reduceat(rows[:, 3], starts)
    out[:, 4] = rows[ends - 1, 4]
    out[:, 5] = np.add.reduceat(rows[:, 5], starts)
    return out


@functools.lru_cache(maxsize=2)
def _read_chains(path: str) -> pd.DataFrame:
    cols = [
        "timestamp_ms",
        "instrument_name",
        "underlying",
        "underlying_name",
        "option_type",
        "strike",
        "expiry_datetime",
        "bid_price",
        "ask_price",
        "mark_price",
        "mid_price",
        "implied_volatility",
        "delta",
        "vega",
        "open_interest",
        "volume",
        "currency",
        "index_price",
        "volume_usd",
    ]
    df = pd.read_csv(path, usecols=cols)
    expiry = pd.to_datetime(df["expiry_datetime"], utc=True)
    df["expiry_ms"] = (expiry - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return df.sort_values(["currency", "timestamp_ms"], kind="stable").reset_index(drop=True)


@functools.lru_cache(maxsize=2)
def _read_json(path: str) -> Any:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


class ExchangeData:
    """Candles by (market id, interval), option chains and DVOL, for one server."""

    def __init__(self, shared_data: Path | None, *, exchange_info: str = "full") -> None:
        self.shared_data = shared_data
        self.exchange_info_kind = exchange_info
        self._candles: dict[tuple[str, str], np.ndarray] = {}
        self._dvol: dict[str, np.ndarray] = {}
        self._delivery: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    # --- candles ---

    def set_candles(self, symbol: str, interval: str, rows: Any) -> None:
        """Serve these ``[ts, o, h, l, c, v]`` rows for symbol/interval (replaces files)."""
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        with self._lock:
            self._candles[(market_id(symbol), interval)] = arr[np.argsort(arr[:, 0], kind="stable")]

    def candles(self, mid: str, interval: str) -> np.ndarray | None:
        """All candles the exchange has (also the future ones; the server cuts at now)."""
        key = (mid, interval)
        with self._lock:
            if key in self._candles:
                return self._candles[key]
        arr = self._load_candles(mid, interval)
        if arr is not None:
            with self._lock:
                self._candles[key] = arr
        return arr

    def symbols(self) -> list[str]:
        """Market ids with data (for an unfiltered ticker request)."""
        ids = {k[0] for k in self._candles}
        if self.shared_data is not None:
            for p in (self.shared_data / "ohlcv" / "binance").glob("*_*-*.csv*"):
                ids.add(p.name.split("-")[0].replace("_", ""))
        return sorted(ids)

    def _split(self, mid: str) -> tuple[str, str] | None:
        for quote in ("USDT", "USDC", "BTC", "ETH"):
            if mid.endswith(quote) and len(mid) > len(quote):
                return mid[: -len(quote)], quote
        return None

    def _load_candles(self, mid: str, interval: str) -> np.ndarray | None:
        if self.shared_data is None:
            return None
        pair = self._split(mid)
        if pair is None:
            return None
        folder = self.shared_data / "ohlcv" / "binance"
        stem = f"{pair[0]}_{pair[1]}-{interval}"
        for ext in (".csv", ".csv.gz"):
            if (folder / (stem + ext)).exists():
                return _read_ohlcv(str(folder / (stem + ext)))
        if interval == "15m" and mid == "BTCUSDT":
            fx = (
                self.shared_data
                / "fixtures"
                / "binance"
                / "spot_klines_BTCUSDT_15m_2024-10-26_2024-11-03.json"
            )
            if fx.exists():
                return np.asarray([[float(v) for v in k[:6]] for k in _read_json(str(fx))])
        if interval in DERIVED_FROM_1H:
            hourly = self.candles(mid, "1h")
            if hourly is not None:
                return resample(hourly, interval)
        return None

    # --- markets ---

    def exchange_info(self) -> dict[str, Any]:
        if self.shared_data is None:  # markets for the candles a test gave
            with self._lock:
                ids = sorted({k[0] for k in self._candles})
            return {
                "timezone": "UTC",
                "serverTime": 0,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [m for m in (_market_entry(i, self._split(i)) for i in ids) if m],
            }
        folder = self.shared_data / "fixtures" / "binance"
        name = (
            "spot_exchangeInfo_2024-09-08.json.gz"
            if self.exchange_info_kind == "full"
            else "spot_exchangeInfo_2024-09-08_BTCUSDT_ETHUSDT_SOLUSDT.json"
        )
        return _read_json(str(folder / name))

    # --- options ---

    def chains(self) -> pd.DataFrame | None:
        if self.shared_data is None:
            return None
        path = (
            self.shared_data
            / "deribit"
            / "option_chains_daily_BTC_ETH_2025-12-30_2026-08-22.csv.gz"
        )
        return _read_chains(str(path)) if path.exists() else None

    def chain_snapshot(self, currency: str, now_ms: int) -> pd.DataFrame:
        """The newest snapshot of ``currency`` taken at or before ``now_ms`` (empty if none)."""
        df = self.chains()
        if df is None:
            return pd.DataFrame()
        sub = df[(df["currency"] == currency) & (df["timestamp_ms"] <= now_ms)]
        if sub.empty:
            return sub
        return sub[sub["timestamp_ms"] == sub["timestamp_ms"].iloc[-1]]

    def set_delivery_prices(self, index_name: str, prices: dict[str, float]) -> None:
        """Serve these ``{date: delivery_price}`` for ``index_name`` (``btc_usd``), added to
        those set before."""
        with self._lock:
            self._delivery.setdefault(index_name, {}).update(prices)

    def delivery_prices(self, index_name: str, now_ms: int) -> list[tuple[str, float]]:
        """``(date, price)`` newest first: the prices set by ``set_delivery_prices`` whose 08:00
        UTC delivery is at or before ``now_ms`` (a later one is not published yet). Nothing is
        derived from the candles: a date the test did not set is one Deribit has no record
        of, so a test can tell the exchange's price from the spot-candle fallback."""
        with self._lock:
            given = dict(self._delivery.get(index_name, {}))
        cutoff = pd.Timestamp(now_ms - 8 * 3_600_000, unit="ms").strftime("%Y-%m-%d")  # 08:00 passed
        return sorted(((d, p) for d, p in given.items() if d <= cutoff), reverse=True)

    def set_dvol(self, currency: str, rows: Any) -> None:
        """Serve these ``[day ts, close]`` DVOL rows for ``currency``."""
        with self._lock:
            self._dvol[currency] = np.asarray(rows, dtype=np.float64).reshape(-1, 2)

    def dvol(self, currency: str) -> np.ndarray:
        with self._lock:
            if currency in self._dvol:
                return self._dvol[currency]
        arr = np.empty((0, 2))
        if self.shared_data is not None and currency == "BTC":
            path = self.shared_data / "deribit" / "BTC_DVOL-1d.csv"
            if path.exists():
                arr = pd.read_csv(path)[["timestamp", "close"]].to_numpy(dtype=np.float64)
        with self._lock:
            self._dvol[currency] = arr
        return arr


def _market_entry(mid: str, pair: tuple[str, str] | None) -> dict[str, Any] | None:
    """A Binance exchangeInfo symbol entry with typical filters (for test-given candles)."""
    if pair is None:
        return None
    return {
        "symbol": mid,
        "status": "TRADING",
        "baseAsset": pair[0],
        "baseAssetPrecision": 8,
        "quoteAsset": pair[1],
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }
