"""Vectorised numpy kernels behind the indicators: recursions, rolling sums, rolling extrema.

No Python loop runs per bar. Every kernel is *prefix-stable*: the value at bar t is
computed by exactly the same floating-point operations whatever follows bar t, so
slicing the input never changes an earlier output bit (the no-look-ahead tests rely
on this). Allocation is kept low on purpose: on a 100k-bar series each fresh
temporary costs page faults that rival the arithmetic.
"""

from __future__ import annotations

import functools
import threading

import numpy as np


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
    if np.isfinite(np.dot(arr, arr)):  # fast path: one BLAS pass; NaN, inf (or overflow) fail it
        return arr, 0
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
    EMA (alpha = 2/(n+1)) and of Wilder's smoothing (alpha = 1/n). ``out`` may be
    ``x`` itself.

    Method: the deviation from the seed, ``u[t] = d*u[t-1] + alpha*(x[t] - seed)``
    with d = 1 - alpha, is a first-order linear recurrence, solved block-wise by
    small matrix products (see ``_scan``). Working relative to the seed makes a
    constant series come out exactly constant.
    """
    if len(x) > 1:
        d = 1.0 - alpha
        if d <= 0.0:
            out[1:] = x[1:]
        else:
            _scan(x[1:], alpha, d, out[1:], seed)
    out[:1] = seed
    return out


# The linear recurrence y[t] = d*y[t-1] + a*z[t] is solved on rows of _ROW values:
# inside a row, from a zero state, it is one product with a lower-triangular Toeplitz
# matrix of a*d**lag; the states between rows follow the same recurrence with d**_ROW,
# solved recursively on the row ends. _ROW = 8 is where BLAS is fastest per value for
# this shape. Rows are counted from the series' first value and every BLAS call gets a
# multiple of _ROW rows starting at a multiple of _ROW rows (the last row zero-padded),
# at absolute row offsets that do not depend on the series length, so each row goes
# through the same kernel: results are prefix-stable bit for bit.
_ROW = 8
_GROUP = _ROW * _ROW
# Rows per BLAS call. OpenBLAS goes multi-threaded for gemv above 2304*4 matrix
# elements and for gemm at m*n*k >= 65536*4: threads cost more than they save here,
# make timings erratic and could split rows differently by length, so every call
# stays below those thresholds (gemv: 1144 rows of 8; gemm: 4088 rows of 8 by 8).
_GEMV_ROWS = 1144
_GEMM_ROWS = 4088
# A carry weighted by less than this is below half an ulp of a state of its size it joins.
_NEGLIGIBLE = 2.0**-53
_LAG = np.arange(_ROW)[None, :] - np.arange(_ROW)[:, None] + _ROW - 1  # [k, i] = i - k + 7

# Series-sized work buffers, kept per thread and reused across calls: a fresh
# series-sized array costs page faults that rival the arithmetic (~230 us per 100k).
_local = threading.local()


def scratch(key: object, size: int) -> np.ndarray:
    """A reusable float64 work buffer of ``size`` values for ``key`` (this thread only).

    The contents are garbage; the buffer is only valid until the next call with the
    same key in the same thread (so callers that may nest use distinct keys).
    """
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(key)
    if buf is None or len(buf) < size:
        buf = bufs[key] = np.empty(max(size, 64))
    return buf[:size]


@functools.lru_cache(maxsize=64)
def _row_matrix(a: float, d: float) -> tuple[np.ndarray, np.ndarray]:
    """The row product matrix and its last column times d/a (contiguous; see _scan_rows),
    read-only, cached."""
    taps = [0.0] * (_ROW - 1) + [a * d**j for j in range(_ROW)]
    mat = np.array([t if abs(t) >= 1e-200 else 0.0 for t in taps])[_LAG]
    last = np.ascontiguousarray(mat[:, -1]) * (d / a)
    mat.flags.writeable = False
    last.flags.writeable = False
    return mat, last


def _scan(v: np.ndarray, a: float, d: float, out: np.ndarray, offset: float = 0.0, level: int = 0) -> None:
    """``out[t] = offset + y[t]`` where ``y[t] = d*y[t-1] + a*(v[t] - offset)``, ``y[-1] = 0``.

    ``out`` may be ``v``. A row starting after state c has
    ``y[i] = d**(i+1)*c + sum_{k<=i} a*d**(i-k)*z[k]``; the carry term is the
    k = 0 term with z[0] raised by c*d/a, so each carry is added to its row's
    first value and then one product per row does the rest. The rows
    (``v - offset``, zero-padded to whole groups of rows) are formed once in a
    reused per-thread buffer (one per recursion level), so ``v`` is only read and
    nothing series-sized is allocated.
    """
    m = len(v)
    z = scratch(("z", level), -(-m // _GROUP) * _GROUP)
    np.subtract(v, offset, out=z[:m])
    _scan_rows(z, m, a, d, out, offset, level)


def row_buffer(m: int) -> np.ndarray:
    """The (reused, per-thread) buffer that ``smooth_rows`` reads: fill its first ``m`` values."""
    return scratch(("z", 0), -(-m // _GROUP) * _GROUP)


def smooth_rows(z: np.ndarray, m: int, alpha: float, seed: float, out: np.ndarray) -> bool:
    """``smooth`` of a series whose values after the seed are already in the row buffer.

    ``z = row_buffer(m)`` holds ``x[1:]`` in its first ``m`` values (x[0] is the
    seed's place); ``out`` (length m + 1) gets the recursion of ``smooth(x, alpha,
    seed, out)``. Lets a caller produce its input (e.g. a true range) straight into
    the buffer, saving a pass. Unlike ``smooth`` it does not work relative to the
    seed (the seed enters as the state before the first row), which saves two more
    passes but gives up exact constancy on a constant series (errors of an ulp or
    so, as in the plain recursion). Needs 0 < alpha < 1.

    Returns whether the input was all finite (cheaply, from the row ends: a NaN or
    infinity makes its row's end, and so their sum, non-finite; an overflow of that
    sum also gives False, so False only means "check the input"). The sum is numpy's
    own, not a BLAS dot, which would go multi-threaded on long series.
    """
    out[:1] = seed
    if not m:
        return True
    ends = _scan_rows(z, m, alpha, 1.0 - alpha, out[1:], 0.0, 0, seed)
    return bool(np.isfinite(np.sum(ends)))


def _scan_rows(
    z: np.ndarray, m: int, a: float, d: float, out: np.ndarray, offset: float, level: int, state: float = 0.0
) -> np.ndarray:
    """``_scan`` from its row buffer ``z`` (``v - offset`` in its first m values), from
    ``y[-1] = state`` instead of 0 if ``state`` is given. Returns the row ends, scaled
    (carried states for all rows but the last), or the input if there is one row."""
    rows = -(-m // _ROW)
    prows = -(-rows // _ROW) * _ROW
    z[m:] = 0.0
    zr = z.reshape(prows, _ROW)
    mat, end_col = _row_matrix(a, d)  # end_col: a row's contribution to its last value, x d/a
    if state:  # row 0 starts after this state: the carry rule below
        zr[0, 0] += state * (d / a)
    if rows > 1:
        ends = scratch(("e", level), prows)  # d/a x each row's own contribution to its last value
        for r in range(0, prows, _GEMV_ROWS):
            np.matmul(zr[r : r + _GEMV_ROWS], end_col, out=ends[r : r + _GEMV_ROWS])
        carry = ends[: rows - 1]  # becomes d/a x the state at the end of rows 0 .. rows-2
        decay = d**_ROW
        if decay >= _NEGLIGIBLE:  # (the recursion is linear: scaling inputs scales states)
            _scan(carry, 1.0, decay, carry, 0.0, level + 1)
    body = m // _GROUP * _ROW  # rows written straight into out
    dst = out[: body * _ROW].reshape(body, _ROW)
    for r in range(0, body, _GEMM_ROWS):
        k = min(r + _GEMM_ROWS, body)
        if rows > 1:  # row i >= 1 starts after carry[i-1] (added while the chunk is in cache)
            zr[max(r, 1) : k, 0] += ends[max(r, 1) - 1 : k - 1]
        np.matmul(zr[r:k], mat, out=dst[r:k])
        if offset:  # while the chunk is in cache
            dst[r:k] += offset
    if body < prows:  # the last group of rows, zero-padded
        if rows > max(body, 1):
            zr[max(body, 1) : rows, 0] += ends[max(body, 1) - 1 : rows - 1]
        tmp = scratch(("t", level), _GROUP).reshape(_ROW, _ROW)
        np.matmul(zr[body:], mat, out=tmp)
        np.add(tmp.reshape(-1)[: m - body * _ROW], offset, out=out[body * _ROW :])
    return ends[:rows] if rows > 1 else z[:m]


# Outputs are produced in chunks of this many bars so that every temporary stays
# small: in cache, and at 64 KiB below malloc's mmap threshold (128 KiB), so it is
# recycled instead of page-faulted in afresh on every call.
_CHUNK = 16384


def window_mean(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Mean of each trailing window ``x[t-n+1 .. t]``, written to ``out`` (length len(x)-n+1).

    Method: sums of blocks of 1, 2, 4, ... bars by doubling (pairwise summation:
    about log2(n) ulps of error, no drift), then the blocks of n's set bits merged
    as means, ``m = mA + (mB - mA) * b/(a+b)``: a power-of-two sum of equal values
    is exact, so a constant window gets exactly its value. Temporaries are chunk
    sized (see _CHUNK).
    """
    total = len(x) - n + 1
    bits = [w for w in (1 << i for i in range(n.bit_length())) if n & w][::-1]  # largest first
    top = bits[0]
    span = min(_CHUNK, max(total, 0)) + n - 1
    levels = {w: np.empty(span) for w in bits if w > 1}
    pong = np.empty((2, span))
    step = np.empty(span)
    for a in range(0, total, _CHUNK):
        b = min(a + _CHUNK, total)
        seg = x[a : b + n - 1]
        size, cur, w = len(seg), seg, 1
        while w < top:  # cur[k] = sum of seg[k .. k+w-1], length size-w+1
            dst = levels[2 * w] if 2 * w in levels else pong[w.bit_length() % 2]
            np.add(cur[: size - 2 * w + 1], cur[w : size - w + 1], out=dst[: size - 2 * w + 1])
            cur, w = dst, 2 * w
        res = out[a:b]
        np.multiply(cur[: b - a], 1.0 / top, out=res)
        have = top
        for w in bits[1:]:
            blk = seg if w == 1 else levels[w]
            st = step[: b - a]
            np.multiply(blk[have : have + b - a], 1.0 / w, out=st)
            st -= res
            st *= w / (have + w)
            res += st
            have += w
    return out


def window_extreme(x: np.ndarray, n: int, fn: np.ufunc, out: np.ndarray | None = None) -> np.ndarray:
    """Max (fn=np.maximum) or min (np.minimum) of each trailing window of ``n``.

    Length len(x)-n+1, written to ``out`` if given (fresh otherwise). Doubling: after
    k steps a[t] covers the 2**k bars ending at t; two overlapping power-of-two
    windows cover any n. Exact (no arithmetic). The doubling runs in reused
    per-thread buffers (no page faults for fresh series-sized temporaries).
    """
    size = len(x)
    if out is None:
        out = np.empty(max(size - n + 1, 0))
    a, b = scratch("extreme a", size), scratch("extreme b", size)
    np.copyto(a, x)
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
    out[:] = a[n - 1 :]
    return out


# --- rolling std (and mean) with bottleneck's running windows -----------------------
#
# bottleneck's move_std is a running (Welford-style) update, about as fast as TA-Lib,
# but its running mean carries rounding error of about eps*|level| per step, which
# leaks into the sum of squares: on raw BTC prices that is ~1e-7 relative. The error
# scales as eps * sqrt(steps) * (scale/std)**2, where scale is the size of the values
# the recursion has seen. So it is run on rows of _BN_ROW windows, each row shifted by
# its first value (std is shift-invariant) and fed the n-1 bars before its first window:
# the scale is then the row's price range, not the price level, and steps <= _BN_ROW + n.
# Rows start at absolute bars 0, _BN_ROW, 2*_BN_ROW, ... and the recursion at bar t reads
# only bars up to t, so no value depends on where the series ends.
#
# Where the error estimate is not small enough (std below sqrt(eps*sqrt(steps)/_BN_REL)
# x the scale seen so far in the row), and wherever the flat rule (std <= flat_rel x
# |mean|) could apply, the window is recomputed by a two-pass formula (relative error ~n ulps; a constant window
# gets exactly its value as mean and exactly 0 as std). The threshold uses the row's
# running maximum |shifted value| up to the window's last bar, which is prefix-only
# information, so whether a window is recomputed never depends on later bars.
_BN_ROW = 256
# Measured on BTC/ETH/SOL 1h (n = 20, 30; rows of 256..4096): relative error of the
# running std <= 0.55 * eps * sqrt(row) * (scale/std)**2. It is trusted only where that
# estimate (with constant 1, and the row's n-1 lead-in counted) is <= _BN_REL.
_BN_REL = 2e-10
_BN_ROWS_PER_CALL = 64  # rows per bottleneck call: temporaries of ~140 KiB, in cache


def window_std(
    x: np.ndarray, n: int, ddof: int, flat_rel: float,
    std_out: np.ndarray, mean_out: np.ndarray | None = None,
) -> np.ndarray:
    """Std (and mean, if ``mean_out``) of each trailing window of ``n`` bars of ``x``.

    ``std_out`` (and ``mean_out``) have length len(x)-n+1 (windows ending at
    n-1, n, ...). A window whose std is <= ``flat_rel`` x |its mean| gets std
    exactly 0 (and its exact mean). Returns the indexes (into the outputs) of those
    flat windows. Accuracy: within about _BN_REL relative of the exact std (see the
    notes above); the windows recomputed use a two-pass formula on the window shifted
    by its first bar (a constant window: mean exactly its value, std exactly 0).
    Needs ``bottleneck`` (imported here, so the other indicators work without it).
    """
    import bottleneck as bn

    total = len(x) - n + 1
    row = _BN_ROW
    width = row + n - 1
    nrows = -(-total // row)
    full = total // row
    trust = float(np.sqrt(np.finfo(np.float64).eps * np.sqrt(width) / _BN_REL))
    step = x.strides[0]
    # rows[i] = x[i*row : i*row + width] (a view; the last row may be partial)
    rows = np.lib.stride_tricks.as_strided(x, (full, width), (step * row, step))
    anchor = x[: nrows * row : row].reshape(-1, 1)  # each row's first bar (a view)
    r = 0
    while r < nrows:
        if r < full:
            e = min(r + _BN_ROWS_PER_CALL, full)
            sh = rows[r:e] - anchor[r:e]
        else:  # the last, partial row
            e = nrows
            sh = (x[r * row :] - anchor[r]).reshape(1, -1)
        got = sh.shape[1] - n + 1
        std = bn.move_std(sh, n, axis=1, ddof=ddof)[:, n - 1 :]
        if got == row:
            std_out[r * row : e * row].reshape(e - r, row)[...] = std
        else:
            std_out[r * row :] = std[0]
        if mean_out is not None:
            mu = bn.move_mean(sh, n, axis=1)[:, n - 1 :]
            if got == row:
                np.add(mu, anchor[r:e], out=mean_out[r * row : e * row].reshape(e - r, row))
            else:
                np.add(mu[0], anchor[r], out=mean_out[r * row :])
        r = e
    starts = np.arange(0, nrows * row, row)
    low = np.minimum.reduceat(std_out, starts)  # each row's smallest std
    # Windows to recompute: std <= trust*scale + level_tol*(|anchor| + scale), scale being the
    # largest |x - anchor| of the row up to the window's last bar (prefix-only), with
    # level_tol*(|anchor| + scale) >= 2*flat_rel*|mean| covering every window the flat rule
    # could zero. A quick per-row test first, at the whole row's scale (>= every prefix's;
    # the same arithmetic, so it is an upper bound of every window's limit).
    level_tol = 2.0 * flat_rel
    coef = trust + level_tol
    level = np.abs(anchor[:, 0])
    level *= level_tol
    # [start, end) of each row, interleaved: reduceat gives each row's extreme at the even
    # places (the odd ones are ignored); the last row ends with x.
    bounds = np.empty(2 * nrows - 1, dtype=np.intp)
    bounds[0::2] = starts
    bounds[1::2] = starts[:-1] + width
    scale = np.maximum.reduceat(x, bounds)[0::2]
    scale -= anchor[:, 0]
    low_x = np.minimum.reduceat(x, bounds)[0::2]
    np.subtract(anchor[:, 0], low_x, out=low_x)
    np.maximum(scale, low_x, out=scale)
    scale *= coef
    scale += level
    redo: list[np.ndarray] = []
    suspect = np.flatnonzero(low <= scale)
    whole = suspect[suspect < full]
    if len(whole):
        run = rows[whole] - anchor[whole]
        np.abs(run, out=run)
        np.maximum.accumulate(run, axis=1, out=run)
        lim = run[:, n - 1 :]
        lim *= coef
        lim += level[whole, None]
        hit = np.flatnonzero(std_out[: full * row].reshape(full, row)[whole] <= lim)
        redo.append(whole[hit // row] * row + hit % row)
    if len(whole) < len(suspect):  # the partial last row
        run = np.abs(x[full * row :] - anchor[full])
        np.maximum.accumulate(run, out=run)
        lim = run[n - 1 :]
        lim *= coef
        lim += level[full]
        redo.append(np.flatnonzero(std_out[full * row :] <= lim) + full * row)
    flat = np.empty(0, dtype=np.intp)
    idx = np.concatenate(redo) if redo else flat
    if len(idx):
        win = x[idx[:, None] + np.arange(n)]
        base = win[:, :1].copy()
        win -= base  # exact zeros on a constant window
        dev = np.add.reduce(win, axis=1, keepdims=True)
        dev /= n
        m = base[:, 0] + dev[:, 0]  # a constant window's exact value
        win -= dev
        np.multiply(win, win, out=win)
        s = np.add.reduce(win, axis=1)  # two-pass M2: no cancellation
        s /= n - ddof
        np.sqrt(s, out=s)
        zero = s <= flat_rel * np.abs(m)
        s[zero] = 0.0
        std_out[idx] = s
        if mean_out is not None:
            mean_out[idx] = m
        flat = idx[zero]
    return flat
