"""The market-data contract every source implements, and the candle container.

A source returns only candles that had closed at the ``now_ms`` it is given:
the still-forming candle is dropped, always. Gaps are reported (``gaps``),
never filled. A price that could not be had is absent or ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scheduler.engine.errors import DataError, TransientExchangeError
from scheduler.engine.market_rules import MarketRules
from scheduler.engine.timeframes import last_closed_open_ms, timeframe_ms


class SourceUnavailableError(TransientExchangeError):
    """The source gave up on its exchange for the rest of this process: it looked
    unreachable (requests got no response at all) or its calls kept failing after their
    retries. Every further call fails at once with this error instead of retrying the
    network again. Transient: a later process (the next cycle) tries again."""


@dataclass(frozen=True)
class Candles:
    """OHLCV candles of one symbol and timeframe, oldest first.

    ``ts_ms`` is each candle's OPEN time in UTC milliseconds (Binance/ccxt
    convention); a candle closes at ``ts_ms + timeframe_ms(timeframe)``.
    All arrays have the same length; prices are floats in the quote currency.
    """

    symbol: str
    timeframe: str
    ts_ms: np.ndarray  # int64
    open: np.ndarray  # float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = "unknown"
    gaps: tuple[tuple[int, int], ...] = field(default=())  # (last ts before, first ts after)

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise DataError(
                    f"{self.symbol} {self.timeframe}: column {name!r} has "
                    f"{len(getattr(self, name))} rows, ts_ms has {n}"
                )

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def tf_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    def close_time_ms(self, i: int = -1) -> int:
        """Close time of candle ``i`` (default: the last one)."""
        return int(self.ts_ms[i]) + self.tf_ms

    def head(self, n: int) -> Candles:
        """The first ``n`` candles (what was known when candle n-1 closed)."""
        return self._take(slice(0, n))

    def tail(self, n: int) -> Candles:
        """The last ``n`` candles."""
        return self._take(slice(max(len(self) - n, 0), len(self)))

    def _take(self, sl: slice) -> Candles:
        ts = self.ts_ms[sl]
        lo, hi = (int(ts[0]), int(ts[-1])) if len(ts) else (0, -1)
        return Candles(
            self.symbol, self.timeframe, ts, self.open[sl], self.high[sl], self.low[sl],
            self.close[sl], self.volume[sl], self.source,
            tuple(g for g in self.gaps if lo <= g[0] and g[1] <= hi),
        )

    def closed_at(self, now_ms: int) -> Candles:
        """Only the candles that had closed at ``now_ms`` (drops the forming one)."""
        last_open = last_closed_open_ms(self.timeframe, now_ms)
        n = int(np.searchsorted(self.ts_ms, last_open, side="right"))
        return self.head(n)

    @classmethod
    def from_rows(
        cls, symbol: str, timeframe: str, rows: Sequence[Sequence[float]], source: str
    ) -> Candles:
        """Build from ``[ts_ms, open, high, low, close, volume]`` rows (ccxt's shape).

        Rows must be strictly increasing in time; gaps are recorded.
        Raises DataError on malformed rows, non-finite or non-positive prices.
        """
        try:
            arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6) if len(rows) else np.empty((0, 6))
        except (TypeError, ValueError) as e:
            raise DataError(f"{symbol} {timeframe}: malformed candle rows from {source}: {e}") from e
        ts = arr[:, 0].astype(np.int64)
        prices = arr[:, 1:5]
        if len(arr) and (not np.isfinite(arr).all() or (prices <= 0).any() or (arr[:, 5] < 0).any()):
            raise DataError(
                f"{symbol} {timeframe}: {source} returned a candle with a non-finite, zero or "
                "negative price or negative volume; refusing to use it"
            )
        steps = np.diff(ts)
        if len(steps) and (steps <= 0).any():
            raise DataError(f"{symbol} {timeframe}: {source} returned candles out of order or duplicated")
        tf = timeframe_ms(timeframe)
        gap_idx = np.nonzero(steps > tf)[0]
        gaps = tuple((int(ts[i]), int(ts[i + 1])) for i in gap_idx)
        return cls(
            symbol, timeframe, ts, arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(),
            arr[:, 4].copy(), arr[:, 5].copy(), source, gaps,
        )


#: how many candles the newest closed one may lag the clock, unless the market says otherwise
MAX_STALE_CANDLES = 2


def stale_limit(spec: Any) -> int:
    """A market spec's ``max_stale_candles`` (a config's ``market`` as a dict or a spec model);
    ``MAX_STALE_CANDLES`` for a market that has none (the synthetic one never lags)."""
    value = spec.get("max_stale_candles") if isinstance(spec, Mapping) else getattr(spec, "max_stale_candles", None)
    return MAX_STALE_CANDLES if value is None else int(value)


def check_fresh(candles: Candles, now_ms: int, max_missing: int = MAX_STALE_CANDLES) -> None:
    """Raise DataError when the newest closed candle is older than it should be.

    Fresh means the last candle is the last one that had closed at ``now_ms``,
    allowing ``max_missing`` candles of exchange lag.
    """
    if not len(candles):
        raise DataError(f"{candles.symbol} {candles.timeframe}: no closed candles from {candles.source}")
    expected = last_closed_open_ms(candles.timeframe, now_ms)
    behind = (expected - int(candles.ts_ms[-1])) // candles.tf_ms
    if behind > max_missing:
        raise DataError(
            f"{candles.symbol} {candles.timeframe}: stale data from {candles.source}: newest closed "
            f"candle opened at {int(candles.ts_ms[-1])} ms, {behind} candles behind the clock"
        )


class MarketSource(Protocol):
    """What the scheduler's fetch step and the checkers need from a market.

    Every method takes the decision time explicitly (no wall clock inside),
    raises TransientExchangeError / PermanentExchangeError / DataError from
    scheduler.engine.errors, and never returns 0 for a price it could not get.
    """

    name: str

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        """The last ``limit`` candles that had closed at ``now_ms``."""
        ...

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        """Last prices (the mark); a symbol that could not be priced maps to None.

        The fetch step prefers ``fetch_quotes(symbols, *, now_ms) -> {symbol: Quote | None}``
        (market.quotes: bid, ask, last and their time, what orders fill at) where a source
        has it, as the ccxt, synthetic and files sources do; it is optional, so not part of
        this protocol: a source with prices only quotes its last price, with no bid or ask.
        """
        ...

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        """Amount precision and minimums for each symbol."""
        ...

    def close(self) -> None:
        ...
