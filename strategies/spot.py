"""The classic spot strategies (go-trader list-strategies), as pure functions of closed bars.

Each strategy is a ``Spec``: ``compute(bars, params)`` returns the int8 signal
and the float64 indicator arrays behind it (one value per bar, the value at bar
t computed from bars 0..t only); ``explain(ind, params, t)`` gives, for bar t,
the values that decided it and how far each condition was from firing;
``min_bars(params)`` is the number of bars before the signal is defined
(warm-up plus the previous bar a crossing compares with).

"Crosses up through X" is ``x[t] > X and x[t-1] <= X``; "crosses down through
X" is ``x[t] < X and x[t-1] >= X``. A NaN on either bar never crosses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from strategies import indicators as ind

Bars = Mapping[str, np.ndarray]  # "open", "high", "low", "close", "volume", (pairs) "close_b"
Arrays = dict[str, np.ndarray]
Params = Mapping[str, float]


@dataclass(frozen=True)
class Spec:
    compute: Callable[[Bars, Params], tuple[np.ndarray, Arrays]]
    explain: Callable[[Arrays, Params, int], dict[str, object]]
    min_bars: Callable[[Params], int]
    columns: tuple[str, ...] = ("close",)


def crosses_above(x: np.ndarray, level: float | np.ndarray) -> np.ndarray:
    """True at t where x[t] > level[t] and x[t-1] <= level[t-1] (False at t = 0)."""
    lv = np.broadcast_to(np.asarray(level, dtype=np.float64), x.shape)
    out = np.zeros(len(x), dtype=bool)
    out[1:] = (x[1:] > lv[1:]) & (x[:-1] <= lv[:-1])
    return out


def crosses_below(x: np.ndarray, level: float | np.ndarray) -> np.ndarray:
    """True at t where x[t] < level[t] and x[t-1] >= level[t-1] (False at t = 0)."""
    lv = np.broadcast_to(np.asarray(level, dtype=np.float64), x.shape)
    out = np.zeros(len(x), dtype=bool)
    out[1:] = (x[1:] < lv[1:]) & (x[:-1] >= lv[:-1])
    return out


def to_signal(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """int8 signal: 1 where only buy, -1 where only sell, else 0."""
    return (buy.astype(np.int8) - sell.astype(np.int8)).astype(np.int8)


def _at(a: np.ndarray, t: int) -> float:
    return float(a[t]) if t >= 0 else float("nan")


def _diff_cross(name_a: str, name_b: str, label: str) -> Callable[[Arrays, Params, int], dict[str, object]]:
    """Explanation for "line a crosses line b": the gap now and on the previous bar."""

    def explain(arrays: Arrays, params: Params, t: int) -> dict[str, object]:
        a, b = arrays[name_a], arrays[name_b]
        gap, prev = _at(a, t) - _at(b, t), _at(a, t - 1) - _at(b, t - 1)
        return {
            name_a: _at(a, t), name_b: _at(b, t),
            label: gap, f"prev_{label}": prev,
            # a buy needs the gap to go from <= 0 to > 0; a sell from >= 0 to < 0
            "state": "above" if gap > 0 else "below" if gap < 0 else "equal",
        }

    return explain


# --- sma_crossover / ema_crossover -------------------------------------------------


def _ma_cross(fn: Callable[[np.ndarray, int], np.ndarray], prefix: str):
    def compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
        fast, slow = fn(bars["close"], int(p["fast"])), fn(bars["close"], int(p["slow"]))
        gap = fast - slow
        return to_signal(crosses_above(gap, 0.0), crosses_below(gap, 0.0)), {
            f"{prefix}_fast": fast, f"{prefix}_slow": slow,
        }

    return compute


SMA_CROSSOVER = Spec(
    _ma_cross(ind.sma, "sma"), _diff_cross("sma_fast", "sma_slow", "fast_minus_slow"),
    lambda p: int(p["slow"]) + 1,
)
EMA_CROSSOVER = Spec(
    _ma_cross(ind.ema, "ema"), _diff_cross("ema_fast", "ema_slow", "fast_minus_slow"),
    lambda p: int(p["slow"]) + 1,
)


# --- rsi ---------------------------------------------------------------------------


def _rsi_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    r = ind.rsi(bars["close"], int(p["period"]))
    return to_signal(crosses_above(r, p["oversold"]), crosses_below(r, p["overbought"])), {"rsi": r}


def _rsi_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    r = _at(a["rsi"], t)
    return {
        "rsi": r, "prev_rsi": _at(a["rsi"], t - 1),
        "oversold": p["oversold"], "overbought": p["overbought"],
        # buy: RSI must have been <= oversold and rise above it; sell: the mirror
        "rsi_to_oversold": r - p["oversold"], "rsi_to_overbought": p["overbought"] - r,
    }


RSI = Spec(_rsi_compute, _rsi_explain, lambda p: int(p["period"]) + 2)


# --- bollinger_bands ---------------------------------------------------------------


def _bb_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    """Buy: close crosses back above the lower band (close[t] > lower[t], close[t-1] <= lower[t-1]);
    sell: close crosses back below the upper band. Bands use the sample std (ddof=1)."""
    c = bars["close"]
    upper, mid, lower = ind.bollinger(c, int(p["period"]), float(p["num_std"]))
    # Zero-width bands (a flat window) carry no information: a close "on" them is
    # not a touch, so they count as undefined and cannot produce a crossing.
    flat = upper == lower
    upper[flat] = np.nan
    lower[flat] = np.nan
    buy = crosses_above(c, lower)
    sell = crosses_below(c, upper)
    return to_signal(buy, sell), {"bb_upper": upper, "bb_middle": mid, "bb_lower": lower, "close": c}


def _bb_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    c, up, lo = a["close"], a["bb_upper"], a["bb_lower"]
    return {
        "close": _at(c, t), "bb_upper": _at(up, t), "bb_middle": _at(a["bb_middle"], t),
        "bb_lower": _at(lo, t),
        "close_minus_lower": _at(c, t) - _at(lo, t),
        "prev_close_minus_lower": _at(c, t - 1) - _at(lo, t - 1),
        "upper_minus_close": _at(up, t) - _at(c, t),
        "prev_upper_minus_close": _at(up, t - 1) - _at(c, t - 1),
    }


BOLLINGER_BANDS = Spec(_bb_compute, _bb_explain, lambda p: int(p["period"]) + 1)


# --- macd / rsi_macd_combo -------------------------------------------------------------


def _macd_arrays(c: np.ndarray, p: Params) -> Arrays:
    line, sig, hist = ind.macd(c, int(p["fast"]), int(p["slow"]), int(p["signal"]))
    return {"macd": line, "macd_signal": sig, "macd_hist": hist}


def _macd_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    a = _macd_arrays(bars["close"], p)
    h = a["macd_hist"]
    return to_signal(crosses_above(h, 0.0), crosses_below(h, 0.0)), a


def _macd_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    h = a["macd_hist"]
    now, prev = _at(h, t), _at(h, t - 1)
    return {
        "macd": _at(a["macd"], t), "macd_signal": _at(a["macd_signal"], t),
        "macd_minus_signal": now, "prev_macd_minus_signal": prev,
        "macd_cross": "bullish" if now > 0 >= prev else "bearish" if now < 0 <= prev else None,
    }


MACD = Spec(_macd_compute, _macd_explain, lambda p: int(p["slow"]) + int(p["signal"]))


def _combo_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    c = bars["close"]
    a = _macd_arrays(c, p)
    r = ind.rsi(c, int(p["rsi_period"]))
    h = a["macd_hist"]
    buy = crosses_above(h, 0.0) & (r < p["oversold"])
    sell = crosses_below(h, 0.0) & (r > p["overbought"])
    a["rsi"] = r
    return to_signal(buy, sell), a


def _combo_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    out = _macd_explain(a, p, t)
    r = _at(a["rsi"], t)
    out.update({
        "rsi": r, "oversold": p["oversold"], "overbought": p["overbought"],
        # a buy needs rsi_to_oversold < 0, a sell needs rsi_to_overbought < 0
        "rsi_to_oversold": r - p["oversold"], "rsi_to_overbought": p["overbought"] - r,
    })
    return out


RSI_MACD_COMBO = Spec(
    _combo_compute, _combo_explain,
    lambda p: max(int(p["slow"]) + int(p["signal"]), int(p["rsi_period"]) + 1),
)


# --- mean_reversion / pairs_spread ---------------------------------------------------


def _z_signal(z: np.ndarray, p: Params) -> np.ndarray:
    return to_signal(crosses_above(z, -float(p["entry_z"])), crosses_below(z, float(p["exit_z"])))


def _mr_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    c = bars["close"]
    n = int(p["lookback"])
    mean, std = ind.rolling_mean_std(c, n)
    z = _z(c, mean, std)
    return _z_signal(z, p), {"sma": mean, "std": std, "zscore": z}


def _z(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std, NaN where std is 0 or NaN (same as indicators.zscore)."""
    out = x - mean
    ok = std > 0.0
    np.divide(out, std, out=out, where=ok)
    out[~ok] = np.nan
    return out


def _z_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    z = _at(a["zscore"], t)
    out = {k: _at(v, t) for k, v in a.items() if k != "zscore"}
    out.update({
        "zscore": z, "prev_zscore": _at(a["zscore"], t - 1),
        "buy_below": -float(p["entry_z"]), "sell_above": float(p["exit_z"]),
        # buy: z must have been <= -entry and rise above it; sell: >= exit and fall below
        "z_to_entry": z + float(p["entry_z"]), "z_to_exit": float(p["exit_z"]) - z,
    })
    return out


MEAN_REVERSION = Spec(_mr_compute, _z_explain, lambda p: int(p["lookback"]) + 1)


def _pairs_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    """On bars already aligned on timestamps (see api.align_pair)."""
    ratio = bars["close"] / bars["close_b"]
    n = int(p["lookback"])
    mean, std = ind.rolling_mean_std(ratio, n)
    z = _z(ratio, mean, std)
    return _z_signal(z, p), {
        "close_b": bars["close_b"], "ratio": ratio, "ratio_mean": mean, "ratio_std": std, "zscore": z,
    }


PAIRS_SPREAD = Spec(_pairs_compute, _z_explain, lambda p: int(p["lookback"]) + 1, ("close", "close_b"))


# --- momentum ----------------------------------------------------------------------


def _mom_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    r = ind.roc(bars["close"], int(p["period"]))
    th = float(p["threshold_pct"])
    return to_signal(crosses_above(r, th), crosses_below(r, -th)), {"roc_pct": r}


def _mom_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    r, th = _at(a["roc_pct"], t), float(p["threshold_pct"])
    return {
        "roc_pct": r, "prev_roc_pct": _at(a["roc_pct"], t - 1), "threshold_pct": th,
        "roc_to_buy": th - r, "roc_to_sell": r + th,
    }


MOMENTUM = Spec(_mom_compute, _mom_explain, lambda p: int(p["period"]) + 2)


# --- volume_weighted ----------------------------------------------------------------


def _vw_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    c, v = bars["close"], bars["volume"]
    n = int(p["period"])
    s, vs = ind.sma(c, n), ind.volume_sma(v, n)
    high_volume = v > float(p["volume_mult"]) * vs
    gap = c - s
    buy = crosses_above(gap, 0.0) & high_volume
    sell = crosses_below(gap, 0.0) & high_volume
    return to_signal(buy, sell), {"close": c, "sma": s, "volume": v, "volume_sma": vs}


def _vw_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    c, s, v, vs = (_at(a[k], t) for k in ("close", "sma", "volume", "volume_sma"))
    needed = float(p["volume_mult"]) * vs
    return {
        "close": c, "sma": s, "close_minus_sma": c - s,
        "prev_close_minus_sma": _at(a["close"], t - 1) - _at(a["sma"], t - 1),
        "volume": v, "volume_sma": vs, "volume_needed": needed,
        "volume_ratio": v / vs if vs > 0 else None, "high_volume": bool(v > needed),
    }


VOLUME_WEIGHTED = Spec(_vw_compute, _vw_explain, lambda p: int(p["period"]) + 1, ("close", "volume"))


# --- triple_ema ----------------------------------------------------------------------


def _tema_compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    c = bars["close"]
    f, m, s = (ind.ema(c, int(p[k])) for k in ("fast", "mid", "slow"))
    aligned = (f > m) & (m > s)
    valid = ~np.isnan(s)  # the slow EMA is the last to start
    prev_ok = np.zeros(len(c), dtype=bool)
    prev_ok[1:] = valid[:-1]
    was = np.zeros(len(c), dtype=bool)
    was[1:] = aligned[:-1]
    buy = aligned & ~was & prev_ok
    sell = ~aligned & was & valid
    return to_signal(buy, sell), {"ema_fast": f, "ema_mid": m, "ema_slow": s}


def _tema_explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    f, m, s = (a[k] for k in ("ema_fast", "ema_mid", "ema_slow"))

    def aligned(i: int) -> bool:
        return bool(_at(f, i) > _at(m, i) > _at(s, i))

    return {
        "ema_fast": _at(f, t), "ema_mid": _at(m, t), "ema_slow": _at(s, t),
        # the order holds while both gaps are > 0
        "fast_minus_mid": _at(f, t) - _at(m, t), "mid_minus_slow": _at(m, t) - _at(s, t),
        "aligned": aligned(t), "prev_aligned": aligned(t - 1),
    }


TRIPLE_EMA = Spec(_tema_compute, _tema_explain, lambda p: int(p["slow"]) + 1)
