"""Black-76 price + greeks (and implied vol) for N options: ours vectorised vs py_vollib.

    .venv/bin/python bench/bench_pricing.py [--options N] [--loop M] [--repeat R]

py_vollib has no vectorised API (py_vollib_vectorized is not a dependency), so its
per-option loop is timed on M options and scaled to N. Prints best-of-R wall times and
the ratio. Input: seeded random forwards, strikes, expiries and vols. Exits 0; it
reports, it does not judge.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from options.iv import implied_vol  # noqa: E402
from options.pricing import black76_greeks, black76_price  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", type=int, default=100_000)
    ap.add_argument("--loop", type=int, default=10_000, help="options py_vollib prices one by one")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        from vollib.black import black
        from vollib.black.greeks import analytical as ga
        from vollib.black.implied_volatility import implied_volatility
    except ImportError:
        print("py_vollib is not installed (pip install py_vollib): nothing to compare with")
        return 0
    rng = np.random.default_rng(0)
    n = args.options
    F = rng.uniform(1_000, 100_000, n)
    K = F * np.exp(rng.uniform(-0.5, 0.5, n))
    t = rng.uniform(1 / 365, 1.5, n)
    vol = rng.uniform(0.15, 1.5, n)
    call = rng.random(n) < 0.5
    flags = np.where(call, "c", "p")

    def ours() -> None:
        black76_price(F, K, t, vol, call)
        black76_greeks(F, K, t, vol, call)

    def theirs(m: int) -> None:
        for i in range(m):
            f, k, tt, v, fl = F[i], K[i], t[i], vol[i], flags[i]
            black(fl, f, k, tt, 0.0, v)
            ga.delta(fl, f, k, tt, 0.0, v)
            ga.gamma(fl, f, k, tt, 0.0, v)
            ga.theta(fl, f, k, tt, 0.0, v)
            ga.vega(fl, f, k, tt, 0.0, v)

    prices = black76_price(F, K, t, vol, call)
    m = min(args.loop, n)
    ours_s = min(timeit.repeat(ours, number=1, repeat=args.repeat))
    t0 = time.perf_counter()
    theirs(m)
    theirs_s = (time.perf_counter() - t0) * n / m
    iv_s = min(timeit.repeat(lambda: implied_vol(prices, F, K, t, call), number=1, repeat=args.repeat))
    t0 = time.perf_counter()
    for i in range(m):
        implied_volatility(prices[i], F[i], K[i], 0.0, t[i], flags[i])
    iv_theirs_s = (time.perf_counter() - t0) * n / m
    print(f"{n:,} options, seeded random inputs; py_vollib timed on {m:,} and scaled to {n:,}")
    print(f"price+greeks  ours (vectorised) {ours_s * 1e3:9.1f} ms   py_vollib (loop) {theirs_s * 1e3:9.1f} ms   "
          f"speed-up {theirs_s / ours_s:6.1f}x")
    print(f"implied vol   ours (vectorised) {iv_s * 1e3:9.1f} ms   py_vollib (loop) {iv_theirs_s * 1e3:9.1f} ms   "
          f"speed-up {iv_theirs_s / iv_s:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
