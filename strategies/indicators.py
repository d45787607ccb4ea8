"""Technical indicators as pure functions over numpy arrays.

Every function takes 1-D arrays, returns float64 arrays of the same length with
NaN during the warm-up, and agrees with TA-Lib (the field's reference
implementation) to 1e-9 relative from TA-Lib's first output on, except where a
docstring says the definition differs on purpose. EMA, RSI, MACD, ATR, the true
range and the Donchian channel *are* TA-Lib's C loops (see strategies/_kernels.py
for why); SMA, the rolling std, ROC and the z-score are our own, because TA-Lib's
running sums lose digits where ours are exact.

Input rules (all functions): leading NaNs are skipped, as TA-Lib's Python
wrapper skips them (so an indicator of an indicator works); a NaN or infinity
after the first value raises ValueError. Fewer bars than the window gives an
all-NaN result, not an error. Windows must be integers >= 1 (and, for the
TA-Lib ones, at most 100000).

Conventions: SMA is a rolling mean; EMA is
``ewm(span=n, adjust=False)`` seeded with the SMA of the first n values (as
TA-Lib seeds it); RSI and ATR use Wilder's smoothing seeded the same way; the
standard deviation of Bollinger bands and z-scores uses ddof=1 (TA-Lib: ddof=0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from strategies._kernels import (
    TALIB_MAX_PERIOD,
    check_window,
    finite_series,
    talib,
    window_mean,
    window_std,
)

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

    ``ewm(span=n, adjust=False)`` recursion with TA-Lib's seed: TA-Lib ``EMA``
    itself, ``prev + alpha * (x - prev)`` one bar at a time. On a flat stretch each
    step moves toward the price and never past it, so an EMA never oscillates there
    (it may stop an ulp short: TA-Lib's seed, a sum of n values over n, can be an ulp off).
    """
    n = check_window(n, most=TALIB_MAX_PERIOD)
    arr, _ = finite_series(x)
    return talib.EMA(arr, n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's Relative Strength Index, 0..100, from t = n. TA-Lib ``RSI``.

    Average gain and loss are seeded with the mean of the first n changes and
    then Wilder-smoothed: ``avg = (avg*(n-1) + change)/n``;
    RSI = 100 * avg_gain / (avg_gain + avg_loss). On a stretch of identical
    closes both averages decay by the same factor, so RSI holds its last value.

    Differs from TA-Lib on purpose in one case: when both averages are 0 (no
    price change in the whole memory, e.g. constant prices, or a flat stretch
    so long that the averages underflowed) RSI is undefined; TA-Lib returns 0,
    which a strategy would read as "deeply oversold" and buy the first uptick.
    We return 50 (neutral). RSI(1) (TA-Lib needs n >= 2) is 100 after a rise,
    0 after a fall and 50 after no change.
    """
    n = check_window(n, most=TALIB_MAX_PERIOD)
    arr, start = finite_series(close, "close")
    if n == 1:
        out = np.full(len(arr), np.nan)
        move = np.diff(arr[start:])
        out[start + 1 :] = np.where(move > 0.0, 100.0, np.where(move < 0.0, 0.0, 50.0))
        return out
    out = talib.RSI(arr, n)
    zero = out == 0.0
    if zero.any():
        # 0 means no gain in memory: only losses, or no change at all. The mirror image
        # (-close: TA-Lib swaps the two averages bit for bit) reads 0 only if nothing fell either.
        nothing_fell = talib.RSI(-arr, n) == 0.0
        out[zero & nothing_fell] = 50.0
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
    most = TALIB_MAX_PERIOD
    fast, slow = check_window(fast, "fast", most), check_window(slow, "slow", most)
    signal = check_window(signal, "signal", most)
    if fast >= slow:
        raise ValueError(f"MACD needs fast < slow, got fast={fast}, slow={slow}")
    arr, start = finite_series(close, "close")
    first = start + slow - 1
    line = talib.EMA(arr, slow)
    if len(arr) > first:
        fast_ema = talib.EMA(arr[first - fast + 1 :], fast)  # seeded at `first`, as TA-Lib's MACD does
        np.subtract(fast_ema[fast - 1 :], line[first:], out=line[first:])
    sig = talib.EMA(line, signal)  # TA-Lib skips the line's leading NaNs
    return line, sig, line - sig


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

    The std is the sample std (ddof=1) as the strategies define it. TA-Lib ``BBANDS``
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
    return talib.TRANGE(h, lo, c)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average True Range: Wilder's smoothing of the true range, from t = n. TA-Lib ``ATR``.

    Seeded with the mean of the first n true ranges (bars 1..n).
    """
    n = check_window(n, most=TALIB_MAX_PERIOD)
    h, lo, c = _same_length(high=high, low=low, close=close)
    return talib.ATR(h, lo, c, n)


def donchian_high(high: np.ndarray, n: int) -> np.ndarray:
    """Highest high of ``high[t-n+1 .. t]`` (the bar itself included), from t = n-1. TA-Lib ``MAX``.

    A breakout rule compares bar t with the channel of the previous bars, i.e.
    with ``donchian_high(high, n)[t-1]``.
    """
    return _extreme(high, n, talib.MAX)


def donchian_low(low: np.ndarray, n: int) -> np.ndarray:
    """Lowest low of ``low[t-n+1 .. t]``, from t = n-1. TA-Lib ``MIN``."""
    return _extreme(low, n, talib.MIN)


def _extreme(x: np.ndarray, n: int, fn: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    n = check_window(n, most=TALIB_MAX_PERIOD)
    arr, _ = finite_series(x)
    return arr.copy() if n == 1 else fn(arr, n)  # TA-Lib's MAX/MIN need n >= 2


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
