"""The pricing API is strict: the option type is "call"/"put" or a bool, never coerced, and
absurd numbers give NaN (or a clear error) without a numpy warning (warnings are errors here).

On the old API ``black76_price(100, 110, 1, 0.5, "put")`` returned the CALL price, because
any non-empty string is truthy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.iv import implied_vol, implied_vol_bs
from options.pricing import (
    black76_greeks,
    black76_price,
    bs_greeks,
    bs_price,
    norm_cdf,
    norm_pdf,
    parse_option_type,
    price_bounds,
    year_fraction,
)

F, K, T, VOL = 100.0, 110.0, 1.0, 0.5


def _call_put() -> tuple[float, float]:
    return black76_price(F, K, T, VOL, True), black76_price(F, K, T, VOL, False)


def test_put_string_prices_the_put() -> None:
    call, put = _call_put()
    assert call != put
    assert black76_price(F, K, T, VOL, "put") == put
    assert black76_price(F, K, T, VOL, "call") == call
    assert bs_price(F, K, T, VOL, "put", 0.05) == bs_price(F, K, T, VOL, False, 0.05)
    assert black76_greeks(F, K, T, VOL, "put") == black76_greeks(F, K, T, VOL, False)
    assert bs_greeks(F, K, T, VOL, "put") == bs_greeks(F, K, T, VOL, False)
    assert price_bounds(F, K, T, "put") == price_bounds(F, K, T, False)
    assert implied_vol(put, F, K, T, "put") == pytest.approx(VOL, rel=1e-12)
    assert implied_vol_bs(bs_price(F, K, T, VOL, "put", 0.05), F, K, T, "put", 0.05) == pytest.approx(VOL, rel=1e-12)


def test_arrays_of_strings_and_bool_arrays_element_wise() -> None:
    call, put = _call_put()
    types = ["call", "put", "put"]
    expected = [call, put, put]
    assert list(black76_price(F, K, T, VOL, types)) == expected
    assert list(black76_price(F, K, T, VOL, np.array(types))) == expected
    assert list(black76_price(F, K, T, VOL, pd.Series(types, dtype=object))) == expected
    assert list(black76_price(F, K, T, VOL, np.array([True, False, False]))) == expected
    assert list(black76_price(F, K, T, VOL, pd.Series(types) == "call")) == expected


REFUSED = [
    "Put", "PUT", "Call", "c", "p", "C", "P", " call", "put ", "", "calls", "1",
    1, 0, 1.0, 0.0, -1, None, b"call", np.int64(1), np.float64(1.0),
    [1, 0], np.array([1, 0]), np.array([1.0]), ["call", "Put"], ["call", 1], ["call", None],
    np.array(["call", "c"]), pd.Series(["call", "PUT"]), [True, "call"], {"call"},
]


@pytest.mark.parametrize("bad", REFUSED, ids=repr)
@pytest.mark.parametrize(
    "fn",
    [
        lambda o: black76_price(F, K, T, VOL, o),
        lambda o: black76_greeks(F, K, T, VOL, o),
        lambda o: bs_price(F, K, T, VOL, o),
        lambda o: bs_greeks(F, K, T, VOL, o),
        lambda o: price_bounds(F, K, T, o),
        lambda o: implied_vol(10.0, F, K, T, o),
        lambda o: implied_vol_bs(10.0, F, K, T, o),
    ],
    ids=["black76_price", "black76_greeks", "bs_price", "bs_greeks", "price_bounds", "implied_vol", "implied_vol_bs"],
)
def test_other_option_types_are_refused_with_what_is_accepted(fn, bad: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"must be 'call' or 'put'.*got"):
        fn(bad)


def test_python_and_numpy_bools_are_accepted() -> None:
    call, put = _call_put()
    assert black76_price(F, K, T, VOL, np.True_) == call
    assert black76_price(F, K, T, VOL, np.bool_(False)) == put
    assert parse_option_type(np.array([True, False])).tolist() == [True, False]


@pytest.mark.parametrize("bad", ["100", b"100", True, None, "nan", np.array(["1", "2"]), [1.0, "2"]], ids=repr)
def test_numbers_are_not_coerced_from_strings_or_bools(bad: object) -> None:
    with pytest.raises(ValueError, match=r"F must be a real number"):
        black76_price(bad, K, T, VOL, "call")
    with pytest.raises(ValueError, match=r"vol must be a real number"):
        black76_greeks(F, K, T, bad, "call")
    with pytest.raises(ValueError, match=r"price must be a real number"):
        implied_vol(bad, F, K, T, "call")


ABSURD = [np.inf, -np.inf, np.nan, 0.0, -1.0, -1e-300, 1e308, 5e-324, 1e-300, -0.0]


def _every_public_function(f: float, k: float, t: float, v: float, r: float, o: object) -> list[float]:
    out = [black76_price(f, k, t, v, o, r), bs_price(f, k, t, v, o, r)]
    out += list(black76_greeks(f, k, t, v, o, r).values()) + list(bs_greeks(f, k, t, v, o, r).values())
    out += list(price_bounds(f, k, t, o, r))
    out += [implied_vol(v, f, k, t, o, r), implied_vol_bs(v, f, k, t, o, r)]
    out += [year_fraction(f, k), norm_cdf(f), norm_pdf(f)]
    return out


@pytest.mark.parametrize("position", range(5))
@pytest.mark.parametrize("value", ABSURD, ids=repr)
def test_absurd_numbers_give_nan_or_a_number_never_inf_nor_a_warning(position: int, value: float) -> None:
    args = [F, K, T, VOL, 0.03]
    args[position] = value
    for o in ("call", "put"):
        for x in _every_public_function(*args, o):
            assert isinstance(x, float) and not math.isinf(x)


def test_what_has_no_price_is_nan() -> None:
    for o in ("call", "put"):
        for bad in ({"vol": -0.1}, {"t": -1e-9}, {"f": 0.0}, {"k": -5.0}, {"f": np.inf}, {"vol": np.inf}, {"t": np.inf}):
            a = {"f": F, "k": K, "t": T, "vol": VOL} | bad
            assert math.isnan(black76_price(a["f"], a["k"], a["t"], a["vol"], o)), bad
            assert all(math.isnan(g) for g in black76_greeks(a["f"], a["k"], a["t"], a["vol"], o).values()), bad
    # the rest of an array still prices
    p = black76_price(np.array([F, -F, F]), K, np.array([T, T, -T]), VOL, "put")
    assert np.isfinite(p[0]) and np.isnan(p[1:]).all()


finite_or_not = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(ABSURD)


@settings(max_examples=400, deadline=None)
@given(f=finite_or_not, k=finite_or_not, t=finite_or_not, v=finite_or_not, r=finite_or_not, call=st.booleans())
def test_no_input_makes_a_warning_or_an_inf(f: float, k: float, t: float, v: float, r: float, call: bool) -> None:
    o = "call" if call else "put"
    for x in _every_public_function(f, k, t, v, r, o):
        assert not math.isinf(x)
    p = black76_price(f, k, t, v, o, r)
    if not math.isnan(p):
        lo, hi = price_bounds(f, k, t, o, r)
        assert p >= 0 and lo * (1 - 1e-12) <= p <= hi * (1 + 1e-12)
    arr = black76_price(np.array([f, F]), np.array([k, K]), np.array([t, T]), np.array([v, VOL]), o, r)
    assert arr.shape == (2,) and not np.isinf(arr).any()
