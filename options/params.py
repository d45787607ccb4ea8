"""The options strategies' parameters (REFERENCE section 7 defaults). Standard library only:
the config validator imports this in the daemon, which never imports numpy.

``validate_params(strategy, overrides, underlying=...)`` is the one check of a config's
``params`` for an options strategy: unknown names, wrong types and out-of-range values
are a ValueError that names the parameter, the value and what is expected (``RANGES``
holds every number's allowed range). ``quantity`` must be an amount Deribit accepts for
the underlying's options (``check_quantity``): at least the contract minimum and a whole
number of amount steps (0.1, 0.2, ... BTC; 1, 2, ... ETH), from the one contract table
``options.chain.DERIBIT_DEFAULT_CONTRACTS``; without an underlying, an amount no
underlying accepts is refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from options.chain import DERIBIT_DEFAULT_CONTRACTS

#: coin; Deribit's minimum order size per underlying (from the one contract table)
CONTRACT_MINIMUM = {u: v[1] for u, v in DERIBIT_DEFAULT_CONTRACTS.items()}
#: coin; the amount step per underlying
CONTRACT_STEP = {u: v[2] for u, v in DERIBIT_DEFAULT_CONTRACTS.items()}
TICK_COIN = 0.0001  # Deribit's price tick for BTC and ETH options

#: Allowed ranges ``(low, high, low_open)`` by parameter name, or by name suffix: a value
#: outside is refused. Moneyness beyond [0.5, 2] x spot has no listed strike to match (it
#: would take the chain's edge strike, far from what was meant); a target DTE beyond 400
#: days has no listed expiry; a score lies within [-2, 2] (options.scoring).
RANGES: dict[str, tuple[float, float, bool]] = {
    "moneyness": (0.5, 2.0, False),
    "dte_days": (0.0, 400.0, True),
    "dte_tolerance_days": (0.0, 90.0, True),
    "max_positions": (1, 50, False),
    "min_score": (-2.0, 2.0, False),
    "min_premium": (0.0, 1.0, True),
    "rate": (-0.1, 0.5, False),
    "rank": (0.0, 100.0, False),
    "threshold_pct": (0.0, 100.0, False),
    "roc_period": (1, 500, False),
    "quantity": (0.0, 10_000.0, True),
}


def _range_of(name: str) -> tuple[float, float, bool] | None:
    if name in RANGES:
        return RANGES[name]
    return next((r for suffix, r in RANGES.items() if name.endswith("_" + suffix)), None)


def _range_problem(name: str, value: float) -> str | None:
    r = _range_of(name)
    if r is None:
        return None
    low, high, low_open = r
    if (value <= low if low_open else value < low) or value > high:
        bracket = "(" if low_open else "["
        return f"{name} {value!r} is out of range; allowed {bracket}{low:g}, {high:g}]"
    return None


def _check_range(name: str, value: float) -> None:
    problem = _range_problem(name, value)
    if problem is not None:
        raise ValueError(problem)


def _field_problem(name: str, kind: str, value: Any) -> str | None:
    """What is wrong with one parameter's value, or None."""
    if value is None and name == "quantity":
        return None
    if name == "max_positions":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"max_positions {value!r}; expected an int >= 1"
        return _range_problem(name, value)
    if kind == "str":
        return None if isinstance(value, str) else f"{name} {value!r}; expected a string"
    if kind == "bool":
        return None if isinstance(value, bool) else f"{name} {value!r}; expected true or false"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{name} {value!r}; expected a finite number"
    positive = name.endswith(("moneyness", "dte_days")) or name in ("quantity", "dte_tolerance_days", "min_premium")
    if positive and value <= 0:
        return f"{name} {value!r}; expected a number > 0"
    if name.endswith("rank") and not 0 <= value <= 100:
        return f"{name} {value!r}; expected an IV rank in [0, 100]"
    return _range_problem(name, value)


def allowed_amounts(underlying: str) -> str:
    """Deribit's accepted option amounts for ``underlying``, for a message: "0.1, 0.2, 0.3, ... BTC"."""
    minimum, step = CONTRACT_MINIMUM[underlying], CONTRACT_STEP[underlying]
    return ", ".join(f"{minimum + i * step:.10g}" for i in range(3)) + f", ... {underlying}"


def quantity_problem(quantity: float, underlying: str) -> str | None:
    """Why ``quantity`` (coin) is not an amount Deribit accepts for ``underlying``'s options; None when it is."""
    if underlying not in CONTRACT_MINIMUM:
        return (f"no contract table for {underlying!r} options (known: {', '.join(sorted(CONTRACT_MINIMUM))}); "
                "quantity cannot be checked")
    minimum, step = CONTRACT_MINIMUM[underlying], CONTRACT_STEP[underlying]
    steps = quantity / step
    if quantity < minimum - 1e-9 * minimum:
        return (f"quantity {quantity:g} {underlying} is below Deribit's minimum of {minimum:g} {underlying} per "
                f"option order; use {allowed_amounts(underlying)}")
    if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
        return (f"quantity {quantity:g} {underlying} is not a multiple of Deribit's amount step {step:g} "
                f"{underlying} (the engine would round it down to {math.floor(steps + 1e-9) * step:.10g}); use "
                f"{allowed_amounts(underlying)}")
    return None


def check_quantity(quantity: float | None, underlying: str | None) -> None:
    """ValueError unless ``quantity`` is None (the contract minimum) or an amount Deribit
    accepts: for ``underlying``, or, without one, for at least one supported underlying."""
    if quantity is None:
        return
    if underlying is not None:
        problem = quantity_problem(quantity, underlying)
        if problem:
            raise ValueError(problem)
        return
    problems = [quantity_problem(quantity, u) for u in CONTRACT_MINIMUM]
    if all(problems):
        raise ValueError(f"quantity {quantity:g} is an amount no Deribit option accepts; use "
                         + " or ".join(allowed_amounts(u) for u in CONTRACT_MINIMUM))


@dataclass(frozen=True)
class Params:
    """Shared by every options strategy.

    ``quantity``: contracts (coin) per leg; None means the underlying's contract minimum.
    ``rate``: the Black-76 discount rate (decimal per year) for model prices.
    """

    quantity: float | None = None
    dte_tolerance_days: float = 7.0
    max_positions: int = 4
    min_score: float = 0.3
    min_premium: float = TICK_COIN
    rate: float = 0.0

    def __post_init__(self) -> None:
        # every field's problem at once (the cross-field checks of a subclass run on valid fields)
        problems = [p for f in dataclasses.fields(self) if (p := _field_problem(f.name, str(f.type),
                                                                               getattr(self, f.name)))]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class MomentumParams(Params):
    roc_period: int = 14  # for roc_last_two: the caller's ROC over 4h closes
    threshold_pct: float = 5.0
    #: "cross": the ROC crosses the threshold between the last two closed bars (REFERENCE);
    #: "level": the last ROC is beyond it (the HELD guard stops a second identical leg)
    trigger: str = "cross"
    call_moneyness: float = 1.02
    put_moneyness: float = 0.98
    target_dte_days: float = 37.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trigger not in ("cross", "level"):
            raise ValueError(f"trigger {self.trigger!r}; expected 'cross' or 'level'")
        if isinstance(self.roc_period, bool) or not isinstance(self.roc_period, int):
            raise ValueError(f"roc_period {self.roc_period!r}; expected an int >= 1")
        if self.roc_period < 1 or self.threshold_pct < 0:
            raise ValueError(f"roc_period {self.roc_period!r} must be >= 1 and threshold_pct "
                             f"{self.threshold_pct!r} >= 0")
        _check_range("roc_period", self.roc_period)


@dataclass(frozen=True)
class VolMeanReversionParams(Params):
    sell_above_rank: float = 75.0
    buy_below_rank: float = 25.0
    call_moneyness: float = 1.10
    put_moneyness: float = 0.90
    target_dte_days: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.buy_below_rank > self.sell_above_rank:
            raise ValueError(f"buy_below_rank {self.buy_below_rank} must be <= sell_above_rank "
                             f"{self.sell_above_rank}")


@dataclass(frozen=True)
class ProtectivePutsParams(Params):
    put_moneyness: float = 0.88
    target_dte_days: float = 45.0


@dataclass(frozen=True)
class CoveredCallsParams(Params):
    call_moneyness: float = 1.12
    target_dte_days: float = 21.0
    allow_naked: bool = True  # False: skip NOT_ENOUGH_SPOT unless spot covers the whole leg


@dataclass(frozen=True)
class WheelParams(Params):
    put_moneyness: float = 0.94
    put_dte_days: float = 37.0
    call_moneyness: float = 1.10
    call_dte_days: float = 21.0


@dataclass(frozen=True)
class ButterflyParams(Params):
    min_rank: float = 30.0
    max_rank: float = 70.0
    lower_moneyness: float = 0.95
    middle_moneyness: float = 1.00
    upper_moneyness: float = 1.05
    target_dte_days: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.min_rank <= self.max_rank:
            raise ValueError(f"min_rank {self.min_rank} must be <= max_rank {self.max_rank}")
        if not self.lower_moneyness < self.middle_moneyness < self.upper_moneyness:
            raise ValueError("butterfly moneyness must rise: lower < middle < upper, got "
                             f"{self.lower_moneyness}, {self.middle_moneyness}, {self.upper_moneyness}")


PARAMS: dict[str, type[Params]] = {
    "momentum_options": MomentumParams,
    "vol_mean_reversion": VolMeanReversionParams,
    "protective_puts": ProtectivePutsParams,
    "covered_calls": CoveredCallsParams,
    "wheel": WheelParams,
    "butterfly": ButterflyParams,
}


def validate_params(strategy: str, overrides: Mapping[str, Any] | None, underlying: str | None = None) -> Params:
    """The strategy's Params with ``overrides`` applied; ValueError says what is wrong. With
    ``underlying``, ``quantity`` must be an amount its options accept (``check_quantity``)."""
    cls = PARAMS.get(strategy)
    if cls is None:
        raise ValueError(f"unknown options strategy {strategy!r}; expected one of {sorted(PARAMS)}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"{strategy} params must be a JSON object of name: value, got {type(overrides).__name__} "
                         f"{str(overrides)[:80]}")
    overrides = dict(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - known)
    problems = [f"{strategy} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
                f"{', '.join(sorted(known))}"] if unknown else []
    overrides = {k: v for k, v in overrides.items() if k in known}  # the others' values are judged too
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, value in overrides.items():
        if isinstance(value, int) and not isinstance(value, bool) and str(types[name]).startswith("float"):
            overrides[name] = float(value)  # JSON's 5 is 5.0 here; an int field keeps its int
    try:
        params = cls(**overrides)
    except ValueError as e:
        q = overrides.get("quantity")
        if isinstance(q, float) and math.isfinite(q) and q > 0:  # judged with the rest, not only once they pass
            try:
                check_quantity(q, underlying)
            except ValueError as bad_quantity:
                problems.append(str(bad_quantity))
        raise ValueError("; ".join([*problems, str(e)])) from None
    if problems:
        raise ValueError(problems[0])
    check_quantity(params.quantity, underlying)
    return params
