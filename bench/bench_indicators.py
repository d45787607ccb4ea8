"""Each indicator's time on 100,000 bars beside TA-Lib's, in the same run.

    .venv/bin/python bench/bench_indicators.py [--bars N] [--repeat R]

Prints best-of-R wall times (ms) and the ratio ours/TA-Lib (target: <= 3x).
Input: real BTC/USDT 1h candles from ../shared/data, tiled to N bars (random
walk if the data is absent). Exits 0; it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strategies import indicators as ind  # noqa: E402


def _series(bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    path = ROOT.parent / "shared" / "data" / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"
    if path.exists():
        import pandas as pd

        df = pd.read_csv(path)
        cols = [np.resize(df[k].to_numpy(np.float64), bars) for k in ("high", "low", "close", "volume")]
        return (*cols, f"real BTC/USDT 1h tiled to {bars} bars")  # type: ignore[return-value]
    rng = np.random.default_rng(0)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    return close * 1.005, close * 0.995, close, rng.uniform(1, 100, bars), "seeded random walk"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=25)
    args = ap.parse_args()
    try:
        import talib
    except ImportError:
        print("TA-Lib is not installed (pip install TA-Lib): nothing to compare with")
        return 0
    high, low, close, volume, what = _series(args.bars)
    k = 2.0 * np.sqrt(20 / 19)
    cases = {
        "SMA(20)": (lambda: ind.sma(close, 20), lambda: talib.SMA(close, 20)),
        "EMA(26)": (lambda: ind.ema(close, 26), lambda: talib.EMA(close, 26)),
        "RSI(14)": (lambda: ind.rsi(close, 14), lambda: talib.RSI(close, 14)),
        "MACD(12,26,9)": (lambda: ind.macd(close), lambda: talib.MACD(close, 12, 26, 9)),
        "Bollinger(20,2)": (lambda: ind.bollinger(close, 20, 2.0), lambda: talib.BBANDS(close, 20, k, k)),
        "std(20)": (lambda: ind.rolling_std(close, 20), lambda: talib.STDDEV(close, 20, 1.0)),
        "ROC(14)": (lambda: ind.roc(close, 14), lambda: talib.ROC(close, 14)),
        "z-score(30)": (
            lambda: ind.zscore(close, 30),
            lambda: (close - talib.SMA(close, 30)) / talib.STDDEV(close, 30, 1.0),
        ),
        "ATR(14)": (lambda: ind.atr(high, low, close, 14), lambda: talib.ATR(high, low, close, 14)),
        "Donchian high(59)": (lambda: ind.donchian_high(high, 59), lambda: talib.MAX(high, 59)),
        "Donchian low(21)": (lambda: ind.donchian_low(low, 21), lambda: talib.MIN(low, 21)),
        "volume SMA(20)": (lambda: ind.volume_sma(volume, 20), lambda: talib.SMA(volume, 20)),
    }
    print(f"{what}; best of {args.repeat} runs; numpy {np.__version__}, TA-Lib {talib.__version__}")
    print(f"{'indicator':<20}{'ours ms':>10}{'TA-Lib ms':>11}{'ratio':>8}")
    worst = 0.0
    for name, (ours, ref) in cases.items():
        ours(), ref()  # warm up
        t_ours = min(timeit.repeat(ours, number=1, repeat=args.repeat)) * 1e3
        t_ref = min(timeit.repeat(ref, number=1, repeat=args.repeat)) * 1e3
        ratio = t_ours / t_ref
        worst = max(worst, ratio)
        flag = "" if ratio <= 3.0 else "  (over the 3x target)"
        print(f"{name:<20}{t_ours:>10.3f}{t_ref:>11.3f}{ratio:>7.2f}x{flag}")
    print(f"worst ratio {worst:.2f}x (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
