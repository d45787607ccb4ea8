"""Black-76 and Black-Scholes prices and greeks, vectorised over numpy (pure).

Every function takes scalars or numpy arrays (broadcast together) and returns
a float for all-scalar input, an array otherwise. No I/O, no clock, no state.

Formulas: Black, F. (1976), "The pricing of commodity contracts", J. Financial
Economics 3, 167-179, and Black & Scholes (1973); as written in Hull, *Options,
Futures, and Other Derivatives* (10th ed.), eq. 18.9-18.10 (Black-76) and
15.20-15.21 (Black-Scholes), greeks in ch. 19. With ``d1 = (ln(F/K) + vol^2 t/2)
/ (vol sqrt t)`` and ``d2 = d1 - vol sqrt t``:

    call = e^{-rt} (F N(d1) - K N(d2)),    put = e^{-rt} (K N(-d2) - F N(-d1)).

Units (the conventions of py_vollib and of Deribit's ticker greeks):

- ``t_years``: years of DAYS_PER_YEAR (365) calendar days; ``year_fraction`` converts ms.
- ``vol``: a decimal (0.55 = 55 %); ``vega`` is per 1 vol point (per 0.01 of vol).
- ``theta``: change per calendar day, i.e. d(price)/d(t_years) / 365, negative for a
  long option at rate 0.
- Black-76 ``delta`` is d(price)/dF = e^{-rt} N(d1) (call), -e^{-rt} N(-d1) (put), as
  py_vollib's ``black`` model. At rate 0 this is Deribit's ticker delta for its inverse
  options: checked against 378k real rows (median |diff| 1.2e-4), NOT the
  premium-adjusted delta ``N(d1) - mark_coin`` that Deribit uses for portfolio margin.

The option type (argument ``option_type``), strict, never coerced:

- the strings ``"call"`` and ``"put"`` exactly (not "Call", "c", "P", ...);
- a bool, Python or numpy (True = call): it has exactly two values, so nothing is coerced,
  and a bool array (dtype bool, e.g. ``df.option_type == "call"``) element-wise;
- an array or list of the strings ``"call"``/``"put"``, element-wise.

Anything else (1, 0, None, "c", an int or float array, a mixed list) raises ValueError
saying what was given and what is accepted. The numeric arguments must be real numbers
or arrays of them (a string such as "100" or a bool is refused with ValueError).

Degenerate inputs never give NaN: at ``t_years == 0`` (expiry) or ``vol == 0`` the
price is the discounted intrinsic value, delta is the discounted step (0.5 at the
money), gamma and vega are 0. Inputs that have no price give NaN, element-wise and
without a numpy warning: F, S or K <= 0, vol < 0, t_years < 0 (past expiry: settle it,
do not price it), NaN or infinite inputs, and any result that would overflow.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

DAYS_PER_YEAR = 365.0
MS_PER_YEAR = DAYS_PER_YEAR * 86_400_000
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
#: The option types ``option_type`` accepts as strings.
OPTION_TYPES = ("call", "put")

ArrayLike = Any  # float | np.ndarray; numpy broadcasts


@functools.cache
def special() -> Any:
    """scipy.special, imported on first use: it costs an options checker about 0.3 s and 20 MB
    at start-up, and most checks price nothing (the chain's quotes carry their greeks)."""
    import scipy.special

    return scipy.special


def ndtr(x: np.ndarray) -> np.ndarray:
    """scipy.special.ndtr (the normal CDF, erfc-based: accurate in the tails)."""
    return special().ndtr(x)


def parse_option_type(option_type: ArrayLike) -> np.ndarray:
    """``option_type`` as a bool array (True = call), strictly: ``"call"``/``"put"``, a
    bool or a bool array, or an array/list of ``"call"``/``"put"``; else ValueError."""
    if isinstance(option_type, str):
        if option_type in OPTION_TYPES:
            return np.asarray(option_type == "call")
        raise ValueError(_type_error(option_type))
    if isinstance(option_type, bool | np.bool_):
        return np.asarray(bool(option_type))
    try:
        arr = np.asarray(option_type)
    except (ValueError, TypeError) as e:  # ragged lists
        raise ValueError(_type_error(option_type)) from e
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind == "U":
        is_call, is_put = arr == "call", arr == "put"
    elif arr.dtype.kind == "O":  # e.g. a pandas column: only real str objects count
        flat = arr.ravel()
        strs = [isinstance(v, str) for v in flat]
        is_call = np.array([s and v == "call" for s, v in zip(strs, flat, strict=True)], dtype=bool)
        is_put = np.array([s and v == "put" for s, v in zip(strs, flat, strict=True)], dtype=bool)
        is_call, is_put = is_call.reshape(arr.shape), is_put.reshape(arr.shape)
    else:
        raise ValueError(_type_error(option_type))
    bad = ~(is_call | is_put)
    if not bad.any():
        return np.asarray(is_call)
    first = arr.ravel()[np.flatnonzero(bad.ravel())[0]]
    raise ValueError(_type_error(first, where=" (in an array)" if arr.ndim else ""))


def _type_error(value: object, where: str = "") -> str:
    shown = repr(value) if not isinstance(value, np.ndarray) else f"an array of dtype {value.dtype}"
    return (
        f"option type{where} must be 'call' or 'put' (exactly, lower case), a bool (True = call) "
        f"or a numpy bool array; got {shown} ({type(value).__name__}). "
        "Pass option_type='put', or an array such as df.option_type == 'call'."
    )


def as_float_array(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float64 array; ValueError for strings, bools and other non-numbers
    (numpy would turn "100" into 100.0 and True into 1.0 without a word)."""
    arr = np.asarray(x)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "O" and arr.size and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
        for v in arr.ravel()
    ):
        return arr.astype(np.float64)
    shown = repr(x) if np.ndim(x) == 0 else f"an array of dtype {arr.dtype}"
    raise ValueError(f"{name} must be a real number or an array of numbers; got {shown}")


def year_fraction(start_ms: ArrayLike, end_ms: ArrayLike) -> ArrayLike:
    """Years of 365 days from ``start_ms`` to ``end_ms`` (negative once past)."""
    start = as_float_array(start_ms, "start_ms")
    end = as_float_array(end_ms, "end_ms")
    with np.errstate(all="ignore"):
        years = np.subtract(end, start) / MS_PER_YEAR
    return _out(_finite_or_nan(years), start_ms, end_ms)


def norm_cdf(x: ArrayLike) -> ArrayLike:
    """Standard normal CDF (scipy.special.ndtr: erfc-based, accurate in the tails)."""
    return ndtr(as_float_array(x, "x"))


def norm_pdf(x: ArrayLike) -> ArrayLike:
    """Standard normal density."""
    with np.errstate(over="ignore"):  # x**2 of a huge x: the density is 0 either way
        return _INV_SQRT_2PI * np.exp(-0.5 * np.square(as_float_array(x, "x")))


def black76_price(
    F: ArrayLike, K: ArrayLike, t_years: ArrayLike, vol: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> ArrayLike:
    """Black-76 price of a European option on the forward ``F`` (Black 1976; Hull eq. 18.9).

    ``option_type``: ``"call"``/``"put"`` or a bool (array), see the module doc. Same
    currency as ``F`` and ``K``.
    """
    p = _Black(F, K, t_years, vol, option_type, rate)
    with np.errstate(all="ignore"):
        price = p.price()
    return _out(_finite_or_nan(price), F, K, t_years, vol, option_type, rate)


def black76_greeks(
    F: ArrayLike, K: ArrayLike, t_years: ArrayLike, vol: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> dict[str, ArrayLike]:
    """Black-76 ``delta`` (d/dF), ``gamma`` (d2/dF2), ``theta`` (per calendar day) and
    ``vega`` (per vol point), as py_vollib.black.greeks.analytical (Hull ch. 19 with
    the forward held fixed)."""
    p = _Black(F, K, t_years, vol, option_type, rate)
    out = _black76_greeks(p)
    args = (F, K, t_years, vol, option_type, rate)
    return {k: _out(v, *args) for k, v in out.items()}


def black76_price_greeks(
    F: ArrayLike, K: ArrayLike, t_years: ArrayLike, vol: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> dict[str, ArrayLike]:
    """``black76_price`` as ``"price"`` and ``black76_greeks`` in one dict, from one pass
    over the inputs (marking a chain needs both)."""
    p = _Black(F, K, t_years, vol, option_type, rate)
    with np.errstate(all="ignore"):
        price = _finite_or_nan(p.price())
    out = {"price": price, **_black76_greeks(p)}
    args = (F, K, t_years, vol, option_type, rate)
    return {k: _out(v, *args) for k, v in out.items()}


def _black76_greeks(p: _Black) -> dict[str, np.ndarray]:
    with np.errstate(all="ignore"):
        price = p.price()
        delta = p.disc * p.delta_undiscounted()
        phi = _INV_SQRT_2PI * np.exp(-0.5 * p.d1 * p.d1)
        gamma = p.disc * phi / (p.F * p.sd_safe)
        vega_year = p.disc * p.F * phi * p.sqrt_t
        # theta = -dV/dT = -e^{-rT} F phi vol / (2 sqrt T) + r V  (forward held fixed)
        decay = p.disc * p.F * phi * p.vol / (2.0 * p.sqrt_t_safe)
        if not p.all_live:
            gamma, vega_year, decay = (np.where(p.live, x, 0.0) for x in (gamma, vega_year, decay))
        theta_year = -decay + p.rate * price
        out = {"delta": delta, "gamma": gamma, "theta": theta_year / DAYS_PER_YEAR, "vega": vega_year * 0.01}
        return {k: _finite_or_nan(np.where(p.valid, v, np.nan)) for k, v in out.items()}


#: The default model of this project is Black-76 on the exchange's forward.
greeks = black76_greeks


def bs_price(
    S: ArrayLike, K: ArrayLike, t_years: ArrayLike, vol: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> ArrayLike:
    """Black-Scholes price on spot ``S`` without dividends (Hull eq. 15.20-15.21):
    Black-76 on the forward ``S e^{rt}``."""
    p = _Black(S, K, t_years, vol, option_type, rate, spot=True)
    with np.errstate(all="ignore"):
        price = p.price()
    return _out(_finite_or_nan(price), S, K, t_years, vol, option_type, rate)


def bs_greeks(
    S: ArrayLike, K: ArrayLike, t_years: ArrayLike, vol: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> dict[str, ArrayLike]:
    """Black-Scholes spot greeks (Hull ch. 19), as py_vollib.black_scholes.greeks.analytical:
    delta N(d1) / N(d1)-1, gamma phi/(S vol sqrt t), vega per vol point, theta per
    calendar day ``(-S phi vol / (2 sqrt t) -/+ r K e^{-rt} N(+/-d2)) / 365``."""
    p = _Black(S, K, t_years, vol, option_type, rate, spot=True)
    with np.errstate(all="ignore"):
        delta = p.delta_undiscounted()
        phi = _INV_SQRT_2PI * np.exp(-0.5 * p.d1 * p.d1)
        S_b = p.F * p.disc  # = S, broadcast to the common shape
        gamma = np.where(p.live, phi / (S_b * p.sd_safe), 0.0)
        vega_year = np.where(p.live, S_b * phi * p.sqrt_t, 0.0)
        decay = np.where(p.live, S_b * phi * p.vol / (2.0 * p.sqrt_t_safe), 0.0)
        # the strike leg: r K e^{-rt} N(d2) for a call, -r K e^{-rt} N(-d2) for a put
        n_d2 = np.where(p.live, p.q * p.n_qd2, p.step)
        theta_year = -decay - p.rate * p.K * p.disc * n_d2
        out = {"delta": delta, "gamma": gamma, "theta": theta_year / DAYS_PER_YEAR, "vega": vega_year * 0.01}
    args = (S, K, t_years, vol, option_type, rate)
    return {k: _out(_finite_or_nan(np.where(p.valid, v, np.nan)), *args) for k, v in out.items()}


def price_bounds(
    F: ArrayLike, K: ArrayLike, t_years: ArrayLike, option_type: ArrayLike, rate: ArrayLike = 0.0
) -> tuple[ArrayLike, ArrayLike]:
    """No-arbitrage bounds of a Black-76 price: ``(lower, upper)`` =
    call ``(e^{-rt} max(F-K, 0), e^{-rt} F)``, put ``(e^{-rt} max(K-F, 0), e^{-rt} K)``;
    NaN where the inputs have no price (as ``black76_price``; any vol is fine here)."""
    p = _Black(F, K, t_years, 0.0, option_type, rate)
    with np.errstate(all="ignore"):
        lower = p.disc * np.where(p.call, np.maximum(p.F - p.K, 0.0), np.maximum(p.K - p.F, 0.0))
        upper = p.disc * np.where(p.call, p.F, p.K)
    lower, upper = (_finite_or_nan(np.where(p.valid, b, np.nan)) for b in (lower, upper))
    args = (F, K, t_years, option_type, rate)
    return _out(lower, *args), _out(upper, *args)


class _Black:
    """d1, d2 and the masks shared by prices and greeks, broadcast to one shape.

    ``spot=True``: the first argument is the spot ``S`` and the forward is ``S e^{rt}``.
    With ``q = +1`` for a call and ``-1`` for a put, ``value = q (F N(q d1) - K N(q d2))``
    and ``delta = q N(q d1)``: one pair of normal CDFs serves the price and the greeks.
    """

    def __init__(
        self, F: ArrayLike, K: ArrayLike, t_years: ArrayLike, vol: ArrayLike,
        option_type: ArrayLike, rate: ArrayLike, spot: bool = False,
    ) -> None:
        F, K, t, vol, call, rate = np.broadcast_arrays(
            as_float_array(F, "S" if spot else "F"), as_float_array(K, "K"),
            as_float_array(t_years, "t_years"), as_float_array(vol, "vol"),
            parse_option_type(option_type), as_float_array(rate, "rate"),
        )
        with np.errstate(all="ignore"):
            valid = (F > 0) & (K > 0) & (vol >= 0) & (t >= 0) & np.isfinite(F) & np.isfinite(K) & (
                np.isfinite(vol) & np.isfinite(t) & np.isfinite(rate)
            )
            all_valid = bool(valid.all())
            if not all_valid:  # invalid entries run on harmless stand-ins, masked to NaN at the end
                t = np.where(valid, t, 0.0)
                rate = np.where(valid, rate, 0.0)
            self.rate = rate
            self.disc = np.exp(-rate * t)
            if spot:
                F = F / self.disc  # S e^{rt}; an overflow is inf, caught just below
                valid = valid & np.isfinite(F) & (self.disc > 0)
                all_valid = bool(valid.all())
            if not all_valid:
                F, K, vol = np.where(valid, F, 1.0), np.where(valid, K, 1.0), np.where(valid, vol, 0.0)
            self.valid, self.F, self.K, self.vol, self.call = valid, F, K, vol, call
            self.q = np.where(call, 1.0, -1.0)
            self.sqrt_t = np.sqrt(t)
            self.sd = vol * self.sqrt_t
            # Below sd 1e-12 the time value is < 1e-12 F: priced as intrinsic, so gamma stays finite.
            self.live = (self.sd > 1e-12) & np.isfinite(self.sd)
            all_live = bool(self.live.all())
            self.sd_safe = self.sd if all_live else np.where(self.live, self.sd, 1.0)
            self.sqrt_t_safe = self.sqrt_t if all_live else np.where(self.sqrt_t > 0, self.sqrt_t, 1.0)
            # F/K of absurd inputs (1e300 / 1e-300) is inf: d1 = inf, N = 1, still the right limit
            self.d1 = np.log(F / K) / self.sd_safe + 0.5 * self.sd
            self.d2 = self.d1 - self.sd
            if not all_live:
                self.d1 = np.where(self.live, self.d1, 0.0)
                self.d2 = np.where(self.live, self.d2, 0.0)
            self.n_qd1 = ndtr(self.q * self.d1)
            self.n_qd2 = ndtr(self.q * self.d2)
        self.all_live = all_live
        # Limit of q N(q d1) as sd -> 0: q in the money, 0 out, q/2 at the money.
        self.step = self.q * np.where(F == K, 0.5, np.where(self.q * (F - K) > 0, 1.0, 0.0))
        self._price: np.ndarray | None = None

    def price(self) -> np.ndarray:
        if self._price is None:
            F, K, q = self.F, self.K, self.q
            intrinsic = np.maximum(q * (F - K), 0.0)
            live_v = q * (F * self.n_qd1 - K * self.n_qd2)
            # max(intrinsic, .) guards the last-ulp cancellation of deep in-the-money values;
            # the true Black value is never below the (undiscounted-forward) intrinsic.
            v = np.maximum(live_v, intrinsic)
            if not self.all_live:
                v = np.where(self.live, v, intrinsic)
            self._price = np.where(self.valid, self.disc * v, np.nan)
        return self._price

    def delta_undiscounted(self) -> np.ndarray:
        """q N(q d1): N(d1) for a call, N(d1) - 1 = -N(-d1) for a put."""
        d = self.q * self.n_qd1
        return d if self.all_live else np.where(self.live, d, self.step)


def _finite_or_nan(x: np.ndarray) -> np.ndarray:
    """inf (an overflow of absurd inputs) as NaN: callers test one thing, ``isnan``."""
    return np.where(np.isfinite(x), x, np.nan)


def _out(x: np.ndarray, *inputs: ArrayLike) -> ArrayLike:
    """A Python float when every input was a scalar, else the array."""
    if all(np.ndim(a) == 0 for a in inputs):
        return float(np.asarray(x))
    return x
