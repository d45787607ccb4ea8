"""Black-76 / Black-Scholes prices and greeks against py_vollib, parity, degenerate inputs.

py_vollib 1.0.12 warns (DeprecationWarning) on import and re-exports ``vollib``; the
same code is imported here as ``vollib`` so warnings stay errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vollib.black import black as vl_black
from vollib.black.greeks import analytical as vl_black_greeks
from vollib.black_scholes import black_scholes as vl_bs
from vollib.black_scholes.greeks import analytical as vl_bs_greeks

from options.pricing import (
    black76_greeks,
    black76_price,
    bs_greeks,
    bs_price,
    greeks,
    price_bounds,
    year_fraction,
)

REL = 1e-9


def _cases(n: int, seed: int = 7) -> list[tuple[float, float, float, float, float, bool]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        F = float(rng.uniform(1_000, 100_000))
        K = F * float(np.exp(rng.uniform(-0.6, 0.6)))
        t = float(rng.uniform(2 / 365, 2.0))
        vol = float(rng.uniform(0.1, 1.5))
        r = float(rng.choice([0.0, 0.03, 0.08]))
        out.append((F, K, t, vol, r, bool(rng.random() < 0.5)))
    return out


def _close(ours: float, ref: float, scale: float) -> bool:
    """Relative 1e-9, with an absolute floor of 1e-9 of the natural scale of the quantity."""
    return abs(ours - ref) <= REL * max(abs(ref), 1e-3 * scale)


@pytest.mark.parametrize("case", _cases(200))
def test_black76_price_and_greeks_match_py_vollib(case: tuple) -> None:
    F, K, t, vol, r, call = case
    flag = "c" if call else "p"
    assert _close(black76_price(F, K, t, vol, call, r), vl_black(flag, F, K, t, r, vol), F)
    g = black76_greeks(F, K, t, vol, call, r)
    # py_vollib: vega per 1 % of vol, theta per day (annual / 365), delta e^{-rt} N(d1).
    assert _close(g["delta"], vl_black_greeks.delta(flag, F, K, t, r, vol), 1.0)
    assert _close(g["gamma"], vl_black_greeks.gamma(flag, F, K, t, r, vol), 1.0 / F)
    assert _close(g["vega"], vl_black_greeks.vega(flag, F, K, t, r, vol), F * 0.01)
    assert _close(g["theta"], vl_black_greeks.theta(flag, F, K, t, r, vol), F / 365 * 0.01)


@pytest.mark.parametrize("case", _cases(200, seed=11))
def test_black_scholes_price_and_greeks_match_py_vollib(case: tuple) -> None:
    S, K, t, vol, r, call = case
    flag = "c" if call else "p"
    assert _close(bs_price(S, K, t, vol, call, r), vl_bs(flag, S, K, t, r, vol), S)
    g = bs_greeks(S, K, t, vol, call, r)
    assert _close(g["delta"], vl_bs_greeks.delta(flag, S, K, t, r, vol), 1.0)
    assert _close(g["gamma"], vl_bs_greeks.gamma(flag, S, K, t, r, vol), 1.0 / S)
    assert _close(g["vega"], vl_bs_greeks.vega(flag, S, K, t, r, vol), S * 0.01)
    assert _close(g["theta"], vl_bs_greeks.theta(flag, S, K, t, r, vol), S / 365 * 0.01)


def test_vectorised_equals_scalar_and_greeks_alias() -> None:
    cases = _cases(50, seed=3)
    F, K, t, vol, r, call = (np.array(c) for c in zip(*cases, strict=True))
    prices = black76_price(F, K, t, vol, call, r)
    g = greeks(F, K, t, vol, call, r)
    assert isinstance(prices, np.ndarray) and prices.shape == (50,)
    for i, c in enumerate(cases):
        assert prices[i] == black76_price(*c[:4], c[5], c[4])
        gi = black76_greeks(*c[:4], c[5], c[4])
        assert all(g[k][i] == gi[k] for k in gi)
    assert isinstance(black76_price(100.0, 100.0, 1.0, 0.5, True), float)


def test_theta_is_the_one_day_change_and_vega_the_one_point_change() -> None:
    F, K, t, vol = 60_000.0, 65_000.0, 30 / 365, 0.6
    g = black76_greeks(F, K, t, vol, True)
    one_day = black76_price(F, K, t - 1 / 365, vol, True) - black76_price(F, K, t, vol, True)
    one_point = black76_price(F, K, t, vol + 0.01, True) - black76_price(F, K, t, vol, True)
    assert g["theta"] == pytest.approx(one_day, rel=0.02)
    assert g["vega"] == pytest.approx(one_point, rel=0.01)


@settings(max_examples=300, deadline=None)
@given(
    F=st.floats(1.0, 1e6), moneyness=st.floats(-1.5, 1.5), t=st.floats(0.0, 5.0),
    vol=st.floats(0.0, 3.0), r=st.floats(-0.02, 0.15),
)
def test_put_call_parity(F: float, moneyness: float, t: float, vol: float, r: float) -> None:
    K = F * math.exp(moneyness)
    call = black76_price(F, K, t, vol, True, r)
    put = black76_price(F, K, t, vol, False, r)
    assert call - put == pytest.approx(math.exp(-r * t) * (F - K), rel=1e-12, abs=1e-11 * max(F, K))
    lo_c, hi_c = price_bounds(F, K, t, True, r)
    assert lo_c - 1e-9 * F <= call <= hi_c + 1e-9 * F
    assert np.isfinite([call, put, *black76_greeks(F, K, t, vol, True, r).values()]).all()
    # spot BS: C - P = S - K e^{-rt}
    c_s, p_s = bs_price(F, K, t, vol, True, r), bs_price(F, K, t, vol, False, r)
    assert c_s - p_s == pytest.approx(F - K * math.exp(-r * t), rel=1e-12, abs=1e-11 * max(F, K))


def test_expiry_zero_vol_and_extremes_give_intrinsic_without_nan() -> None:
    K = np.array([50.0, 100.0, 150.0])
    assert list(black76_price(100.0, K, 0.0, 0.5, True)) == [50.0, 0.0, 0.0]
    assert list(black76_price(100.0, K, 0.0, 0.5, False)) == [0.0, 0.0, 50.0]
    assert list(black76_price(100.0, K, 1.0, 0.0, True)) == [50.0, 0.0, 0.0]
    g = black76_greeks(100.0, K, 0.0, 0.5, True)
    assert list(g["delta"]) == [1.0, 0.5, 0.0] and not g["gamma"].any() and not g["vega"].any()
    assert list(black76_greeks(100.0, K, 0.0, 0.5, False)["delta"]) == [0.0, -0.5, -1.0]
    # deep in / out of the money, tiny and huge vol: finite, within bounds
    Ks = np.array([1e-3, 1.0, 1e4, 1e8])
    for vol in (1e-8, 0.5, 50.0):
        for call in (True, False):
            p = black76_price(100.0, Ks, 1.0, vol, call)
            gg = black76_greeks(100.0, Ks, 1.0, vol, call)
            assert np.isfinite(p).all() and (p >= 0).all()
            assert all(np.isfinite(v).all() for v in gg.values())


def test_invalid_inputs_are_nan_not_errors() -> None:
    p = black76_price(np.array([100.0, -1.0, 100.0, np.nan]), np.array([100.0, 100.0, 0.0, 100.0]), 1.0, 0.5, True)
    assert np.isfinite(p[0]) and np.isnan(p[1:]).all()
    assert math.isnan(black76_price(100.0, 100.0, 1.0, -0.1, True))


def test_year_fraction_is_365_day_years() -> None:
    assert year_fraction(0, 365 * 86_400_000) == 1.0
    assert year_fraction(86_400_000, 0) == -1 / 365
