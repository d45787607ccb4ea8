"""Each indicator's time on 100,000 bars beside TA-Lib's, quiet and with the other cores busy.

    .venv/bin/python bench/bench_indicators.py [--bars N] [--repeat R] [--imports K]

Prints best-of-R wall times (ms) and the ratio ours/TA-Lib (target: <= 3x) twice:
on a quiet machine, then while busy-loop processes keep all cores but one loaded
(as when checkers run side by side: BLAS threads, had we any, would stall there).
Then the import cost of the indicators (TA-Lib included) beside numpy alone, in
fresh processes (median of K). Input: real BTC/USDT 1h candles from
../shared/data, tiled to N bars (random walk if the data is absent). The machine
may be shared: read the ratios, not the absolute times. Exits 0; it reports, it
does not judge.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strategies import indicators as ind  # noqa: E402
from strategies._kernels import talib  # noqa: E402

Case = tuple[Callable[[], object], Callable[[], object]]


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


def _cases(bars: int) -> tuple[dict[str, Case], str]:
    high, low, close, volume, what = _series(bars)
    k = 2.0 * np.sqrt(20 / 19)
    return {
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
    }, what


def _time(cases: dict[str, Case], repeat: int) -> dict[str, tuple[float, float]]:
    """Best-of-``repeat`` ms of ours and TA-Lib's, interleaved so both see the same load."""
    out = {}
    for name, (ours, ref) in cases.items():
        ours(), ref()  # warm up
        t_ours, t_ref = [], []
        for _ in range(repeat):
            t_ours.append(timeit.timeit(ours, number=1))
            t_ref.append(timeit.timeit(ref, number=1))
        out[name] = (min(t_ours) * 1e3, min(t_ref) * 1e3)
    return out


def _busy_loops(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


_RSS = "\nfor line in open('/proc/self/status'):\n    if line.startswith('VmRSS:'): print(line.split()[1])"


def _import_cost(code: str, runs: int) -> tuple[float, float]:
    """Median wall ms and resident MiB (VmRSS at the end) of ``python -c code`` in a fresh process."""
    wall, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code + _RSS], cwd=ROOT, capture_output=True, text=True, check=True)
        wall.append((time.perf_counter() - t0) * 1e3)
        rss.append(int(done.stdout.split()[-1]) / 1024)
    return statistics.median(wall), statistics.median(rss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--imports", type=int, default=5)
    args = ap.parse_args()
    cases, what = _cases(args.bars)
    quiet = _time(cases, args.repeat)
    others = max((os.cpu_count() or 2) - 1, 1)
    loops = _busy_loops(others)
    try:
        time.sleep(0.2)  # let them start spinning
        loaded = _time(cases, args.repeat)
    finally:
        for p in loops:
            p.kill()
            p.wait()
    print(f"{what}; best of {args.repeat} runs; numpy {np.__version__}, TA-Lib {talib.__version__}")
    print(f"loaded = {others} busy-loop process(es) beside the benchmark on {os.cpu_count()} cores")
    print(f"{'':<20}{'--------- quiet ---------':>27}{'--------- loaded --------':>28}")
    print(f"{'indicator':<20}{'ours ms':>9}{'TA-Lib ms':>10}{'ratio':>8}{'ours ms':>11}{'TA-Lib ms':>10}{'ratio':>8}")
    worst = 0.0
    for name in cases:
        (q_ours, q_ref), (l_ours, l_ref) = quiet[name], loaded[name]
        rq, rl = q_ours / q_ref, l_ours / l_ref
        worst = max(worst, rq, rl)
        flag = "" if max(rq, rl) <= 3.0 else "  (over the 3x target)"
        print(f"{name:<20}{q_ours:>9.3f}{q_ref:>10.3f}{rq:>7.2f}x{l_ours:>11.3f}{l_ref:>10.3f}{rl:>7.2f}x{flag}")
    print(f"worst ratio {worst:.2f}x (target <= 3x, quiet and loaded)")
    if args.imports:
        print(f"import cost, median of {args.imports} fresh processes (wall ms, resident MiB):")
        for label, code in (
            ("numpy alone", "import numpy"),
            ("strategies.indicators (TA-Lib, pandas kept out)", "import strategies.indicators"),
            ("plain `import talib` (it imports pandas)", "import talib"),
        ):
            ms, mib = _import_cost(code, args.imports)
            print(f"  {label:<50}{ms:>6.0f} ms {mib:>6.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
