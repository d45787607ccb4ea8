"""The names, defaults and one-line descriptions of every spot strategy.

Lean on purpose (standard library only): the daemon validates config against
this without importing numpy. The implementations live beside it and are
registered under exactly these names (a test checks both lists agree).
Defaults are the strategies' published ones (README: go-trader list-strategies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

Param = int | float


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    description: str
    defaults: Mapping[str, Param]
    needs_second_symbol: bool = False


def _info(name: str, description: str, needs_second_symbol: bool = False, **defaults: Param) -> StrategyInfo:
    return StrategyInfo(name, description, MappingProxyType(dict(defaults)), needs_second_symbol)


CATALOG: Mapping[str, StrategyInfo] = MappingProxyType({
    s.name: s for s in (
        _info("sma_crossover", "SMA(fast) crosses above/below SMA(slow)", fast=20, slow=50),
        _info("ema_crossover", "EMA(fast) crosses above/below EMA(slow)", fast=12, slow=26),
        _info("rsi", "Wilder RSI crosses up through oversold / down through overbought",
              period=14, oversold=30, overbought=70),
        _info("bollinger_bands", "close crosses back above the lower / below the upper band",
              period=20, num_std=2.0),
        _info("macd", "MACD line crosses above/below its signal line", fast=12, slow=26, signal=9),
        _info("mean_reversion", "z-score of close crosses up through -entry / down through +exit",
              lookback=30, entry_z=1.5, exit_z=0.5),
        _info("momentum", "ROC crosses above +threshold % / below -threshold %",
              period=14, threshold_pct=5.0),
        _info("volume_weighted", "close crosses SMA with volume above a multiple of its SMA",
              period=20, volume_mult=1.5),
        _info("triple_ema", "EMA(fast) > EMA(mid) > EMA(slow) begins / ends", fast=8, mid=21, slow=55),
        _info("rsi_macd_combo", "MACD cross confirmed by RSI below oversold / above overbought",
              rsi_period=14, oversold=35, overbought=65, fast=12, slow=26, signal=9),
        _info("pairs_spread", "z-score of close/close_b crosses up through -entry / down through +exit",
              needs_second_symbol=True, lookback=30, entry_z=2.0, exit_z=0.5),
        _info("edge70", "Donchian breakout, made for 1d bars: long above the 59-bar high, exit below the 21-bar low",
              long_lookback=59, short_lookback=21, seed_bars=200, stop_pct=15.0),
    )
})


#: Parameter pairs that must be strictly increasing (checked after merging overrides).
ORDERED_PARAMS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "sma_crossover": (("fast", "slow"),),
    "ema_crossover": (("fast", "slow"),),
    "rsi": (("oversold", "overbought"),),
    "macd": (("fast", "slow"),),
    "triple_ema": (("fast", "mid"), ("mid", "slow")),
    "rsi_macd_combo": (("oversold", "overbought"), ("fast", "slow")),
})

#: Parameters that must be at least 2 (a sample standard deviation needs two bars).
_AT_LEAST_TWO = {"bollinger_bands": "period", "mean_reversion": "lookback", "pairs_spread": "lookback"}


def validate_params(name: str, overrides: Mapping[str, object] | None) -> dict[str, Param]:
    """Defaults of ``name`` merged with ``overrides``; ValueError naming each bad key.

    Integer defaults take integers, float defaults take any finite number.
    """
    if name not in CATALOG:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(CATALOG))}")
    info = CATALOG[name]
    params: dict[str, Param] = dict(info.defaults)
    problems = []
    for key, value in (overrides or {}).items():
        if key not in info.defaults:
            problems.append(f"unknown parameter {key!r} for {name} (known: {', '.join(info.defaults)})")
            continue
        want_int = isinstance(info.defaults[key], int)
        ok = isinstance(value, int) and not isinstance(value, bool) if want_int else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
            and value not in (float("inf"), float("-inf"))
        )
        if not ok:
            problems.append(f"parameter {key!r} of {name} must be {'an integer' if want_int else 'a finite number'}, got {value!r}")
            continue
        if value <= 0 and not key.startswith("exit"):  # type: ignore[operator]
            problems.append(f"parameter {key!r} of {name} must be > 0, got {value!r}")
            continue
        params[key] = value  # type: ignore[assignment]
    if not problems:
        for low, high in ORDERED_PARAMS.get(name, ()):
            if not params[low] < params[high]:
                problems.append(
                    f"{name} needs {low} < {high}, got {low}={params[low]!r}, {high}={params[high]!r}"
                )
        for key in ("oversold", "overbought"):
            if key in params and not params[key] < 100:
                problems.append(f"parameter {key!r} of {name} is an RSI level and must be < 100, got {params[key]!r}")
        if "stop_pct" in params and not params["stop_pct"] < 100:
            problems.append(f"parameter 'stop_pct' of {name} is how far below the entry its stop sits, in percent, "
                            f"and must be < 100 (the stop would be at or below 0), got {params['stop_pct']!r}")
        if name in _AT_LEAST_TWO and params[_AT_LEAST_TWO[name]] < 2:
            key = _AT_LEAST_TWO[name]
            problems.append(f"parameter {key!r} of {name} must be >= 2 (a sample std needs two bars), got {params[key]!r}")
    if problems:
        raise ValueError("; ".join(problems))
    return params


def describe() -> str:
    """The table ``go-trader list-strategies`` prints: name, defaults, one-line description."""
    rows = [(info.name, ", ".join(f"{k}={v}" for k, v in info.defaults.items())
             + (" (+ symbol_b)" if info.needs_second_symbol else ""), info.description)
            for info in CATALOG.values()]
    head = ("strategy", "defaults", "description")
    w0 = max(len(r[0]) for r in [head, *rows])
    w1 = max(len(r[1]) for r in [head, *rows])
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in [head, *rows]]
    lines.insert(1, f"{'-' * w0}  {'-' * w1}  {'-' * len(head[2])}")
    return "\n".join(lines)
