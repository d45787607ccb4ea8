"""The numeric kernels behind the indicators: input checks, TA-Lib, rolling means and stds.

The recursive indicators (EMA, RSI, MACD, ATR) and the rolling extremes are TA-Lib's
own C functions: one sequential loop per indicator, single-threaded, exact step by
step (no drift on flat stretches or collapses) and prefix-stable (the value at bar t
is computed from bars 0..t by the same operations whatever follows). Rolling means
and standard deviations are our own (TA-Lib's running sums lose digits on near-flat
windows and after collapses). Nothing here calls BLAS: OpenBLAS runs long products
and dot products multi-threaded, which is slow and erratic when the other core is
busy (as it is whenever two checkers run at once).
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np

# TA-Lib's functions refuse periods above this (TA_BAD_PARAM).
TALIB_MAX_PERIOD = 100_000


def _import_talib() -> ModuleType:
    """TA-Lib, imported without the pandas (and polars) import its package makes.

    ``talib/__init__`` imports pandas only to accept a pandas Series as input,
    which we never pass; that import costs about 0.4 s and 40 MiB per process
    (measured: 12 ms and 5 MiB without it). A ``None`` entry in ``sys.modules``
    makes ``from pandas import Series`` raise ModuleNotFoundError for exactly
    that name, which talib treats as "not installed". The entries are removed
    right after, so pandas stays importable; if pandas is already imported,
    nothing is hidden (talib then merely wraps its functions for Series input).
    """
    hidden = [name for name in ("pandas", "polars") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import talib
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return talib


talib = _import_talib()


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


def check_window(n: object, name: str = "period", most: int | None = None) -> int:
    """``n`` as an int from 1 to ``most`` (unbounded if None); ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    if most is not None and n > most:
        raise ValueError(f"{name} must be at most {most} (TA-Lib's limit), got {n!r}")
    return int(n)


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
