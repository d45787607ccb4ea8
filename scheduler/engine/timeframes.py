"""Timeframe strings (ccxt/Binance style) and their lengths. No third-party imports."""

from __future__ import annotations

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
HOUR_MS, DAY_MS = _UNIT_MS["h"], _UNIT_MS["d"]

#: Timeframes the project accepts (Binance spot's kline intervals, minus 1s/1M).
TIMEFRAMES = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
)

_LENGTH_MS = {tf: int(tf[:-1]) * _UNIT_MS[tf[-1]] for tf in TIMEFRAMES}


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle of ``timeframe`` in milliseconds; ValueError if unknown."""
    length = _LENGTH_MS.get(timeframe) if isinstance(timeframe, str) else None
    if length is None:
        raise ValueError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}"
        )
    return length


def grid_offset_ms(timeframe: str) -> int:
    """Where ``timeframe``'s candle grid starts after the Unix epoch: candles open at
    ``offset + k * length``. 0 but for weeks, which open on Mondays (1970-01-05)."""
    return 4 * 86_400_000 if timeframe.endswith("w") else 0


def first_open_at_or_after_ms(timeframe: str, t_ms: int) -> int:
    """The first candle open of ``timeframe``'s grid at or after ``t_ms``."""
    length, offset = timeframe_ms(timeframe), grid_offset_ms(timeframe)
    return -(-(t_ms - offset) // length) * length + offset


def last_closed_open_ms(timeframe: str, now_ms: int) -> int:
    """Open time of the most recent candle that had closed at ``now_ms``.

    Candles are aligned to the Unix epoch (as Binance aligns them; weekly
    candles are aligned to Monday, which the epoch offset below accounts for).
    A candle opening at t closes at t + length; it is closed when close <= now.
    """
    length = timeframe_ms(timeframe)
    offset = grid_offset_ms(timeframe)
    forming_open = ((now_ms - offset) // length) * length + offset
    return forming_open - length
