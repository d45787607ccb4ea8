"""Accuracy: against py_vollib to 1e-10 on a grid, against mpmath (40 digits) to 1e-12
relative on well-posed options; parity and monotonicity as properties.

"Well-posed" (stated here, used by the mpmath tests): 1 day <= t <= 2 years,
5 % <= vol <= 250 %, |ln(K/F)| <= 1, and the out-of-the-money option of the pair worth at
least 1e-6 of the forward. Below that the Black price F N(d1) - K N(d2) of the
out-of-the-money side loses digits to cancellation (about |ln(F/K)| / (vol^2 t) ulps),
and its implied vol is ill-conditioned. For the implied vol also the time value must be
at least 1e-3 of the price: an in-the-money price made of intrinsic rounds its time
value away.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vollib.black import black as vl_black
from vollib.black.greeks import analytical as vl_greeks

from options.iv import implied_vol
from options.pricing import black76_greeks, black76_price

MONEYNESS = [-0.8, -0.4, -0.15, -0.05, 0.0, 0.05, 0.15, 0.4, 0.8]  # ln(K/F)
EXPIRY_Y = [2 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 2.0]
VOLS = [0.1, 0.3, 0.6, 1.0, 1.8]


@pytest.mark.parametrize("option_type", ["call", "put"])
@pytest.mark.parametrize("t", EXPIRY_Y)
def test_grid_matches_py_vollib_to_1e_10(option_type: str, t: float) -> None:
    F = 60_000.0
    flag = option_type[0]
    for m in MONEYNESS:
        K = F * math.exp(m)
        for vol in VOLS:
            ours = black76_price(F, K, t, vol, option_type)
            ref = vl_black(flag, F, K, t, 0.0, vol)
            # relative 1e-10, floor 1e-10 of F: py_vollib's own deep out-of-the-money values
            # carry absolute errors around 1e-16 F
            assert abs(ours - ref) <= 1e-10 * max(abs(ref), 1e-6 * F), (m, vol, ours, ref)
            g = black76_greeks(F, K, t, vol, option_type)
            for name, scale in (("delta", 1.0), ("gamma", 1 / F), ("vega", 0.01 * F), ("theta", 0.01 * F / 365)):
                r = getattr(vl_greeks, name)(flag, F, K, t, 0.0, vol)
                assert abs(g[name] - r) <= 1e-10 * max(abs(r), 1e-6 * scale), (name, m, vol, g[name], r)


mp.mp.dps = 40


def _mp_black(F: float, K: float, t: float, vol: float, call: bool) -> dict[str, mp.mpf]:
    """Black-76 at rate 0 in 40-digit arithmetic (Hull eq. 18.9; greeks ch. 19)."""
    Fm, Km, tm, vm = (mp.mpf(x) for x in (F, K, t, vol))
    sd = vm * mp.sqrt(tm)
    d1 = (mp.log(Fm) - mp.log(Km)) / sd + sd / 2
    d2 = d1 - sd
    N, phi = mp.ncdf, mp.npdf
    price = Fm * N(d1) - Km * N(d2) if call else Km * N(-d2) - Fm * N(-d1)
    return {
        "price": price,
        "delta": N(d1) if call else N(d1) - 1,
        "gamma": phi(d1) / (Fm * sd),
        "vega": Fm * phi(d1) * mp.sqrt(tm) / 100,
        "theta": -Fm * phi(d1) * vm / (2 * mp.sqrt(tm)) / 365,
    }


def _well_posed_cases(n: int, seed: int) -> list[tuple[float, float, float, float, bool]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float, float, float, bool]] = []
    while len(out) < n:
        F = float(rng.uniform(100, 200_000))
        K = F * math.exp(float(rng.uniform(-1, 1)))
        t, vol = float(rng.uniform(1 / 365, 2)), float(rng.uniform(0.05, 2.5))
        call = bool(rng.random() < 0.5)
        otm_call = K >= F
        if _mp_black(F, K, t, vol, otm_call)["price"] >= 1e-6 * F:
            out.append((F, K, t, vol, call))
    return out


@pytest.mark.parametrize("case", _well_posed_cases(400, seed=1))
def test_price_and_greeks_to_1e_12_relative_against_mpmath(case: tuple[float, float, float, float, bool]) -> None:
    F, K, t, vol, call = case
    ref = _mp_black(F, K, t, vol, call)
    ours = {"price": black76_price(F, K, t, vol, call), **black76_greeks(F, K, t, vol, call)}
    for name, r in ref.items():
        assert abs(ours[name] - float(r)) <= 1e-12 * abs(float(r)), (name, ours[name], float(r))


@pytest.mark.parametrize("case", _well_posed_cases(300, seed=2))
def test_implied_vol_to_1e_12_relative_against_mpmath(case: tuple[float, float, float, float, bool]) -> None:
    F, K, t, vol, call = case
    ref = _mp_black(F, K, t, vol, call)["price"]
    intrinsic = max(F - K, 0.0) if call else max(K - F, 0.0)
    if float(ref) - intrinsic < 1e-3 * float(ref):
        pytest.skip("the time value is < 1e-3 of the price: ill-posed for the implied vol")
    assert implied_vol(float(ref), F, K, t, call) == pytest.approx(vol, rel=1e-12, abs=0)


@settings(max_examples=300, deadline=None)
@given(
    F=st.floats(1.0, 1e6), m=st.floats(-1.5, 1.5), t=st.floats(1 / 365, 5.0),
    vol=st.floats(0.01, 3.0), bump=st.floats(1e-4, 0.5), call=st.booleans(),
)
def test_monotone_in_vol_and_strike(F: float, m: float, t: float, vol: float, bump: float, call: bool) -> None:
    o = "call" if call else "put"
    K = F * math.exp(m)
    p = black76_price(F, K, t, vol, o)
    tol = 1e-12 * max(F, K)  # equal up to rounding where both are at a bound
    assert black76_price(F, K, t, vol * (1 + bump), o) >= p - tol  # more vol, never cheaper
    higher_k = black76_price(F, K * (1 + bump), t, vol, o)
    if call:
        assert higher_k <= p + tol  # a higher strike call is worth less
    else:
        assert higher_k >= p - tol  # ... a higher strike put more
    g = black76_greeks(F, K, t, vol, o)
    assert g["vega"] >= 0 and g["gamma"] >= 0 and (0 <= g["delta"] <= 1 if call else -1 <= g["delta"] <= 0)


@settings(max_examples=300, deadline=None)
@given(F=st.floats(1.0, 1e6), m=st.floats(-1.5, 1.5), t=st.floats(0.0, 5.0), vol=st.floats(0.0, 3.0))
def test_put_call_parity_with_the_strings(F: float, m: float, t: float, vol: float) -> None:
    K = F * math.exp(m)
    c, p = black76_price(F, K, t, vol, "call"), black76_price(F, K, t, vol, "put")
    assert c - p == pytest.approx(F - K, rel=1e-12, abs=1e-12 * max(F, K))
    dc, dp = black76_greeks(F, K, t, vol, "call")["delta"], black76_greeks(F, K, t, vol, "put")["delta"]
    assert dc - dp == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=400, deadline=None)
@given(
    F=st.floats(1.0, 1e6), m=st.floats(-3.0, 3.0), t=st.floats(1e-4, 10.0),
    u=st.floats(1e-9, 1 - 1e-9), r=st.floats(0.0, 0.1), call=st.booleans(),
)
def test_any_price_inside_the_bounds_has_an_iv_that_reprices_it(
    F: float, m: float, t: float, u: float, r: float, call: bool
) -> None:
    """Adversarial for the solver's starting guesses and early stop: a price anywhere in
    the open no-arbitrage interval, not one made from a vol."""
    from options.pricing import price_bounds

    o = "call" if call else "put"
    K = F * math.exp(m)
    lo, hi = price_bounds(F, K, t, o, r)
    price = lo + u * (hi - lo)
    if not lo < price < hi:
        return
    iv = implied_vol(price, F, K, t, o, r)
    time_value = price - lo
    if time_value < 1e-6 * max(F, K) or hi - price < 1e-9 * hi:
        # next to a bound the vol is lost to rounding, and the Black formula's own
        # cancellation (about 1e-16 F / time value, relative) would swamp the check
        return
    assert np.isfinite(iv)
    assert black76_price(F, K, t, iv, o, r) == pytest.approx(price, rel=1e-9)
