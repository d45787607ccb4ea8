"""IV rank (pure): where today's implied volatility sits in its trailing-year range.

- From DVOL (Deribit's 30-day implied-volatility index), REFERENCE section 7:
  ``rank = (DVOL now - min) / (max - min) x 100`` over the daily DVOL closes of the
  trailing ``window_days`` (365) days, ``method="dvol"``.
- Where there is no DVOL (ETH offline, say): a realized-volatility percentile,
  ``method="realized_vol_percentile"``. The measure is the annualised close-to-close
  volatility of log returns over the trailing ``vol_window_days`` (30) closes,
  ``std(ln(c_i / c_{i-1}), ddof=1) x sqrt(periods per year)``; its rank is the share of
  the same measure's values over the trailing ``window_days`` that lie below today's,
  ``100 x (#{v <= now} - 1) / (n - 1)``: 0 when today's is the year's lowest, 100 when
  it is the highest, as the DVOL rank's ends. It is NOT an implied-vol rank, and says so.

No look-ahead, by construction: the series are ``(ts_ms, value)`` bars whose ``ts_ms``
is the bar's OPEN time (as Deribit's ``get_volatility_index_data`` and candles give
them); a close is known only at ``ts_ms + bar_ms``, and only closes known at or before
``now_ms`` are used. Pass ``bar_ms=0`` when ``ts_ms`` already is the time the value
was observed. A later spike therefore cannot change a past rank.

Not enough to rank on is a value, not an exception: ``IvRankUnavailable`` with a reason
code (``NO_DATA``, ``TOO_LITTLE_HISTORY``, ``STALE``, ``FLAT_HISTORY``) and a message
saying what is missing. Non-finite or non-positive values (NaN, inf, 0) are dropped
before counting. Malformed input (not pairs, duplicate or non-finite timestamps) raises
ValueError. ``iv_rank`` tries DVOL and falls back to realized vol, saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365.0

Method = Literal["dvol", "realized_vol_percentile"]
Series = Any  # Sequence[tuple[ts_ms, value]] | np.ndarray of shape (n, 2)


@dataclass(frozen=True)
class IvRank:
    """An IV rank in percent (0..100), how it was measured and on what.

    ``now_value``, ``min`` and ``max`` are in vol percent (DVOL's unit; realized vol
    annualised, x 100). ``n_obs``: the values ranked over (DVOL closes, or realized-vol
    values). ``as_of_ms``: when the latest value used became known.
    """

    value_pct: float
    method: Method
    window_days: int
    n_obs: int
    now_value: float
    min: float
    max: float
    as_of_ms: int
    vol_window_days: int | None = None  # realized vol only: closes per realized-vol value
    fallback_reason: str | None = None  # set by ``iv_rank`` when DVOL could not be used

    @property
    def label(self) -> str:
        """What to print beside the number: an implied-vol rank or a realized-vol one."""
        if self.method == "dvol":
            return f"IV rank (DVOL, {self.window_days}d)"
        return f"realized-vol percentile ({self.vol_window_days}d vol over {self.window_days}d; no DVOL)"


@dataclass(frozen=True)
class IvRankUnavailable:
    """No rank, and why: ``reason`` is a code, ``detail`` says what is missing."""

    method: Method
    reason: Literal["NO_DATA", "TOO_LITTLE_HISTORY", "STALE", "FLAT_HISTORY"]
    detail: str


def iv_rank_from_dvol(
    dvol: Series, now_ms: int, *, bar_ms: int, window_days: int = 365, min_obs: int = 300,
    max_age_ms: int = 2 * DAY_MS,
) -> IvRank | IvRankUnavailable:
    """(DVOL now - min) / (max - min) x 100 over the DVOL closes known at ``now_ms`` in
    the trailing ``window_days`` (REFERENCE section 7). ``min_obs`` closes are needed
    (300 of 365 by default: a rank over a few weeks is not a year's rank), and the
    latest must be at most ``max_age_ms`` old."""
    known_ms, values = _known_closes(dvol, now_ms, bar_ms, "dvol")
    in_window = known_ms > now_ms - window_days * DAY_MS
    known_ms, values = known_ms[in_window], values[in_window]
    why = _why_not(known_ms, now_ms, min_obs, max_age_ms, window_days, "DVOL closes")
    if why:
        return IvRankUnavailable("dvol", *why)
    return _rank_by_range(values, known_ms, window_days)


def iv_rank_from_realized_vol(
    closes: Series, now_ms: int, *, bar_ms: int, vol_window_days: int = 30,
    window_days: int = 365, min_obs: int = 300, max_age_ms: int = 2 * DAY_MS,
) -> IvRank | IvRankUnavailable:
    """Percentile of today's ``vol_window_days`` realized vol among the same measure over
    the trailing ``window_days``, from daily closes (``(ts_ms, price)``) known at
    ``now_ms``. Annualised with sqrt(365 / median spacing in days): crypto trades every
    day. ``min_obs`` realized-vol values are needed, i.e. ``min_obs + vol_window_days``
    closes."""
    known_ms, prices = _known_closes(closes, now_ms, bar_ms, "closes")
    # A close older than the window plus the vol window cannot enter any value ranked.
    keep = known_ms > now_ms - (window_days + vol_window_days + 1) * DAY_MS
    known_ms, prices = known_ms[keep], prices[keep]
    if known_ms.size < vol_window_days + 2:
        return IvRankUnavailable(
            "realized_vol_percentile", "TOO_LITTLE_HISTORY" if known_ms.size else "NO_DATA",
            f"{known_ms.size} closes known at now_ms={now_ms} in the trailing {window_days + vol_window_days} "
            f"days; a realized-vol percentile needs {min_obs + vol_window_days + 1} "
            f"({min_obs} values of {vol_window_days}-close vol)",
        )
    log_ret = np.diff(np.log(prices))
    windows = np.lib.stride_tricks.sliding_window_view(log_ret, vol_window_days)
    spacing_days = float(np.median(np.diff(known_ms))) / DAY_MS
    rv_pct = windows.std(axis=1, ddof=1) * np.sqrt(DAYS_PER_YEAR / spacing_days) * 100.0
    rv_ms = known_ms[vol_window_days:]  # each value is known with its last close
    in_window = rv_ms > now_ms - window_days * DAY_MS
    rv_ms, rv_pct = rv_ms[in_window], rv_pct[in_window]
    why = _why_not(rv_ms, now_ms, min_obs, max_age_ms, window_days, "realized-vol values")
    if why:
        return IvRankUnavailable("realized_vol_percentile", *why)
    now = rv_pct[-1]
    lo, hi = float(rv_pct.min()), float(rv_pct.max())
    if hi == lo:
        return IvRankUnavailable("realized_vol_percentile", "FLAT_HISTORY", _flat(lo, rv_pct.size, window_days))
    rank = 100.0 * (np.count_nonzero(rv_pct <= now) - 1) / (rv_pct.size - 1)
    return IvRank(
        value_pct=float(rank), method="realized_vol_percentile", window_days=window_days,
        n_obs=int(rv_pct.size), now_value=float(now), min=lo, max=hi, as_of_ms=int(rv_ms[-1]),
        vol_window_days=vol_window_days,
    )


def iv_rank(
    now_ms: int, *, dvol: Series | None, closes: Series | None, bar_ms: int,
    window_days: int = 365, vol_window_days: int = 30, min_obs: int = 300,
    max_age_ms: int = 2 * DAY_MS,
) -> IvRank | IvRankUnavailable:
    """The DVOL rank where DVOL can give one, else the realized-vol percentile from
    ``closes`` with ``fallback_reason`` saying why DVOL was not used. Both series use
    the same ``bar_ms`` (daily bars: ``DAY_MS``)."""
    reason = "no DVOL series given"
    if dvol is not None:
        r = iv_rank_from_dvol(dvol, now_ms, bar_ms=bar_ms, window_days=window_days,
                              min_obs=min_obs, max_age_ms=max_age_ms)
        if isinstance(r, IvRank):
            return r
        reason = f"{r.reason}: {r.detail}"
    if closes is None:
        return IvRankUnavailable("realized_vol_percentile", "NO_DATA",
                                 f"no closes to fall back on ({reason})")
    rv = iv_rank_from_realized_vol(closes, now_ms, bar_ms=bar_ms, vol_window_days=vol_window_days,
                                   window_days=window_days, min_obs=min_obs, max_age_ms=max_age_ms)
    if isinstance(rv, IvRank):
        return IvRank(**{**rv.__dict__, "fallback_reason": reason})
    return rv


def _known_closes(series: Series, now_ms: int, bar_ms: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(time known in ms, value) of the finite, positive values known at ``now_ms``, by time."""
    if bar_ms < 0:
        raise ValueError(f"bar_ms must be >= 0 (the bar length; 0 when ts_ms is the observation time), got {bar_ms}")
    arr = _pairs(series, name)
    ts = arr[:, 0]
    if not np.isfinite(ts).all():
        raise ValueError(f"{name}: every ts_ms must be a finite number of ms; got {ts[~np.isfinite(ts)][0]}")
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], arr[order, 1]
    if (np.diff(ts) == 0).any():
        dup = ts[1:][np.diff(ts) == 0][0]
        raise ValueError(f"{name}: duplicate ts_ms {int(dup)}; give one value per bar")
    known_ms = ts + bar_ms
    ok = (known_ms <= now_ms) & np.isfinite(values) & (values > 0)
    return known_ms[ok].astype(np.int64), values[ok]


def _pairs(series: Series, name: str) -> np.ndarray:
    if isinstance(series, str | bytes):
        raise ValueError(f"{name} must be (ts_ms, value) pairs, got a string")
    if isinstance(series, Sequence) and len(series) == 0:
        return np.empty((0, 2))
    try:
        arr = np.asarray(series, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be (ts_ms, value) pairs of numbers: {e}") from e
    if arr.size == 0:
        return np.empty((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be (ts_ms, value) pairs, an array of shape (n, 2); got shape {arr.shape}")
    return arr


def _why_not(
    known_ms: np.ndarray, now_ms: int, min_obs: int, max_age_ms: int, window_days: int, what: str,
) -> tuple[Literal["NO_DATA", "TOO_LITTLE_HISTORY", "STALE"], str] | None:
    if known_ms.size == 0:
        return "NO_DATA", f"no {what} known at now_ms={now_ms} in the trailing {window_days} days"
    if known_ms.size < max(min_obs, 2):
        return "TOO_LITTLE_HISTORY", (
            f"{known_ms.size} {what} in the trailing {window_days} days up to now_ms={now_ms}, "
            f"{max(min_obs, 2)} needed (the earliest is from {int(known_ms[0])})"
        )
    age_ms = now_ms - int(known_ms[-1])
    if age_ms > max_age_ms:
        return "STALE", (
            f"the latest of the {what} became known at {int(known_ms[-1])}, {age_ms / DAY_MS:.1f} days "
            f"before now_ms={now_ms} (at most {max_age_ms / DAY_MS:.1f} days allowed)"
        )
    return None


def _rank_by_range(values: np.ndarray, known_ms: np.ndarray, window_days: int) -> IvRank | IvRankUnavailable:
    now = float(values[-1])
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return IvRankUnavailable("dvol", "FLAT_HISTORY", _flat(lo, values.size, window_days))
    return IvRank(
        value_pct=100.0 * (now - lo) / (hi - lo), method="dvol", window_days=window_days,
        n_obs=int(values.size), now_value=now, min=lo, max=hi, as_of_ms=int(known_ms[-1]),
    )


def _flat(value: float, n: int, window_days: int) -> str:
    return f"all {n} values in the trailing {window_days} days equal {value}: max == min, no range to rank in"
