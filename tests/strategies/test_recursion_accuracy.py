"""EMA, RSI, ATR and MACD on adversarial input, against plain loops and TA-Lib to 1e-9 relative.

The recursive indicators once carried an absolute error of about eps x the seed for the
whole series, so a value far below its seed lost its relative accuracy: on a flat
stretch RSI drifted into noise (and the rsi strategy bought on a flat market), on a
collapse EMA and RSI were off by 1e-8 .. 4e-7. The references here are the textbook
recursions, one Python loop per indicator, seeded as TA-Lib seeds them.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import strategies as S
from strategies import indicators as ind
from tests.strategies._data import make

talib = pytest.importorskip("talib")

RTOL = 1e-9


def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    """prev + k*(x - prev), k = 2/(n+1), seeded at n-1 with the mean of the first n."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        prev = math.fsum(x[:n]) / n
        out[n - 1] = prev
        k = 2.0 / (n + 1)
        for t in range(n, len(x)):
            prev += k * (x[t] - prev)
            out[t] = prev
    return out


def _wilder(values: list[float], n: int) -> list[float]:
    """Wilder's smoothing: seed = mean of the first n, then (avg*(n-1) + v)/n."""
    avg = math.fsum(values[:n]) / n
    out = [avg]
    for v in values[n:]:
        avg = (avg * (n - 1) + v) / n
        out.append(avg)
    return out


def ref_rsi(x: np.ndarray, n: int) -> np.ndarray:
    """100*gain/(gain+loss) of Wilder-smoothed gains and losses; 50 where both are 0."""
    out = np.full(len(x), np.nan)
    if len(x) > n:
        moves = np.diff(x)
        gains = _wilder([max(m, 0.0) for m in moves], n)
        losses = _wilder([max(-m, 0.0) for m in moves], n)
        for t, (g, lo) in enumerate(zip(gains, losses, strict=True), start=n):
            out[t] = 50.0 if g + lo == 0.0 else 100.0 * g / (g + lo)
    return out


def ref_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    if len(close) > n:
        tr = [max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
              for t in range(1, len(close))]
        out[n:] = _wilder(tr, n)
    return out


def _rel_close(ours: np.ndarray, ref: np.ndarray) -> None:
    """Relative 1e-9 everywhere (no absolute floor), NaN exactly where the reference is NaN."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0.0)


def _walk(rng: np.random.Generator, size: int, level: float, vol: float = 0.02) -> np.ndarray:
    return level * np.exp(np.cumsum(rng.normal(0.0, vol, size)))


def _series() -> dict[str, np.ndarray]:
    """Adversarial closes: flat stretches, collapses over many orders of magnitude, tiny and huge prices."""
    rng = np.random.default_rng(17)
    walk = _walk(rng, 200, 80.0)
    noise = np.exp(rng.normal(0.0, 0.01, 400))
    return {
        "200 random then 600 flat": np.concatenate([walk, np.full(600, walk[-1])]),
        "flat, moves, flat again": np.concatenate([np.full(50, 7.0), _walk(rng, 30, 7.0), np.full(300, 6.5)]),
        "collapse 80 -> 1e-4": np.geomspace(80.0, 1e-4, 400) * noise,
        "collapse 80 -> 1e-4, then flat": np.concatenate([np.geomspace(80.0, 1e-4, 300), np.full(300, 1e-4)]),
        "collapse 1e7 -> 1e-12": np.geomspace(1e7, 1e-12, 400) * noise,
        "crash then recovery": np.concatenate([np.geomspace(5e4, 1e-3, 200), np.geomspace(1e-3, 3e4, 200)]) * noise,
        "near 1e-6": _walk(rng, 500, 1e-6, 0.001),
        "near 1e7": _walk(rng, 500, 1e7, 0.001),
        "near 1e7, tiny moves": 1e7 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], 500)),
    }


SERIES = _series()


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("n", [2, 9, 14, 26])
def test_ema_rsi_match_plain_loops_and_talib(name, n):
    x = SERIES[name]
    _rel_close(ind.ema(x, n), ref_ema(x, n))
    _rel_close(ind.ema(x, n), talib.EMA(x, n))
    ref = ref_rsi(x, n)
    _rel_close(ind.rsi(x, n), ref)
    t_rsi = talib.RSI(x, n)
    t_rsi[(t_rsi == 0.0) & (ref == 50.0)] = 50.0  # nothing moved yet: TA-Lib 0, we 50 (on purpose)
    _rel_close(ind.rsi(x, n), t_rsi)


@pytest.mark.parametrize("name", SERIES)
def test_atr_matches_plain_loop_and_talib(name):
    close = SERIES[name]
    rng = np.random.default_rng(3)
    high = close * (1 + rng.uniform(0, 0.02, len(close)))
    low = close * (1 - rng.uniform(0, 0.02, len(close)))
    for n in (2, 14):
        _rel_close(ind.atr(high, low, close, n), ref_atr(high, low, close, n))
        _rel_close(ind.atr(high, low, close, n), talib.ATR(high, low, close, n))


@pytest.mark.parametrize("name", SERIES)
def test_macd_matches_talib(name):
    x = SERIES[name]
    line, sig, hist = ind.macd(x, 12, 26, 9)
    t_line, t_sig, t_hist = talib.MACD(x, 12, 26, 9)
    # MACD crosses zero, so "relative" is taken to the price level of the bar
    scale = 1e-12 * np.abs(x)
    ok = ~np.isnan(t_sig)
    for ours, ref in ((line, t_line), (sig, t_sig), (hist, t_hist)):
        assert np.all(np.abs(ours[ok] - ref[ok]) <= RTOL * np.abs(ref[ok]) + scale[ok])


def test_rsi_holds_its_value_on_a_flat_stretch():
    """Both averages decay by the same factor on identical closes: RSI stays where it was."""
    x = SERIES["200 random then 600 flat"]
    for n in (2, 14):
        r = ind.rsi(x, n)
        _rel_close(r[200:], np.full(600, r[200]))
        assert r[200] not in (0.0, 50.0, 100.0)


def test_rsi_two_of_a_series_that_goes_flat():
    x = np.array([10.0, 11.0, 10.5, 11.5, 11.2, 11.6] + [11.6] * 200)
    r = ind.rsi(x, 2)
    _rel_close(r, ref_rsi(x, 2))
    _rel_close(r, talib.RSI(x, 2))
    assert r[-1] == pytest.approx(r[5], rel=1e-12)


def test_rsi_undefined_only_when_nothing_moved():
    """TA-Lib says 0 when both averages are 0; we say 50 there, and match TA-Lib everywhere else."""
    x = np.concatenate([np.full(30, 5.0), np.geomspace(5.0, 1.0, 40)])  # flat, then only falls
    r = ind.rsi(x, 14)
    t = talib.RSI(x, 14)
    assert (r[14:31] == 50.0).all() and (t[14:31] == 0.0).all()
    assert (r[31:] == 0.0).all() and (t[31:] == 0.0).all()  # only losses: 0, as TA-Lib
    _rel_close(r, ref_rsi(x, 14))
    # a flat stretch long enough for the averages to underflow to 0: undefined again
    y = np.concatenate([[1.0, 2.0, 1.5], np.full(1300, 1.5)])
    assert talib.RSI(y, 2)[-1] == 0.0 and ind.rsi(y, 2)[-1] == 50.0
    assert ind.rsi(-y + 10.0, 2)[-1] == 50.0


def test_rsi_of_one_bar():
    x = np.array([1.0, 2.0, 2.0, 1.0, 3.0])
    np.testing.assert_array_equal(ind.rsi(x, 1), [np.nan, 100.0, 50.0, 0.0, 100.0])


@pytest.mark.parametrize("seed", range(6))
def test_no_signal_on_a_flat_market(seed):
    """200 random bars, then 600 identical closes: the rsi strategy never buys on the flat
    stretch, and no strategy fires once the indicators have settled (100 bars in)."""
    rng = np.random.default_rng(seed)
    walk = _walk(rng, 200, 80.0)
    candles = make(np.concatenate([walk, np.full(600, walk[-1])]))
    assert not S.signal_series("rsi", candles).signal[201:].any()
    for name in S.STRATEGY_NAMES:
        if name in ("pairs_spread", "edge70"):
            continue
        signal = S.signal_series(name, candles).signal
        assert not signal[300:].any(), f"{name} fired on a flat market at bars {np.flatnonzero(signal[300:]) + 300}"


def test_ema_never_oscillates_on_a_flat_stretch():
    x = SERIES["200 random then 600 flat"]
    for n in (2, 12, 26, 200):
        steps = np.diff(ind.ema(x, n)[200:])
        assert (steps >= 0).all() or (steps <= 0).all()


def test_import_keeps_pandas_out_and_importable(repo_root):
    code = ("import sys, strategies; import strategies.indicators as ind, numpy as np; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'polars', 'scipy')); "
            "ind.ema(np.ones(30), 5); import pandas; print(bad, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"
