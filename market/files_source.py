"""Candles replayed from files, up to a given clock time.

Layout (the one ``go-trader download-data`` writes and ../shared/data/ohlcv uses)::

    <root>/<exchange>/<BASE>_<QUOTE>-<timeframe>.csv      (or .csv.gz, .parquet)
    <root>/<exchange>/markets.json                        (market rules, optional)

CSV columns: ``timestamp,open,high,low,close,volume``; ``timestamp`` is the candle's
OPEN time in UTC ms. ``markets.json`` is either ``{"BTC/USDT": {"amount_step": ...,
"min_amount": ..., "min_notional_usd": ...}}`` (written by download-data) or a raw
Binance ``/api/v3/exchangeInfo`` response.

A candle is returned only once it had closed at ``now_ms``; gaps are reported, not
filled; a file that ends too long before ``now_ms`` is stale (DataError).
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.base import Candles, MarketRules, check_fresh
from market.quotes import Quote
from market.specs import FilesSpec, validate
from scheduler.engine.errors import DataError, PermanentExchangeError
from scheduler.engine.timeframes import TIMEFRAMES, timeframe_ms

CANDLE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
EXTENSIONS = (".csv", ".csv.gz", ".parquet")
#: the exchanges ``go-trader download-data`` can fetch from
DOWNLOADABLE = ("binance", "binanceus")


def candle_file_stem(symbol: str, timeframe: str) -> str:
    """``BTC/USDT``, ``1h`` -> ``BTC_USDT-1h``."""
    if symbol.count("/") != 1 or not all(symbol.split("/")):
        raise PermanentExchangeError(f"symbol {symbol!r} is not BASE/QUOTE (e.g. 'BTC/USDT')")
    return f"{symbol.replace('/', '_')}-{timeframe}"


def find_candle_file(folder: Path, symbol: str, timeframe: str) -> Path | None:
    """The candle file of symbol/timeframe in ``folder`` (first of .csv, .csv.gz, .parquet)."""
    stem = candle_file_stem(symbol, timeframe)
    for ext in EXTENSIONS:
        p = folder / (stem + ext)
        if p.exists():
            return p
    return None


def read_candle_file(path: Path) -> np.ndarray:
    """All rows of a candle file as an (n, 6) float64 array, oldest first.

    Raises DataError naming the file for a missing column, unreadable content,
    duplicate or unordered timestamps.
    """
    try:
        df = pd.read_parquet(path) if path.name.endswith(".parquet") else pd.read_csv(path)
    except ImportError as e:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or use CSV: {e}"
        ) from e
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: unreadable candle file: {e}") from e
    missing = [c for c in CANDLE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected header {','.join(CANDLE_COLUMNS)}"
        )
    try:
        arr = df[list(CANDLE_COLUMNS)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: non-numeric candle values: {e}") from e
    if len(arr) > 1 and (np.diff(arr[:, 0]) <= 0).any():
        raise DataError(
            f"{path}: timestamps are not strictly increasing (duplicated or unsorted rows)"
        )
    return arr


def rules_from_markets_json(doc: Any, symbols: Sequence[str], where: str) -> dict[str, MarketRules]:
    """MarketRules from our markets.json shape or a raw Binance exchangeInfo response."""
    if isinstance(doc, Mapping) and isinstance(doc.get("symbols"), list):
        return rules_from_binance_exchange_info(doc, symbols, where)
    if not isinstance(doc, Mapping):
        raise DataError(f"{where}: expected a JSON object")
    out = {}
    for s in symbols:
        entry = doc.get(s)
        if not isinstance(entry, Mapping):
            raise DataError(f"{where}: no market rules for {s}")
        try:
            out[s] = MarketRules(
                s,
                float(entry["amount_step"]),
                float(entry["min_amount"]),
                float(entry["min_notional_usd"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: bad market rules for {s}: {e}") from e
    return out


def rules_from_binance_exchange_info(
    info: Mapping[str, Any], symbols: Sequence[str], where: str
) -> dict[str, MarketRules]:
    """MarketRules from a Binance ``exchangeInfo`` document (LOT_SIZE and
    NOTIONAL/MIN_NOTIONAL filters, as ccxt's binance.parse_market reads them)."""
    by_id = {m.get("symbol"): m for m in info.get("symbols", []) if isinstance(m, Mapping)}
    out = {}
    for s in symbols:
        m = by_id.get(s.replace("/", ""))
        if m is None:
            raise PermanentExchangeError(f"{where}: unknown symbol {s}")
        filters = {f.get("filterType"): f for f in m.get("filters", []) if isinstance(f, Mapping)}
        lot = filters.get("LOT_SIZE", {})
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        try:
            step = float(lot["stepSize"])
            min_qty = float(lot.get("minQty", step))
            min_notional = float(notional.get("minNotional", notional.get("notional", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: {s} has no usable LOT_SIZE filter: {e}") from e
        out[s] = MarketRules(s, step, min_qty or step, min_notional)
    return out


def _missing_rules(doc: Any, symbols: Sequence[str]) -> list[str]:
    """The symbols a markets.json of our shape has no entry for (none for exchangeInfo)."""
    if not isinstance(doc, Mapping) or isinstance(doc.get("symbols"), list):
        return []
    return [s for s in symbols if not isinstance(doc.get(s), Mapping)]


class FilesSource:
    """MarketSource over candle files (see the module docstring)."""

    def __init__(
        self, root: Path | str, exchange: str = "binance", *, max_stale_candles: int = 2
    ) -> None:
        self.root = Path(root)
        self.exchange = exchange
        self.folder = self.root / exchange
        self.max_stale_candles = max_stale_candles
        self.name = f"files:{exchange}"
        self._cache: dict[Path, tuple[tuple[int, int], np.ndarray]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FilesSource:
        s = validate(FilesSpec, spec)
        return cls(s.root, s.exchange, max_stale_candles=s.max_stale_candles)

    def download_hint(self, symbols: Sequence[str], timeframes: Sequence[str], since_ms: int) -> str:
        """How to get missing data: the ``go-trader download-data`` command that writes it
        into this source's folder (candles from the day of ``since_ms``, and the symbols'
        market rules)."""
        if self.exchange not in DOWNLOADABLE:
            return (f"go-trader download-data fetches only from {' or '.join(DOWNLOADABLE)}; put "
                    f"{self.exchange}'s files in {self.folder} yourself")
        day = datetime.fromtimestamp(max(since_ms, 0) / 1000, tz=UTC).strftime("%Y-%m-%d")
        cmd = ["go-trader", "download-data", "--symbols", *symbols, "--timeframes", *timeframes,
               "--since", day, "--root", str(self.root)]
        if self.exchange != "binance":
            cmd += ["--exchange", self.exchange]
        return f"get it with: {shlex.join(cmd)}"

    def _rows(self, symbol: str, timeframe: str, since_ms: int) -> np.ndarray:
        """All rows of the file; ``since_ms`` (the first candle wanted) only shapes the hint
        when there is no file."""
        if timeframe not in TIMEFRAMES:
            raise PermanentExchangeError(
                f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}"
            )
        path = find_candle_file(self.folder, symbol, timeframe)
        if path is None:
            raise DataError(
                f"{self.name}: no candle file for {symbol} {timeframe} in {self.folder} (looked for "
                f"{candle_file_stem(symbol, timeframe)}{{{','.join(EXTENSIONS)}}}); "
                f"{self.download_hint([symbol], [timeframe], since_ms)}"
            )
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(path)
            if hit and hit[0] == key:
                return hit[1]
        arr = read_candle_file(path)
        with self._lock:
            self._cache[path] = (key, arr)
        return arr

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        """The last ``limit`` candles that had closed at ``now_ms``; stale -> DataError."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        tf_ms = timeframe_ms(timeframe) if timeframe in TIMEFRAMES else 0
        arr = self._rows(symbol, timeframe, now_ms - (limit + self.max_stale_candles) * tf_ms)
        last_open = now_ms - tf_ms  # closed means open + tf <= now
        n = int(np.searchsorted(arr[:, 0], last_open, side="right"))
        rows = arr[max(0, n - limit) : n]
        candles = Candles.from_rows(symbol, timeframe, rows, self.name).closed_at(now_ms)
        check_fresh(candles, now_ms, self.max_stale_candles)
        return candles

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        """The ticker at ``now_ms``: ``fetch_quotes``' last price; None where there is none."""
        return {s: (q.last if q is not None else None)
                for s, q in self.fetch_quotes(symbols, now_ms=now_ms).items()}

    def fetch_quotes(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, Quote | None]:
        """What a replayed daemon's ticker says at ``now_ms``: the last price known then, on
        the finest timeframe on file for the symbol, with bid = ask = last (no spread is
        invented). That is the OPEN of the newest candle opened at or before ``now_ms`` (the
        candle starting at the clock time, the one a backtest fills at; or the one forming
        then) as of its open time; in an outage of the data, when that candle has closed and
        none opened since, its CLOSE as of its close time (never its open: that is older
        than the close a checker decided on).

        A timeframe whose newest such candle opened more than ``max_stale_candles`` candles
        before the one due at ``now_ms`` (the file stops too early) is passed over for the
        next coarser one; None when no file has a fresh candle."""
        out: dict[str, Quote | None] = {}
        for s in symbols:
            out[s] = None
            for tf in TIMEFRAMES:  # finest first
                try:
                    arr = self._rows(s, tf, now_ms)
                except (DataError, PermanentExchangeError):
                    continue
                n = int(np.searchsorted(arr[:, 0], now_ms, side="right"))
                if n == 0:
                    continue
                open_ms, tf_ms = int(arr[n - 1, 0]), timeframe_ms(tf)
                closed = open_ms + tf_ms <= now_ms
                price = float(arr[n - 1, 4] if closed else arr[n - 1, 1])
                if (now_ms - open_ms) // tf_ms > self.max_stale_candles or not (np.isfinite(price) and price > 0):
                    continue
                out[s] = Quote.flat(price, open_ms + tf_ms if closed else open_ms)
                break
        return out

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        for name in ("markets.json", "exchangeInfo.json", "exchangeInfo.json.gz"):
            path = self.folder / name
            if path.exists():
                try:
                    opener = gzip.open if name.endswith(".gz") else open
                    with opener(path, "rt", encoding="utf-8") as f:
                        doc = json.load(f)
                except (OSError, ValueError) as e:
                    raise DataError(f"{path}: unreadable market rules: {e}") from e
                missing = _missing_rules(doc, symbols)
                if missing:
                    raise DataError(f"{path}: no market rules for {', '.join(missing)}; "
                                    f"{self._rules_hint(missing)}")
                return rules_from_markets_json(doc, symbols, str(path))
        raise DataError(
            f"{self.name}: no market rules in {self.folder} (markets.json); "
            f"{self._rules_hint(list(symbols))}"
        )

    def _rules_hint(self, symbols: list[str]) -> str:
        # download-data writes the rules of the symbols it fetches; a few days of daily
        # candles is the smallest fetch that does it (the date is only a hint: wall clock)
        since_ms = int(datetime.now(tz=UTC).timestamp() * 1000) - 3 * 86_400_000
        return self.download_hint(symbols, ["1d"], since_ms)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
