"""Implied volatility: the Black-76 / Black-Scholes vol that reproduces a price (pure).

Vectorised safeguarded Newton: each option keeps a bracket ``[lo, hi]`` on the total
standard deviation ``s = vol sqrt(t)`` that always contains the root (the Black price
is strictly increasing in ``s``); a Newton step (derivative = vega) is taken when it
lands inside the bracket, else the bracket is bisected. That is the classic
"rtsafe" scheme (Press et al., *Numerical Recipes*, 3rd ed., section 9.4), so it
converges for every price strictly inside the no-arbitrage bounds, at Newton speed
near the root. The solve runs on the out-of-the-money side (a call in the money is
turned into its put by put-call parity, ``C - P = e^{-rt} (F - K)``), where the price
carries the time value without the intrinsic's cancellation.

A price outside the open no-arbitrage interval (``price_bounds``), a non-positive
``t_years``, or invalid numbers (NaN, inf, F or K <= 0) give NaN, never an exception nor
a numpy warning; an option type other than "call"/"put"/bools raises ValueError: at or below intrinsic
there is no volatility (or every small one fits), at or above the upper bound none.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx

from options.pricing import ArrayLike, _out, as_float_array, parse_option_type

_MAX_ITER = 200
_S_MAX = 30.0  # vol sqrt(t) of 30: every price is within 1e-50 of its upper bound
_SQRT_HALF = np.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def implied_vol(
    price: ArrayLike, F: ArrayLike, K: ArrayLike, t_years: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> ArrayLike:
    """Black-76 implied volatility (decimal) of ``price`` on the forward ``F``; NaN where
    the price is not strictly inside its no-arbitrage bounds. ``option_type`` as in
    ``options.pricing`` ("call"/"put" or bools; anything else raises ValueError)."""
    arrays = np.broadcast_arrays(
        as_float_array(price, "price"), as_float_array(F, "F"), as_float_array(K, "K"),
        as_float_array(t_years, "t_years"), parse_option_type(option_type),
        as_float_array(rate, "rate"),
    )
    shape = arrays[0].shape
    with np.errstate(all="ignore"):
        vol = _solve(*(a.ravel() for a in arrays)).reshape(shape)
    return _out(vol, price, F, K, t_years, option_type, rate)


def implied_vol_bs(
    price: ArrayLike, S: ArrayLike, K: ArrayLike, t_years: ArrayLike, option_type: ArrayLike,
    rate: ArrayLike = 0.0,
) -> ArrayLike:
    """Black-Scholes implied volatility on spot ``S`` (no dividends): Black-76 on the
    forward ``S e^{rt}``; NaN outside the no-arbitrage bounds."""
    t = as_float_array(t_years, "t_years")
    r = as_float_array(rate, "rate")
    with np.errstate(all="ignore"):
        F = as_float_array(S, "S") * np.exp(r * np.maximum(t, 0.0))
        F = np.where(np.isfinite(F), F, np.nan)  # an overflow has no price
    vol = implied_vol(price, F, K, t_years, option_type, rate)
    return _out(vol, price, S, K, t_years, option_type, rate)


def _solve(
    price: np.ndarray, F: np.ndarray, K: np.ndarray, t: np.ndarray, call: np.ndarray, r: np.ndarray
) -> np.ndarray:
    out = np.full(price.shape, np.nan)
    ok = (
        np.isfinite(price) & np.isfinite(F) & np.isfinite(K) & np.isfinite(t) & np.isfinite(r)
        & (F > 0) & (K > 0) & (t > 0)
    )
    if not ok.any():
        return out
    idx = ok
    F, K, t = F[idx], K[idx], t[idx]
    undisc = price[idx] * np.exp(r[idx] * t)
    # The out-of-the-money side: a call if F <= K, else a put; parity moves the price there.
    otm_call = F <= K
    target = undisc - np.where(call[idx], np.where(otm_call, 0.0, F - K), np.where(otm_call, K - F, 0.0))
    upper = np.where(otm_call, F, K)
    # strictly inside price_bounds, compared in discounted terms as price_bounds does
    disc = np.exp(-r[idx] * t)
    lower_d = disc * np.where(call[idx], np.maximum(F - K, 0.0), np.maximum(K - F, 0.0))
    upper_d = disc * np.where(call[idx], F, K)
    inside = (target > 0) & (target < upper) & (price[idx] > lower_d) & (price[idx] < upper_d)
    target = np.where(inside, target, np.nan)
    log_fk = np.log(F / K)
    sign = np.where(otm_call, 1.0, -1.0)
    log_target = np.log(np.where(inside, target, 1.0))
    log_half_k = np.log(0.5 * K)

    def log_otm_price(s: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ln of the out-of-the-money price and ln of its s-derivative (K phi(d2)) for
        the options ``i``.

        Written with the scaled erfc, N(d) = erfcx(-d/sqrt2) e^{-d^2/2} / 2, and
        F phi(d1) = K phi(d2), so deep out-of-the-money prices neither underflow nor
        cancel to 0: price = K e^{-d2^2/2} sign (erfcx(-sign d1/sqrt2) - erfcx(-sign d2/sqrt2)) / 2.
        """
        d1 = log_fk[i] / s + 0.5 * s
        d2 = d1 - s
        sg = sign[i]
        gap = sg * (erfcx(-sg * d1 * _SQRT_HALF) - erfcx(-sg * d2 * _SQRT_HALF))
        log_p = log_half_k[i] - 0.5 * d2 * d2 + np.log(gap)
        log_vega = log_half_k[i] + np.log(2.0 * _INV_SQRT_2PI) - 0.5 * d2 * d2
        return log_p, log_vega

    lo = np.zeros_like(target)
    hi = np.ones_like(target)
    s = np.full_like(target, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        i = np.flatnonzero(inside)
        while i.size:  # widen the bracket until it holds the root
            short = log_otm_price(hi[i], i)[0] < log_target[i]
            i = i[short & (hi[i] < _S_MAX)]
            lo[i] = hi[i]
            hi[i] = np.minimum(hi[i] * 2.0, _S_MAX)
        i = np.flatnonzero(inside)
        inside[i] = log_otm_price(hi[i], i)[0] >= log_target[i]
        # Start from the at-the-money approximation s ~ sqrt(2 pi) price / sqrt(F K)
        # (Brenner & Subrahmanyam 1988) plus the moneyness term, pulled into the bracket.
        guess = np.sqrt(2.0 * np.pi) * target / np.sqrt(F * K) + np.sqrt(2.0 * np.abs(log_fk))
        s = np.where((guess > lo) & (guess < hi), guess, 0.5 * (lo + hi))
        i = np.flatnonzero(inside)
        for _ in range(_MAX_ITER):
            if not i.size:
                break
            # Newton on ln(price): ln price is increasing and concave in s out of the money,
            # so steps from below never overshoot and the bracket catches the rest.
            si = s[i]
            log_p, log_vega = log_otm_price(si, i)
            diff = log_p - log_target[i]
            hi[i] = np.where(diff > 0, si, hi[i])
            lo[i] = np.where(diff <= 0, si, lo[i])
            newton = si - diff * np.exp(log_p - log_vega)
            step_small = np.abs(newton - si) <= 1e-15 * si
            use_newton = np.isfinite(newton) & (newton > lo[i]) & (newton < hi[i])
            s_next = np.where(use_newton, newton, 0.5 * (lo[i] + hi[i]))
            done = (diff == 0) | step_small | (hi[i] - lo[i] <= 4e-16 * hi[i]) | (s_next == si)
            s[i] = np.where(done, si, s_next)
            i = i[~done]
    vol = np.where(inside, s / np.sqrt(t), np.nan)
    out[idx] = vol
    return out
