"""Black-76 price + greeks and implied vol for N options: ours beside py_vollib_vectorized.

    .venv/bin/python bench/bench_pricing.py [--options N] [--loop M] [--repeat R] [--accuracy A]

In one run, on the same seeded random options (forwards 1k..100k, ln(K/F) in +-0.5,
1 day..1.5 years, vol 15..150 %, calls and puts):

- price + greeks (delta, gamma, theta, vega): ours (``black76_price_greeks``) against
  py_vollib_vectorized (numba; ``vectorized_black`` + ``get_all_greeks``, which also
  gives rho) and py_vollib's per-option loop timed on M options and scaled to N;
- implied vol of the N prices: ours against py_vollib_vectorized's vectorised Let's Be
  Rational and py_vollib's loop;
- accuracy on A well-posed options (as tests/options/test_pricing_accuracy.py) against
  mpmath at 40 digits: the largest relative error of each.

Best-of-R wall times; numba compiles (and caches) on a warm-up call that is not timed.
Targets (issue 9): price + greeks >= 5x faster than py_vollib_vectorized, IV at least as
fast, both within 1e-12 relative of mpmath. It prints, it does not judge: exit 0.

py_vollib_vectorized is not in pyproject: installed from PyPI as pip resolves it, it does
not run. Its numba code imports py_lets_be_rational, whose releases 1.0.1 and 1.1.2
re-export cody-special's erf and norm_cdf without numba's jit, so its nopython functions
fail to compile ("Untyped global name 'norm_cdf'", surfacing as "cannot type infer
runaway recursion"); release 1.0.0 is self-contained but declares numba==0.31 and
numpy==1.12, which no resolver can satisfy beside numpy 2. It works with 1.0.0 installed
without its declared dependencies, in a folder of its own (installed into .venv, 1.0.0
would replace the lets_be_rational that the test suite's py_vollib 1.0.12 imports), with
numba beside it:

    .venv/bin/pip install numba
    .venv/bin/pip install --no-deps --target /tmp/vvlib py_vollib_vectorized==0.1.1 py_lets_be_rational==1.0.0
    PYTHONPATH=/tmp/vvlib .venv/bin/python bench/bench_pricing.py

Without it (or when it fails to compile) this bench says so and compares with
py_vollib's loop only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from options.iv import implied_vol  # noqa: E402
from options.pricing import black76_price, black76_price_greeks  # noqa: E402


def _inputs(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    F = rng.uniform(1_000, 100_000, n)
    K = F * np.exp(rng.uniform(-0.5, 0.5, n))
    t = rng.uniform(1 / 365, 1.5, n)
    vol = rng.uniform(0.15, 1.5, n)
    call = rng.random(n) < 0.5
    return F, K, t, vol, call


def _best(fn: Callable[[], object], repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def _mp_reference(F: float, K: float, t: float, vol: float, call: bool) -> float:
    import mpmath as mp

    mp.mp.dps = 40
    Fm, Km, tm, vm = (mp.mpf(x) for x in (F, K, t, vol))
    sd = vm * mp.sqrt(tm)
    d1 = (mp.log(Fm) - mp.log(Km)) / sd + sd / 2
    d2 = d1 - sd
    v = Fm * mp.ncdf(d1) - Km * mp.ncdf(d2) if call else Km * mp.ncdf(-d2) - Fm * mp.ncdf(-d1)
    return float(v)


def _accuracy(n: int, pvv: dict | None) -> None:
    """Largest relative error against mpmath on ``n`` well-posed options."""
    rng = np.random.default_rng(1)
    rows = []
    while len(rows) < n:
        F = float(rng.uniform(100, 200_000))
        K = F * math.exp(float(rng.uniform(-1, 1)))
        t, vol, call = float(rng.uniform(1 / 365, 2)), float(rng.uniform(0.05, 2.5)), bool(rng.random() < 0.5)
        if _mp_reference(F, K, t, vol, K >= F) < 1e-6 * F:
            continue  # the out-of-the-money side below 1e-6 F: not well-posed
        ref = _mp_reference(F, K, t, vol, call)
        intrinsic = max(F - K, 0.0) if call else max(K - F, 0.0)
        rows.append((F, K, t, vol, call, ref, ref - intrinsic >= 1e-3 * ref))
    F, K, t, vol, call, ref, iv_ok = (np.array(c) for c in zip(*rows, strict=True))
    ours_p = black76_price(F, K, t, vol, call)
    ours_iv = implied_vol(ref, F, K, t, call)
    line = (f"accuracy vs mpmath, {n} well-posed options: price max rel err ours {_rel(ours_p, ref):.1e}; "
            f"IV ({iv_ok.sum()} with time value >= 1e-3 of price) ours {_rel(ours_iv[iv_ok], vol[iv_ok]):.1e}")
    if pvv is not None:
        flag = np.where(call, "c", "p")
        their_p = np.asarray(pvv["price"](flag, F, K, t, 0.0, vol, return_as="numpy"))
        their_iv = np.asarray(pvv["iv"](ref, F, K, 0.0, t, flag, return_as="numpy"))
        line += (f"\n{'':26}py_vollib_vectorized: price {_rel(their_p, ref):.1e}; "
                 f"IV {_rel(their_iv[iv_ok], vol[iv_ok]):.1e}")
    print(line)


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.nanmax(np.abs(x - ref) / np.abs(ref))) if np.isfinite(x).all() else float("nan")


def _load_pvv() -> dict | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # py_vollib's own deprecation notice
            from py_vollib_vectorized import get_all_greeks, vectorized_black
            from py_vollib_vectorized.implied_volatility import vectorized_implied_volatility_black
    except ImportError as e:
        print(f"py_vollib_vectorized not importable ({e}); pip install '.[test]'")
        return None
    return {"price": vectorized_black, "greeks": get_all_greeks, "iv": vectorized_implied_volatility_black}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", type=int, default=100_000)
    ap.add_argument("--loop", type=int, default=2_000, help="options py_vollib prices one by one")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--accuracy", type=int, default=300, help="options checked against mpmath (0: skip)")
    args = ap.parse_args()
    n = args.options
    F, K, t, vol, call = _inputs(n)
    flags = np.where(call, "c", "p")
    prices = black76_price(F, K, t, vol, call)

    def ours() -> None:
        black76_price_greeks(F, K, t, vol, call)

    def ours_iv() -> None:
        implied_vol(prices, F, K, t, call)

    ours_s, ours_iv_s = _best(ours, args.repeat), _best(ours_iv, args.repeat)
    print(f"{n:,} options, seeded random inputs; best of {args.repeat}")
    print(f"price+greeks  ours (numpy, vectorised)       {ours_s * 1e3:9.1f} ms")
    print(f"implied vol   ours (numpy, vectorised)       {ours_iv_s * 1e3:9.1f} ms")

    pvv = _load_pvv()
    if pvv is not None:
        def theirs() -> None:
            pvv["price"](flags, F, K, t, 0.0, vol, return_as="numpy")
            pvv["greeks"](flags, F, K, t, 0.0, vol, model="black", return_as="dict")

        def theirs_iv() -> None:
            pvv["iv"](prices, F, K, 0.0, t, flags, return_as="numpy")

        t0 = time.perf_counter()
        try:
            theirs()
            theirs_iv()
        except Exception as e:  # numba's TypingError: see the docstring
            print(f"py_vollib_vectorized does not run here ({type(e).__name__}: {str(e).splitlines()[0]}); "
                  "see this file's docstring for the install that works")
            pvv = None
        warm_s = time.perf_counter() - t0
    if pvv is not None:
        pvv_s, pvv_iv_s = _best(theirs, args.repeat), _best(theirs_iv, args.repeat)
        print(f"price+greeks  py_vollib_vectorized (numba)   {pvv_s * 1e3:9.1f} ms   ours faster by {pvv_s / ours_s:5.1f}x"
              f"   (target >= 5x)   [first call, compiling or loading numba's cache: {warm_s:.1f} s]")
        print(f"implied vol   py_vollib_vectorized (LBR)     {pvv_iv_s * 1e3:9.1f} ms   ours faster by {pvv_iv_s / ours_iv_s:5.1f}x"
              f"   (target >= 1x)")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from vollib.black import black
            from vollib.black.greeks import analytical as ga
            from vollib.black.implied_volatility import implied_volatility
    except ImportError:
        print("py_vollib not installed: its loop is not timed")
    else:
        m = min(args.loop, n)
        t0 = time.perf_counter()
        for i in range(m):
            f, k, tt, v, fl = F[i], K[i], t[i], vol[i], flags[i]
            black(fl, f, k, tt, 0.0, v)
            ga.delta(fl, f, k, tt, 0.0, v)
            ga.gamma(fl, f, k, tt, 0.0, v)
            ga.theta(fl, f, k, tt, 0.0, v)
            ga.vega(fl, f, k, tt, 0.0, v)
        loop_s = (time.perf_counter() - t0) * n / m
        t0 = time.perf_counter()
        for i in range(m):
            implied_volatility(prices[i], F[i], K[i], 0.0, t[i], flags[i])
        loop_iv_s = (time.perf_counter() - t0) * n / m
        print(f"price+greeks  py_vollib (loop of {m:,}, x{n / m:g}) {loop_s * 1e3:9.0f} ms   ours faster by {loop_s / ours_s:5.0f}x")
        print(f"implied vol   py_vollib (loop of {m:,}, x{n / m:g}) {loop_iv_s * 1e3:9.0f} ms   ours faster by {loop_iv_s / ours_iv_s:5.0f}x")
    if args.accuracy:
        _accuracy(args.accuracy, pvv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
