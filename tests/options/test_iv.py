"""Implied volatility: round trips, no-arbitrage bounds give NaN, and py_vollib agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vollib.black.implied_volatility import implied_volatility as vl_black_iv

from options.iv import implied_vol, implied_vol_bs
from options.pricing import black76_price, bs_price, price_bounds


@settings(max_examples=400, deadline=None)
@given(
    F=st.floats(10.0, 1e6), moneyness=st.floats(-1.0, 1.0), t=st.floats(1 / 365, 3.0),
    vol=st.floats(0.05, 2.5), r=st.floats(0.0, 0.1), call=st.booleans(),
)
def test_price_iv_price_round_trip(F: float, moneyness: float, t: float, vol: float, r: float, call: bool) -> None:
    K = F * math.exp(moneyness)
    price = black76_price(F, K, t, vol, call, r)
    lo, hi = price_bounds(F, K, t, call, r)
    iv = implied_vol(price, F, K, t, call, r)
    if not lo < price < hi:
        assert math.isnan(iv)
        return
    if math.isnan(iv):  # the time value is lost in float rounding next to the intrinsic
        assert price - lo <= 1e-12 * max(F, K)
        return
    assert black76_price(F, K, t, iv, call, r) == pytest.approx(price, rel=1e-9, abs=1e-12 * max(F, K))
    # where the price carries the vol (vega not negligible), the vol itself comes back
    if (price - lo) > 1e-6 * max(F, K):
        assert iv == pytest.approx(vol, rel=1e-6)


def test_vectorised_round_trip_and_py_vollib_agreement() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    F = rng.uniform(1_000, 100_000, n)
    K = F * np.exp(rng.uniform(-0.5, 0.5, n))
    t = rng.uniform(3 / 365, 1.5, n)
    vol = rng.uniform(0.15, 1.5, n)
    call = rng.random(n) < 0.5
    price = black76_price(F, K, t, vol, call)
    iv = implied_vol(price, F, K, t, call)
    assert iv.shape == (n,)
    lo, _ = price_bounds(F, K, t, call)
    has_time_value = price - lo > 1e-9 * F  # else the vol is lost to rounding: NaN is right
    assert has_time_value.mean() > 0.95
    np.testing.assert_allclose(iv[has_time_value], vol[has_time_value], rtol=1e-8)
    assert (np.isnan(iv) <= ~has_time_value).all()
    for i in np.flatnonzero(has_time_value)[::100]:  # py_vollib's Let's Be Rational, one by one
        ref = vl_black_iv(price[i], F[i], K[i], 0.0, t[i], "c" if call[i] else "p")
        assert iv[i] == pytest.approx(ref, rel=1e-8)


def test_outside_bounds_and_bad_inputs_are_nan() -> None:
    F, K, t = 100.0, 90.0, 0.5
    lo, hi = price_bounds(F, K, t, True)
    out = implied_vol(np.array([lo - 1, lo, hi, hi + 1, -5.0, np.nan]), F, K, t, True)
    assert np.isnan(out).all()
    assert math.isnan(implied_vol(5.0, F, K, 0.0, True))
    assert math.isnan(implied_vol(5.0, -F, K, 1.0, True))
    assert math.isnan(implied_vol(5.0, F, K, 1.0, False, rate=np.nan))
    assert isinstance(implied_vol(12.0, F, K, t, True), float)


def test_deep_out_of_the_money_and_extreme_vols() -> None:
    F = 100.0
    for K, vol, t in ((300.0, 0.3, 0.1), (20.0, 0.2, 0.05), (100.0, 8.0, 2.0), (100.0, 0.005, 0.01)):
        for call in (True, False):
            price = black76_price(F, K, t, vol, call)
            lo, _ = price_bounds(F, K, t, call)
            if price - lo > 1e-300:
                otm = (K > F) == call
                if otm:  # out of the money: the full price is time value, the vol is recoverable
                    assert implied_vol(price, F, K, t, call) == pytest.approx(vol, rel=1e-7)


def test_spot_black_scholes_round_trip() -> None:
    S, K, t, vol, r = 60_000.0, 66_000.0, 0.25, 0.7, 0.05
    for call in (True, False):
        price = bs_price(S, K, t, vol, call, r)
        assert implied_vol_bs(price, S, K, t, call, r) == pytest.approx(vol, rel=1e-10)
