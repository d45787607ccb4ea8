"""Option delivery (settlement) prices. Pure and standard library only: the daemon imports
it (and never numpy), and a backtest can call it on any candles.

Deribit options expire at 08:00 UTC and settle at the delivery price: the average of the
underlying's index over the 30 minutes before expiry
(https://www.deribit.com/kb/deribit-introduction-policy, "Expiration and Settlement").
Deribit publishes that price per day (``public/get_delivery_prices``, one record per date,
newest first); where it cannot be had, the nearest thing from candles is the mean of the
closes of the spot candles that open in ``[expiry - 30 min, expiry)``
(``delivery_from_candles``): spot of one exchange, not Deribit's multi-exchange index, and a
close per bar, not Deribit's per-second samples, so it is close to, not equal to, the real
delivery price, and every caller says which one it used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from options.chain import positive_or_none
from scheduler.engine.timeframes import DAY_MS

#: Deribit averages its index over the 30 minutes before expiry.
WINDOW_MS = 30 * 60_000
#: every Deribit option expires at 08:00 UTC
EXPIRY_OFFSET_MS = 8 * 3_600_000
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def window_bars(timeframe_ms: int) -> int:
    """How many bars of ``timeframe_ms`` cover the 30-minute window exactly (30 of 1m, 6 of
    5m, 2 of 15m, 1 of 30m); ValueError for a length that does not divide 30 minutes."""
    if isinstance(timeframe_ms, bool) or not isinstance(timeframe_ms, int) or timeframe_ms <= 0 \
            or WINDOW_MS % timeframe_ms:
        raise ValueError(f"timeframe_ms {timeframe_ms!r} does not divide the 30-minute delivery window "
                         f"({WINDOW_MS} ms); use 1m, 3m, 5m, 15m or 30m candles (60000, 180000, 300000, "
                         "900000 or 1800000 ms)")
    return WINDOW_MS // timeframe_ms


def delivery_from_candles(rows: Iterable[Sequence[Any]], expiry_ms: int, timeframe_ms: int) -> float | None:
    """The mean of the closes of the bars that open in ``[expiry_ms - 30 min, expiry_ms)``.

    ``rows`` are ``(open_ms, open, high, low, close, ...)`` in any order (extra columns such
    as volume are ignored; rows outside the window are ignored). The window must be covered
    exactly: every bar ``expiry_ms - 30 min + k * timeframe_ms`` (k = 0 .. n - 1; n = 30 for
    1m, 6 for 5m, 2 for 15m) present once, with a finite positive close, and no other bar
    (off the grid, or duplicated) opening inside the window. Otherwise None: a window with a
    hole, or bars of another grid, is never averaged; nor is anything when a row is
    malformed (fewer than 5 fields, an open time that is not a whole number). The sum is ``math.fsum`` (exactly
    rounded), so the result does not depend on the order of the rows.

    ValueError when ``timeframe_ms`` does not divide 30 minutes (``window_bars``).
    """
    n = window_bars(timeframe_ms)
    start_ms = int(expiry_ms) - WINDOW_MS
    closes: dict[int, float] = {}
    for row in rows:
        if len(row) < 5:
            return None
        open_ms = _integral(row[0])
        if open_ms is None:
            return None
        if not start_ms <= open_ms < expiry_ms:
            continue
        offset = open_ms - start_ms
        close = positive_or_none(row[4])
        if offset % timeframe_ms or open_ms in closes or close is None:
            return None  # off the grid, duplicated, or no usable close: not this window
        closes[open_ms] = close
    if len(closes) != n:
        return None
    return math.fsum(closes.values()) / n


def delivery_date(expiry_ms: int) -> str:
    """The UTC date of an expiry, as Deribit's delivery-price records name it (``2026-03-27``)."""
    return datetime.fromtimestamp(expiry_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def is_expiry_ms(value: Any) -> bool:
    """True for an integer ms at 08:00:00.000 UTC (a Deribit expiry)."""
    return isinstance(value, int) and not isinstance(value, bool) and value % DAY_MS == EXPIRY_OFFSET_MS


def utc_text(ms: int) -> str:
    """``2026-03-27 08:00 UTC``: for messages."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def days_between(newer_date: str, older_date: str) -> int:
    """Whole days from ``older_date`` to ``newer_date`` (both ``YYYY-MM-DD``)."""
    return (datetime.strptime(newer_date, "%Y-%m-%d") - datetime.strptime(older_date, "%Y-%m-%d")).days


def next_date(date: str) -> str:
    return (datetime.strptime(date, "%Y-%m-%d") + timedelta(days=1)).strftime("%Y-%m-%d")


def delivery_records(data: Any) -> dict[str, float]:
    """``{date: delivery_price}`` from the ``data`` list of ``public/get_delivery_prices``
    (``[{"date": "2026-03-27", "delivery_price": 70123.4}, ...]``); rows without a
    ``YYYY-MM-DD`` date or a finite positive price are left out."""
    out: dict[str, float] = {}
    if not isinstance(data, list):
        return out
    for row in data:
        if not isinstance(row, Mapping):
            continue
        date, price = row.get("date"), positive_or_none(row.get("delivery_price"))
        if isinstance(date, str) and _DATE_RE.fullmatch(date) and price is not None:
            out.setdefault(date, price)
    return out


def _integral(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return int(x) if math.isfinite(x) and x.is_integer() else None
