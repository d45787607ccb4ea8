"""Technical indicators as pure functions over numpy arrays.

Every function takes 1-D arrays, returns float64 arrays of the same length with
NaN during the warm-up, and agrees with TA-Lib (the field's reference
implementation, used only by the tests) to 1e-9 relative from TA-Lib's first
output on, except where a docstring says the definition differs on purpose.

Input rules (all functions): leading NaNs are skipped, as TA-Lib's Python
wrapper skips them (so an indicator of an indicator works); a NaN or infinity
after the first value raises ValueError. Fewer bars than the window gives an
all-NaN result, not an error. Windows must be integers >= 1.

Conventions are REFERENCE section 4: SMA is a rolling mean; EMA is
``ewm(span=n, adjust=False)`` seeded with the SMA of the first n values (as
TA-Lib seeds it); RSI and ATR use Wilder's smoothing seeded the same way; the
standard deviation of Bollinger bands and z-scores uses ddof=1 (TA-Lib: ddof=0).
"""

from __future__ import annotations

import numpy as np

from strategies._kernels import (
    check_window,
    finite_series,
    row_buffer,
    scratch,
    smooth,
    smooth_rows,
    window_extreme,
    window_mean,
    window_std,
)

# Elementwise work on long series is done in chunks of this many bars so that
# temporaries stay small (fresh large arrays cost page faults).
_CHUNK = 16384
# ATR's true ranges are formed in chunks of this many bars, which stay in cache
# between the passes.
_TR_CHUNK = 16384

# A window whose standard deviation is below this fraction of its mean is
# treated as flat (std 0): what is left is floating-point noise, not volatility.
FLAT_REL_STD = 1e-10


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _warm(n: int, first: int) -> np.ndarray:
    """A fresh array of n whose first ``first`` values are NaN (the rest is filled by the caller)."""
    out = np.empty(n)
    out[: min(first, n)] = np.nan
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average: mean of ``x[t-n+1 .. t]``, from t = n-1. TA-Lib ``SMA``."""
    n = check_window(n)
    arr, start = finite_series(x)
    out = _warm(len(arr), start + n - 1)
    if len(arr) - start >= n:
        window_mean(arr[start:], n, out[start + n - 1 :])
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(n+1), seeded at t = n-1 with the SMA of the first n.

    ``ewm(span=n, adjust=False)`` recursion with TA-Lib's seed, so it equals
    TA-Lib ``EMA`` everywhere TA-Lib has a value.
    """
    n = check_window(n)
    arr, start = finite_series(x)
    return _smoothed(arr, start, n, 2.0 / (n + 1))


def _smoothed(arr: np.ndarray, start: int, n: int, alpha: float, out: np.ndarray | None = None) -> np.ndarray:
    """Smoothing of ``arr[start:]`` seeded with the mean of its first n values, into ``out``
    (fresh if None; may be ``arr`` itself: each value is read before it is overwritten)."""
    first = start + n - 1
    if out is None:
        out = np.empty(len(arr))
    if len(arr) - start >= n:
        seg = arr[start : start + n]
        seed = seg[0] + float(np.mean(seg - seg[0]))  # exact on a constant window
        smooth(arr[first:], alpha, seed, out[first:])
    out[: min(first, len(arr))] = np.nan
    return out


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing (alpha = 1/n) seeded with the SMA of the first n values."""
    n = check_window(n)
    arr, start = finite_series(x)
    return _smoothed(arr, start, n, 1.0 / n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's Relative Strength Index, 0..100, from t = n. TA-Lib ``RSI``.

    Average gain and loss are seeded with the mean of the first n changes and
    then Wilder-smoothed: ``avg = (avg*(n-1) + change)/n``.
    RSI = 100 * avg_gain / (avg_gain + avg_loss). Wilder's smoothing is linear,
    so avg_gain + avg_loss is the smoothed absolute change: we smooth gains and
    absolute changes (two recursions, no cancellation) and divide.

    Differs from TA-Lib on purpose in one case: when both averages are 0 (no
    price change in the whole memory, e.g. constant prices) RSI is undefined;
    TA-Lib returns 0, which a strategy would read as "deeply oversold" and buy
    the first uptick. We return 50 (neutral).
    """
    n = check_window(n)
    arr, start = finite_series(close, "close")
    out = np.empty(len(arr))
    if len(arr) - start < n + 1:
        out[:] = np.nan
        return out
    move = out[start + 1 :]
    np.subtract(arr[start + 1 :], arr[start:-1], out=move)  # the changes
    gain = np.maximum(move, 0.0, out=scratch("rsi gain", len(move)))  # reused: no page faults
    np.abs(move, out=move)
    up = _smoothed(gain, 0, n, 1.0 / n, out=gain)[n - 1 :]
    both = _smoothed(move, 0, n, 1.0 / n, out=move)[n - 1 :]
    if both.min() > 0.0:
        np.divide(up, both, out=both)
    else:
        flat = both <= 0.0
        np.divide(up, both, out=both, where=~flat)
        both[flat] = 0.5
    both *= 100.0
    out[: start + n] = np.nan
    return out


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal line and histogram, as TA-Lib ``MACD`` computes them.

    MACD = EMA_fast - EMA_slow; signal = EMA_signal(MACD); hist = MACD - signal.
    TA-Lib aligns the two EMAs: both start at t = slow-1, the fast one seeded
    with the SMA of the ``fast`` values ending there (so it differs from a
    stand-alone EMA_fast for a few dozen bars). We do the same. The MACD line is
    defined from t = slow-1 (TA-Lib hides it until the signal line starts);
    signal and histogram from t = slow+signal-2.
    """
    fast, slow, signal = check_window(fast, "fast"), check_window(slow, "slow"), check_window(signal, "signal")
    if fast >= slow:
        raise ValueError(f"MACD needs fast < slow, got fast={fast}, slow={slow}")
    arr, start = finite_series(close, "close")
    size = len(arr)
    first = start + slow - 1
    line, sig, hist = _warm(size, first), _warm(size, first + signal - 1), _warm(size, first + signal - 1)
    if size > first:
        _smoothed(arr, start, slow, 2.0 / (slow + 1), out=line)
        fast_ema = _smoothed(arr, first - fast + 1, fast, 2.0 / (fast + 1), out=hist)
        np.subtract(fast_ema[first:], line[first:], out=line[first:])
        if size - first >= signal:
            _smoothed(line, first, signal, 2.0 / (signal + 1), out=sig)
            np.subtract(line, sig, out=hist)
        else:
            hist[:] = np.nan
    return line, sig, hist


def rolling_std(x: np.ndarray, n: int, ddof: int = 1) -> np.ndarray:
    """Rolling standard deviation of ``x[t-n+1 .. t]`` with ``ddof`` (default 1, the sample std).

    TA-Lib ``STDDEV`` uses ddof=0: ``rolling_std(x, n, 0)`` equals it, and
    ``rolling_std(x, n)`` equals it times sqrt(n/(n-1)) (and pandas
    ``rolling(n).std()``). A window whose std is below FLAT_REL_STD of its
    mean's magnitude is flat and gets exactly 0.
    """
    n = check_window(n)
    if ddof not in (0, 1) or n - ddof < 1:
        raise ValueError(f"rolling_std needs ddof 0 or 1 and n > ddof, got n={n}, ddof={ddof}")
    arr, start = finite_series(x)
    return _mean_std(arr, start, n, ddof, want_mean=False)[1]


def rolling_mean_std(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std (ddof=1) of the same windows, from t = n-1 (see rolling_std)."""
    n = check_window(n)
    if n < 2:
        raise ValueError(f"a sample std needs a window of at least 2 bars, got {n}")
    arr, start = finite_series(x)
    mean, std, _ = _mean_std(arr, start, n)
    assert mean is not None
    return mean, std


def _mean_std(
    arr: np.ndarray, start: int, n: int, ddof: int = 1, want_mean: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Rolling mean (None unless ``want_mean``) and std of ``arr[start:]``, NaN-padded, and
    the bar indexes of flat windows (std exactly 0; their mean is exact too)."""
    size = len(arr)
    first = start + n - 1
    std = _warm(size, first)
    mean = _warm(size, first) if want_mean else None
    flat = np.empty(0, dtype=np.intp)
    if size - start >= n:
        flat = window_std(
            arr[start:], n, ddof, FLAT_REL_STD, std[first:], None if mean is None else mean[first:]
        ) + first
    return mean, std, flat


def bollinger(
    close: np.ndarray, n: int = 20, num_std: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands (upper, middle, lower): SMA_n +/- num_std * std_n, from t = n-1.

    The std is the sample std (ddof=1) per REFERENCE section 4. TA-Lib ``BBANDS``
    uses ddof=0, so ours equals ``BBANDS(close, n, k*sqrt(n/(n-1)), k*sqrt(n/(n-1)))``.
    """
    n = check_window(n)
    if n < 2:
        raise ValueError(f"Bollinger bands need a window of at least 2 bars, got {n}")
    arr, start = finite_series(close, "close")
    mid, width, _ = _mean_std(arr, start, n)
    assert mid is not None
    width *= num_std
    upper = mid + width
    np.subtract(mid, width, out=width)
    return upper, mid, width


def zscore(x: np.ndarray, n: int) -> np.ndarray:
    """(x - SMA_n) / std_n with the sample std (ddof=1), from t = n-1.

    TA-Lib has no z-score; the reference is (x - SMA) / (STDDEV * sqrt(n/(n-1))).
    A flat window (std 0) gives NaN: the score is undefined there.
    """
    n = check_window(n)
    if n < 2:
        raise ValueError(f"a z-score needs a window of at least 2 bars, got {n}")
    arr, start = finite_series(x)
    mean, std, flat = _mean_std(arr, start, n)
    out = np.subtract(arr, mean, out=mean)  # NaN during the warm-up
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, std, out=out)
    out[flat] = np.nan  # std 0: undefined (0/0 or +-x/0 above)
    return out


def roc(close: np.ndarray, n: int) -> np.ndarray:
    """Rate of change in percent: (close[t] / close[t-n] - 1) * 100, from t = n. TA-Lib ``ROC``.

    A zero base price gives NaN (TA-Lib gives 0).
    """
    n = check_window(n)
    arr, start = finite_series(close, "close")
    out = _nan(len(arr))
    if len(arr) - start > n:
        now, base = arr[start + n :], arr[start:-n]
        res = out[start + n :]
        np.divide(now, base, out=res, where=base != 0.0)
        res -= 1.0
        res *= 100.0
        res[base == 0.0] = np.nan
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high-low, |high-prev close|, |low-prev close|), from t = 1. TA-Lib ``TRANGE``."""
    h, lo, c = _same_length(high=high, low=low, close=close)
    out = _warm(len(c), 1)
    _true_range_into(h, lo, c, out)
    return out


def _true_range_into(h: np.ndarray, lo: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """``out[1:]`` = max(high, prev close) - min(low, prev close): for high >= low this is
    TA-Lib's max(high-low, |high-prev|, |low-prev|) bit for bit (the same one subtraction),
    in fewer passes and with only a chunk-sized temporary."""
    res = out[1:]
    np.maximum(h[1:], c[:-1], out=res)
    tmp = np.empty(min(_CHUNK, len(res)))
    for a in range(0, len(res), _CHUNK):
        b = min(a + _CHUNK, len(res))
        np.minimum(lo[1 + a : 1 + b], c[a:b], out=tmp[: b - a])
        res[a:b] -= tmp[: b - a]


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average True Range: Wilder's smoothing of the true range, from t = n. TA-Lib ``ATR``.

    Seeded with the mean of the first n true ranges (bars 1..n).
    """
    n = check_window(n)
    h, lo, c = (np.asarray(col, dtype=np.float64) for col in (high, low, close))
    size = len(c)
    if n == 1 or h.ndim != 1 or lo.ndim != 1 or c.ndim != 1 or len(h) != size or len(lo) != size or size <= n:
        return _atr_checked(h, lo, c, n)
    out = np.empty(size)
    with np.errstate(invalid="ignore", over="ignore"):  # bad input is caught below
        # The seed: mean of the true ranges of bars 1..n (computed as in true_range).
        seg = out[1 : n + 1]
        np.maximum(h[1 : n + 1], c[:n], out=seg)
        seg -= np.minimum(lo[1 : n + 1], c[:n])
        seed = float(seg[0] + (seg - seg[0]).sum() / n)
        # The true ranges of bars n+1.. go straight into the smoothing's row buffer.
        m = size - n - 1
        z = row_buffer(m)
        rest = z[:m]
        tmp = scratch("atr low", min(_TR_CHUNK, m))
        # The input check: high.low is finite only if both are (barring overflow; min/max
        # below would hide a +inf low or a -inf high), close is checked through the work.
        # One BLAS pass, as finite_series makes for each column of the other indicators.
        check = float(np.dot(h, lo))
        for a in range(0, m, _TR_CHUNK):  # in chunks that stay in cache between the passes
            b = min(a + _TR_CHUNK, m)
            hs, ls, cs = h[n + 1 + a : n + 1 + b], lo[n + 1 + a : n + 1 + b], c[n + a : n + b]
            np.maximum(hs, cs, out=rest[a:b])
            rest[a:b] -= np.minimum(ls, cs, out=tmp[: b - a])
        # The rest of the input check is folded into the work: a NaN or infinity in
        # close[:-1] makes a true range non-finite, which the smoothing reports. If
        # anything is not finite (or overflowed) the full check runs and raises with
        # the offending column and index.
        finite = smooth_rows(z, m, 1.0 / n, seed, out[n:])
        finite = finite and np.isfinite(check + seed + c[-1])
    if not finite:
        return _atr_checked(h, lo, c, n)
    out[:n] = np.nan
    return out


def _atr_checked(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    """ATR with the inputs checked first (errors, short series, ATR(1), overflow)."""
    h, lo, c = _same_length(high=h, low=lo, close=c)
    out = np.empty(len(c))
    if len(c) > n:
        _true_range_into(h, lo, c, out)
        if n > 1:
            _smoothed(out[1:], 0, n, 1.0 / n, out=out[1:])
    out[: min(n, len(c))] = np.nan
    return out


def donchian_high(high: np.ndarray, n: int) -> np.ndarray:
    """Highest high of ``high[t-n+1 .. t]`` (the bar itself included), from t = n-1. TA-Lib ``MAX``.

    A breakout rule compares bar t with the channel of the previous bars, i.e.
    with ``donchian_high(high, n)[t-1]``.
    """
    return _extreme(high, n, np.maximum)


def donchian_low(low: np.ndarray, n: int) -> np.ndarray:
    """Lowest low of ``low[t-n+1 .. t]``, from t = n-1. TA-Lib ``MIN``."""
    return _extreme(low, n, np.minimum)


def _extreme(x: np.ndarray, n: int, fn: np.ufunc) -> np.ndarray:
    n = check_window(n)
    arr, start = finite_series(x)
    out = _nan(len(arr))
    if len(arr) - start >= n:
        window_extreme(arr[start:], n, fn, out[start + n - 1 :])
    return out


def volume_sma(volume: np.ndarray, n: int = 20) -> np.ndarray:
    """Simple moving average of volume (same as ``sma``)."""
    return sma(volume, n)


def _same_length(**cols: np.ndarray) -> list[np.ndarray]:
    arrs = []
    for name, col in cols.items():
        arr, start = finite_series(col, name)
        if start:
            raise ValueError(f"{name} starts with NaN; OHLC inputs must be finite")
        arrs.append(arr)
    if len({len(a) for a in arrs}) > 1:
        sizes = ", ".join(f"{k}={len(a)}" for k, a in zip(cols, arrs, strict=True))
        raise ValueError(f"OHLC columns differ in length: {sizes}")
    return arrs
