"""The project's own seeded market: SYNTHETIC prices for demos and tests.

Nothing here is real market data, and every candle says so (source
"synthetic"). The market is a pure function of (seed, symbol, time): the
candle that opened at T is the same whatever ``now_ms`` a caller passes, so
a checker run by hand and the daemon see the same history, and higher
timeframes are exact aggregates of the same 5-minute path (prices agree
across timeframes).

Model: 5-minute log returns with a daily volatility regime that follows an
AR(1) process in log-vol (volatility clustering), plus rare jumps; volume
scales with the regime. Base resolution is 5 minutes, so 1m/3m candles are
not offered. It models three symbols, BTC/USDT, ETH/USDT and SOL/USDT; any
other symbol is refused with a PermanentExchangeError, never given made-up
prices.
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from market.base import Candles, MarketRules
from market.quotes import Quote
from market.specs import SYNTHETIC_SYMBOLS
from scheduler.engine.errors import PermanentExchangeError
from scheduler.engine.timeframes import first_open_at_or_after_ms, last_closed_open_ms, timeframe_ms

ORIGIN_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the synthetic market's first candle
BASE_MS = 300_000  # 5 minutes
_DAY_MS = 86_400_000
_BLOCK = 8192  # base candles per independently seeded noise block
_YEAR_MS = 365.25 * _DAY_MS

# symbol -> (start price, 5m base volume, amount step, annual vol)
_PROFILES: dict[str, tuple[float, float, float, float]] = {
    "BTC/USDT": (60_000.0, 40.0, 1e-5, 0.55),
    "ETH/USDT": (3_000.0, 600.0, 1e-4, 0.70),
    "SOL/USDT": (150.0, 9_000.0, 1e-3, 0.90),
}
#: the only symbols the synthetic market has; any other is refused (PermanentExchangeError)
SYMBOLS: tuple[str, ...] = SYNTHETIC_SYMBOLS
MIN_NOTIONAL_USD = 5.0


def check_symbols(symbols: Sequence[str]) -> None:
    """Raise PermanentExchangeError naming every symbol the synthetic market does not
    model, and the ones it does."""
    unknown = [s for s in symbols if s not in _PROFILES]
    if not unknown:
        return
    hints = []
    for s in unknown:
        near = difflib.get_close_matches(str(s).upper(), SYMBOLS, n=1, cutoff=0.6)
        hints.append(f"{s!r} (did you mean {near[0]}?)" if near else repr(s))
    raise PermanentExchangeError(
        f"the synthetic market has no symbol {', '.join(hints)}; it models only "
        f"{', '.join(SYMBOLS)}. Use one of these, or market.source 'ccxt' or 'files' for others"
    )


def _profile(symbol: str) -> tuple[float, float, float, float]:
    check_symbols([symbol])
    return _PROFILES[symbol]


def _rng(seed: int, symbol: str, stream: str, block: int) -> np.random.Generator:
    key = [seed, zlib.crc32(symbol.encode()), zlib.crc32(stream.encode()), block]
    return np.random.default_rng(np.random.SeedSequence(key))


@lru_cache(maxsize=64)
def _regime(seed: int, symbol: str, n_days: int) -> np.ndarray:
    """Daily volatility multiplier: log-vol follows AR(1) (phi 0.94), one value per UTC day."""
    shocks = _rng(seed, symbol, "regime", 0).standard_normal(n_days + 1) * 0.08
    regime = np.empty(n_days)
    level = 0.0
    for d in range(n_days):  # a few thousand steps at most; a loop keeps it causal and exact
        level = 0.94 * level + shocks[d]
        regime[d] = level
    return np.exp(regime)


@lru_cache(maxsize=16)
def _block(seed: int, symbol: str, b: int) -> tuple[np.ndarray, ...]:
    """Block ``b`` of the 5-minute path: (cumulative log return within the block, z, vol
    multiplier, sigma), read-only. Memoised (16 blocks, ~8 MB at most): a replay asks the
    block of its clock time for every price, hour after hour."""
    _, _, _, annual_vol = _profile(symbol)
    z = _rng(seed, symbol, "z", b).standard_normal((_BLOCK, 5))
    jumps_u = _rng(seed, symbol, "j", b).random(_BLOCK)
    index = np.arange(b * _BLOCK, (b + 1) * _BLOCK)
    day_of = (index * BASE_MS) // _DAY_MS
    vol_mult = _regime(seed, symbol, int(day_of[-1]) + 1)[day_of]
    sigma = annual_vol * np.sqrt(BASE_MS / _YEAR_MS) * vol_mult
    jumps = np.where(jumps_u < 0.0004, z[:, 4] * 0.02, 0.0)
    out = (np.cumsum(sigma * z[:, 0] - 0.5 * sigma**2 + jumps), z, vol_mult, sigma)
    for a in out:
        a.setflags(write=False)  # shared by every caller of the memo
    return out


@lru_cache(maxsize=4096)
def _level_before(seed: int, symbol: str, b: int) -> float:
    """Log price level (relative to the start price) at the start of block ``b``.

    Built block by block from the origin and memoised, so the path is identical
    whichever window is asked for, and memory stays one block at a time.
    """
    if b == 0:
        return 0.0
    return _level_before(seed, symbol, b - 1) + float(_block(seed, symbol, b - 1)[0][-1])


def _base_window(seed: int, symbol: str, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """5-minute candles [start, stop) of ``symbol`` since ORIGIN_MS: (o, h, l, c, v)."""
    price0, vol0, _, _ = _profile(symbol)
    for b in range(start // _BLOCK):  # warm the memo iteratively (no deep recursion)
        _level_before(seed, symbol, b)
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for b in range(start // _BLOCK, -(-stop // _BLOCK)):
        cum, z, vol_mult, sigma = _block(seed, symbol, b)
        level = _level_before(seed, symbol, b)
        close = price0 * np.exp(level + cum)
        open_ = np.concatenate(([price0 * np.exp(level)], close[:-1]))
        high = np.maximum(open_, close) * np.exp(np.abs(z[:, 1]) * sigma * 0.6)
        low = np.minimum(open_, close) * np.exp(-np.abs(z[:, 2]) * sigma * 0.6)
        volume = vol0 * vol_mult * np.exp(0.4 * z[:, 3])
        lo, hi = max(start - b * _BLOCK, 0), min(stop - b * _BLOCK, _BLOCK)
        for part, arr in zip(parts, (open_, high, low, close, volume), strict=True):
            part.append(arr[lo:hi])
    return tuple(np.concatenate(p) for p in parts)


class SyntheticSource:
    """MarketSource over the synthetic market. Deterministic for a given seed."""

    name = "synthetic"

    def __init__(self, seed: int = 42) -> None:
        self.seed = int(seed)

    @classmethod
    def from_spec(cls, spec: dict) -> SyntheticSource:
        return cls(seed=int(spec.get("seed", 42)))

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        check_symbols([symbol])
        tf = timeframe_ms(timeframe)
        if tf < BASE_MS or tf % BASE_MS:
            raise PermanentExchangeError(
                f"the synthetic market has no {timeframe} candles (smallest is 5m); use 5m or larger"
            )
        last_open = last_closed_open_ms(timeframe, now_ms)
        first_open = max(ORIGIN_MS, last_open - (limit - 1) * tf)
        first_open = first_open_at_or_after_ms(timeframe, first_open)  # on the grid last_open is on
        if last_open < first_open:
            return Candles.from_rows(symbol, timeframe, [], "synthetic")
        per = tf // BASE_MS
        start = (first_open - ORIGIN_MS) // BASE_MS
        stop = (last_open + tf - ORIGIN_MS) // BASE_MS
        k = (stop - start) // per
        o, h, lo, c, v = _base_window(self.seed, symbol, int(start), int(stop))

        def group(a: np.ndarray) -> np.ndarray:
            return a.reshape(int(k), int(per))

        ts = first_open + np.arange(k, dtype=np.int64) * tf
        return Candles(
            symbol, timeframe, ts, group(o)[:, 0].copy(), group(h).max(axis=1), group(lo).min(axis=1),
            group(c)[:, -1].copy(), group(v).sum(axis=1), "synthetic",
        )

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        """The ticker at ``now_ms``: ``fetch_quotes``' last price (None before the market's
        first candle). A symbol the market does not model is refused
        (PermanentExchangeError), not priced."""
        return {s: (q.last if q is not None else None)
                for s, q in self.fetch_quotes(symbols, now_ms=now_ms).items()}

    def fetch_quotes(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, Quote | None]:
        """What a replayed daemon's ticker says at ``now_ms``: the OPEN of the 5-minute candle
        whose open time is the last one <= ``now_ms`` (the candle starting at the clock
        time, the one a backtest fills at), with bid = ask = last = that open (no spread
        is invented) as of that open time. None before the market's first candle."""
        check_symbols(symbols)
        out: dict[str, Quote | None] = {}
        for sym in symbols:
            if now_ms < ORIGIN_MS:
                out[sym] = None
                continue
            i = (now_ms - ORIGIN_MS) // BASE_MS
            open_ = _base_window(self.seed, sym, int(i), int(i) + 1)[0]
            out[sym] = Quote.flat(float(open_[0]), ORIGIN_MS + int(i) * BASE_MS)
        return out

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        check_symbols(symbols)
        return {s: MarketRules(s, _profile(s)[2], _profile(s)[2], MIN_NOTIONAL_USD) for s in symbols}

    def close(self) -> None:
        pass
