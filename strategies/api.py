"""The entry points the checker and the daemon (and any replay) call.

``signal_series`` gives one signal per bar (for backtests); ``evaluate`` gives
the decision at the last bar with the values behind it (for the checker).
Both are pure: candles in, numbers out. Candles must be closed candles only;
the caller drops the forming one (``Candles.closed_at``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from strategies import catalog
from strategies import edge70 as _edge70
from strategies import spot as _spot

if TYPE_CHECKING:  # keep `import strategies` free of the market package
    from market.base import Candles

SPECS: Mapping[str, _spot.Spec] = {
    "sma_crossover": _spot.SMA_CROSSOVER,
    "ema_crossover": _spot.EMA_CROSSOVER,
    "rsi": _spot.RSI,
    "bollinger_bands": _spot.BOLLINGER_BANDS,
    "macd": _spot.MACD,
    "mean_reversion": _spot.MEAN_REVERSION,
    "momentum": _spot.MOMENTUM,
    "volume_weighted": _spot.VOLUME_WEIGHTED,
    "triple_ema": _spot.TRIPLE_EMA,
    "rsi_macd_combo": _spot.RSI_MACD_COMBO,
    "pairs_spread": _spot.PAIRS_SPREAD,
    "edge70": _edge70.EDGE70,
}

STRATEGY_NAMES: tuple[str, ...] = tuple(catalog.CATALOG)

if set(SPECS) != set(STRATEGY_NAMES):  # pragma: no cover - a wiring mistake, caught at import
    raise RuntimeError(f"strategy registry and catalog disagree: {sorted(set(SPECS) ^ set(STRATEGY_NAMES))}")

JsonValue = float | int | bool | str | None


@dataclass(frozen=True)
class SignalSeries:
    """One value per input bar. ``signal`` is int8 (1 buy, -1 sell, 0 hold), the value
    at bar t computed only from bars 0..t; ``indicators`` are float64, NaN in warm-up."""

    signal: np.ndarray
    indicators: dict[str, np.ndarray]


@dataclass(frozen=True)
class Evaluation:
    """The decision at the last bar, JSON-friendly (NaN becomes None)."""

    signal: int
    indicators: dict[str, JsonValue]


def min_bars(name: str, params: Mapping[str, object] | None = None) -> int:
    """Bars needed for a defined signal at the last bar (warm-up included).

    For pairs_spread these are bars present in both symbols. EMA-based strategies
    (ema_crossover, macd, triple_ema, rsi_macd_combo, rsi) are defined from this
    many bars but keep converging for a few hundred more; see ``recommended_bars``.
    """
    p = catalog.validate_params(name, params)
    return SPECS[name].min_bars(p)


# Parameters that are spans of exponential averages (their seed fades slowly).
_EMA_SPANS = {
    "ema_crossover": ("fast", "slow"), "macd": ("fast", "slow", "signal"),
    "triple_ema": ("fast", "mid", "slow"), "rsi": ("period",),
    "rsi_macd_combo": ("fast", "slow", "signal", "rsi_period"),
}


def recommended_bars(name: str, params: Mapping[str, object] | None = None) -> int:
    """How many bars a checker should fetch: ``min_bars`` plus, for strategies on
    exponential averages, enough history that the seed weighs less than 1e-6."""
    p = catalog.validate_params(name, params)
    spans = [int(p[k]) for k in _EMA_SPANS.get(name, ())]
    memory = max((math.ceil(math.log(1e-6) / math.log(1 - 1 / s)) for s in spans if s > 1), default=0)
    return SPECS[name].min_bars(p) + memory


def signal_series(
    name: str, candles: Candles, params: Mapping[str, object] | None = None,
    candles_b: Candles | None = None,
) -> SignalSeries:
    """The strategy's signal and indicators at every bar of ``candles``.

    pairs_spread needs ``candles_b``; the two are inner-joined on ``ts_ms``, and a
    bar of ``candles`` with no partner gets signal 0 and NaN indicators.
    Raises ValueError on an unknown strategy, bad parameters or non-finite prices.
    """
    p = catalog.validate_params(name, params)
    spec = SPECS[name]
    bars, rows = _bars(name, spec, candles, candles_b)
    signal, arrays = spec.compute(bars, p)
    if rows is None:
        return SignalSeries(signal, arrays)
    full_signal = np.zeros(len(candles), dtype=np.int8)
    full_signal[rows] = signal
    full = {}
    for key, arr in arrays.items():
        col = np.full(len(candles), np.nan)
        col[rows] = arr
        full[key] = col
    return SignalSeries(full_signal, full)


def evaluate(
    name: str, candles: Candles, params: Mapping[str, object] | None = None,
    candles_b: Candles | None = None,
) -> Evaluation:
    """The decision at the last bar of ``candles`` and the values that decided it.

    Too few bars is not an error: signal 0 with ``warming_up: True`` and
    ``bars_needed``. For a hold, the explanation says how far each condition
    was from firing. edge70 uses only the last ``min_bars`` candles (its replay).
    """
    p = catalog.validate_params(name, params)
    spec = SPECS[name]
    needed = spec.min_bars(p)
    if name == "edge70" and len(candles) > needed:
        candles = candles.tail(needed)
    bars, rows = _bars(name, spec, candles, candles_b)
    used = len(bars["close"])
    info: dict[str, JsonValue] = {"bars_used": used}
    if rows is not None:
        info["bars_aligned"] = used
        if not len(candles) or not len(rows) or rows[-1] != len(candles) - 1:
            info.update({"missing_partner": True, "reason": "no candle of the second symbol at the last bar's time"})
            return Evaluation(0, info)
    if used < needed:
        info.update({"warming_up": True, "bars_needed": needed})
        return Evaluation(0, info)
    signal, arrays = spec.compute(bars, p)
    t = used - 1
    info.update({k: _json(v) for k, v in spec.explain(arrays, p, t).items()})
    return Evaluation(int(signal[t]), info)


def _json(v: object) -> JsonValue:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None


def _column(candles: Candles, col: str, who: str) -> np.ndarray:
    arr = np.asarray(getattr(candles, col), dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{who} {candles.symbol} {candles.timeframe}: {col} is not finite ({arr[i]!r}) at bar {i} "
            f"(ts_ms {int(candles.ts_ms[i])}); drop or repair that candle before evaluating"
        )
    return arr


def _bars(
    name: str, spec: _spot.Spec, candles: Candles, candles_b: Candles | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The columns the strategy reads, checked finite; for pairs, aligned on ts_ms."""
    if name != "pairs_spread":
        if candles_b is not None:
            raise ValueError(f"{name} takes one symbol; candles_b is only for pairs_spread")
        return {c: _column(candles, c, name) for c in spec.columns}, None
    if candles_b is None:
        raise ValueError("pairs_spread needs the second symbol's candles (candles_b), e.g. ETH/USDT for BTC/USDT")
    if candles_b.timeframe != candles.timeframe:
        raise ValueError(
            f"pairs_spread needs both symbols on one timeframe, got {candles.timeframe} and {candles_b.timeframe}"
        )
    close_a = _column(candles, "close", name)
    close_b = _column(candles_b, "close", name)
    _, rows, rows_b = np.intersect1d(
        np.asarray(candles.ts_ms), np.asarray(candles_b.ts_ms), assume_unique=True, return_indices=True
    )
    return {"close": close_a[rows], "close_b": close_b[rows_b]}, rows
