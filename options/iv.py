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

from options.pricing import ArrayLike, _out, as_float_array, parse_option_type, special


def erfcx(x: np.ndarray) -> np.ndarray:
    """scipy.special.erfcx (the scaled erfc), imported on first use (options.pricing.special)."""
    return special().erfcx(x)


_MAX_ITER = 200
_S_MAX = 30.0  # vol sqrt(t) of 30: every price is within 1e-50 of its upper bound
_SQRT_HALF = np.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_LOG_2_INV_SQRT_2PI = float(np.log(2.0 * _INV_SQRT_2PI))


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


def _log_otm_price(
    s: np.ndarray, log_fk: np.ndarray, sign: np.ndarray, log_half_k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ln of the out-of-the-money price and ln of its s-derivative (K phi(d2)).

    Written with the scaled erfc, N(d) = erfcx(-d/sqrt2) e^{-d^2/2} / 2, and
    F phi(d1) = K phi(d2), so deep out-of-the-money prices neither underflow nor
    cancel to 0: price = K e^{-d2^2/2} sign (erfcx(-sign d1/sqrt2) - erfcx(-sign d2/sqrt2)) / 2.
    """
    d1 = log_fk / s + 0.5 * s
    d2 = d1 - s
    gap = sign * (erfcx(-sign * d1 * _SQRT_HALF) - erfcx(-sign * d2 * _SQRT_HALF))
    half_d2_sq = 0.5 * d2 * d2
    log_p = log_half_k - half_d2_sq + np.log(gap)
    log_vega = log_half_k + _LOG_2_INV_SQRT_2PI - half_d2_sq
    return log_p, log_vega


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

    s = np.full_like(target, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Start from the at-the-money approximation s ~ sqrt(2 pi) price / sqrt(F K)
        # (Brenner & Subrahmanyam 1988) plus the moneyness term ...
        guess = np.sqrt(2.0 * np.pi) * target / np.sqrt(F * K) + np.sqrt(2.0 * np.abs(log_fk))
        # ... better: Corrado & Miller (1996) on the call price (OTM target plus the call's intrinsic)
        half_gap = 0.5 * (F - K)
        c_m = target + np.maximum(F - K, 0.0) - half_gap
        disc_cm = c_m * c_m - (F - K) ** 2 / np.pi
        cm = np.sqrt(2.0 * np.pi) / (F + K) * (c_m + np.sqrt(np.maximum(disc_cm, 0.0)))
        guess = np.where(disc_cm > 0, cm, guess)
        # Far out of the money, where Corrado & Miller has no root: ln(price / sqrt(F K)) ~
        # -x^2/(2 s^2) - s^2/8 + ln(s^3 / (sqrt(2 pi) x^2)), the tail of N (Abramowitz &
        # Stegun 26.2.12); two fixed-point steps solve it for s.
        ax = np.abs(log_fk)
        neg_log_beta = -(log_target - 0.5 * (np.log(F) + np.log(K)))
        tail = ax / np.sqrt(2.0 * neg_log_beta)
        for _ in range(2):
            rhs = neg_log_beta - tail * tail / 8.0 + np.log(tail**3 / (np.sqrt(2.0 * np.pi) * ax * ax))
            tail = np.where(rhs > 0, ax / np.sqrt(2.0 * np.abs(rhs)), tail)
        guess = np.where((disc_cm > 0) | ~np.isfinite(tail), guess, tail)

        # The options still being solved, compacted as they finish (cheaper than indexing
        # the full arrays every step). [lo, hi] always holds the root: the price is
        # increasing in s, and at s = _S_MAX it is within 1e-50 of its upper bound.
        i = np.flatnonzero(inside)
        x_a, sg_a, lhk_a, lt_a = log_fk[i], sign[i], log_half_k[i], log_target[i]
        lo_a, hi_a = np.zeros(i.size), np.full(i.size, _S_MAX)
        g = guess[i]
        s_a = np.where((g > 0) & (g < _S_MAX), g, 1.0)
        for _ in range(_MAX_ITER):
            if not i.size:
                break
            # Newton on ln(price): ln price is increasing and concave in s out of the money,
            # so steps from below never overshoot and the bracket catches the rest.
            log_p, log_vega = _log_otm_price(s_a, x_a, sg_a, lhk_a)
            diff = log_p - lt_a
            hi_a = np.where(diff > 0, s_a, hi_a)
            lo_a = np.where(diff <= 0, s_a, lo_a)
            newton = s_a - diff * np.exp(log_p - log_vega)
            # inclusive: a step that lands on the bracket's end (the root itself, often) is taken
            use_newton = np.isfinite(newton) & (newton >= lo_a) & (newton <= hi_a)
            s_next = np.where(use_newton, newton, 0.5 * (lo_a + hi_a))
            # Newton converges quadratically: after a step of relative size 1e-8 the error
            # left is of order 1e-16, so that step is the last (checked to 1e-12 against mpmath).
            converged = use_newton & (np.abs(newton - s_a) <= 1e-8 * s_a)
            done = (diff == 0) | converged | (hi_a - lo_a <= 4e-16 * hi_a) | (s_next == s_a)
            s_new = np.where(converged, newton, np.where(done, s_a, s_next))
            if done.any():
                s[i[done]] = s_new[done]
                keep = ~done
                i, x_a, sg_a, lhk_a, lt_a = i[keep], x_a[keep], sg_a[keep], lhk_a[keep], lt_a[keep]
                s_a, lo_a, hi_a = s_new[keep], lo_a[keep], hi_a[keep]
            else:
                s_a = s_new
        s[i] = s_a  # not converged in _MAX_ITER steps (never seen): the best bracketed value
    # A price within rounding of its upper bound has no root below _S_MAX: no volatility.
    inside &= s < _S_MAX * (1.0 - 1e-12)
    vol = np.where(inside, s / np.sqrt(t), np.nan)
    out[idx] = vol
    return out
