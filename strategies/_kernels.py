"""Vectorised numpy kernels behind the indicators: recursions, rolling sums, rolling extrema.

No Python loop runs per bar. Every kernel is *prefix-stable*: the value at bar t is
computed by exactly the same floating-point operations whatever follows bar t, so
slicing the input never changes an earlier output bit (the no-look-ahead tests rely
on this). Allocation is kept low on purpose: on a 100k-bar series each fresh
temporary costs page faults that rival the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

# Rows of the blocked recursion are sized so that d**-row_len stays below ~1e200:
# the scaled partial sums then cannot overflow for any input below ~1e90.
_MAX_LOG_SCALE = 460.0


def finite_series(x: object, name: str = "x") -> tuple[np.ndarray, int]:
    """``x`` as a 1-D float64 array and the index of its first finite value.

    Leading NaNs are accepted (the warm-up of an earlier indicator, as TA-Lib's
    Python wrapper accepts them); a NaN or infinity after the first finite value
    raises ValueError, because every recursive indicator would silently poison
    everything after it. An all-NaN or empty input returns start == len(x).
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    finite = np.isfinite(arr)
    if finite.all():
        return arr, 0
    if np.isinf(arr).any():
        i = int(np.flatnonzero(np.isinf(arr))[0])
        raise ValueError(f"{name} has an infinite value at index {i}; indicators need finite input")
    start = int(np.argmax(finite)) if finite.any() else len(arr)
    bad = np.flatnonzero(~finite[start:])
    if len(bad):
        i = start + int(bad[0])
        raise ValueError(
            f"{name} has a NaN at index {i} after its first value (index {start}); "
            "only leading NaNs (warm-up) are allowed: fill or drop the bad rows first"
        )
    return arr, start


def check_window(n: object, name: str = "period") -> int:
    """``n`` as a positive int; ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


def smooth(x: np.ndarray, alpha: float, seed: float, out: np.ndarray) -> np.ndarray:
    """Exponential smoothing ``out[t] = out[t-1] + alpha * (x[t] - out[t-1])``, ``out[0] = seed``.

    ``x[0]`` is ignored (its place holds the seed). This is the recursion of an
    EMA (alpha = 2/(n+1)) and of Wilder's smoothing (alpha = 1/n).

    Method: the recursion is solved in closed form row by row. Within a row of
    length L starting after carry c, with d = 1 - alpha and z = x - seed,
    ``y[i] = d**i * (d*c + sum_{k<=i} alpha * d**-k * z[k])``: one cumulative sum.
    Rows are short enough that d**-L cannot overflow. Working relative to the
    seed makes a constant series come out exactly constant.
    """
    n = len(x)
    out[:1] = seed
    if n <= 1:
        return out
    d = 1.0 - alpha
    tail_x, tail = x[1:], out[1:]
    if d <= 0.0:
        tail[:] = tail_x
        return out
    row = int(min(len(tail), max(16, _MAX_LOG_SCALE // -math.log(d))))
    k = np.arange(row, dtype=np.float64)
    grow = alpha * np.power(d, -k)  # alpha * d**-k
    decay = np.power(d, k)  # d**k
    carry = 0.0  # out - seed, just before the row
    for s in range(0, len(tail), row):
        seg = tail[s : s + row]
        m = len(seg)
        np.subtract(tail_x[s : s + m], seed, out=seg)
        np.multiply(seg, grow[:m], out=seg)
        seg[0] += d * carry
        np.cumsum(seg, out=seg)
        np.multiply(seg, decay[:m], out=seg)
        carry = float(seg[-1])
        seg += seed
    return out


# Outputs are produced in chunks of this many bars so that every temporary stays
# small (in cache, and below malloc's mmap threshold, so no page faults).
_CHUNK = 16384


def window_moments(x: np.ndarray, n: int, want_m2: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean and sum of squared deviations (M2) of each trailing window ``x[t-n+1 .. t]``.

    Both have length len(x)-n+1 (windows ending at t = n-1, n, ...); M2 is None
    unless ``want_m2``.

    Method: pairwise merging of (count, mean, M2) over the binary decomposition
    of n (Chan, Golub & LeVeque 1979, "Updating formulae and a pairwise algorithm
    for computing sample variances"): blocks of 1, 2, 4, ... bars ending at every
    bar are built by merging two halves, and the window is the merge of the blocks
    of n's set bits. Merging A (older, count a) with B (newer, count b):
    ``mean = mA + d*b/(a+b)``, ``M2 = M2A + M2B + d*d*a*b/(a+b)`` with d = mB - mA.
    Relative error is about log2(n) ulps with no drift over long series (a running
    or cumulative sum of squares loses ~10 digits on BTC prices), and a constant
    window gets exactly its value as mean and exactly 0 as M2.
    """
    total = len(x) - n + 1
    mean = np.empty(max(total, 0))
    m2 = np.empty_like(mean) if want_m2 else None
    for a in range(0, total, _CHUNK):
        b = min(a + _CHUNK, total)
        cm, cq = _pairwise(x[a : b + n - 1], n, want_m2)
        mean[a:b] = cm
        if m2 is not None:
            m2[a:b] = cq
    return mean, m2


def _merge(
    ma: np.ndarray, qa: np.ndarray | None, na: int,
    mb: np.ndarray, qb: np.ndarray | None, nb: int, want_m2: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    d = mb - ma
    step = d * (nb / (na + nb))
    mean = ma + step
    if not want_m2:
        return mean, None
    q = d * step
    q *= na
    if qa is not None:
        q += qa
    if qb is not None:
        q += qb
    return mean, q


def _pairwise(seg: np.ndarray, n: int, want_m2: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Window means/M2 over ``seg`` (windows ending at seg index n-1 ..).

    Arrays at level w hold blocks of w bars; element k is the block ending at
    seg index k + w - 1. M2 of a single bar is 0, represented by None.
    """
    pm, pq, w = seg, None, 1
    am: np.ndarray | None = None
    aq: np.ndarray | None = None
    acnt = 0
    while True:
        if n & w:
            if am is None:
                am, aq, acnt = pm, pq, w
            else:
                # older part: the w-block ending acnt bars before the window's end
                keep = len(seg) - acnt - w + 1
                am, aq = _merge(pm[:keep], pq[:keep] if pq is not None else None, w,
                                am[w:], aq[w:] if aq is not None else None, acnt, want_m2)
                acnt += w
        if 2 * w > n:
            break
        pm, pq = _merge(pm[:-w], pq[:-w] if pq is not None else None, w,
                        pm[w:], pq[w:] if pq is not None else None, w, want_m2)
        w *= 2
    assert am is not None
    if want_m2 and aq is None:  # n == 1
        aq = np.zeros(len(am))
    return am, aq


def window_extreme(x: np.ndarray, n: int, fn: np.ufunc) -> np.ndarray:
    """Max (fn=np.maximum) or min (np.minimum) of each trailing window of ``n``.

    Length len(x)-n+1. Doubling: after k steps a[t] covers the 2**k bars ending at
    t; two overlapping power-of-two windows cover any n. Exact (no arithmetic).
    """
    a = x.copy()
    b = np.empty_like(a)
    w = 1
    while 2 * w <= n:
        fn(a[w:], a[:-w], out=b[w:])
        b[:w] = a[:w]
        a, b = b, a
        w *= 2
    r = n - w
    if r:
        fn(a[r:], a[:-r], out=b[r:])
        a = b
    return a[n - 1 :]
