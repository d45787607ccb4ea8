"""The walk-forward grid's speed-up from 1 to 2 local processes (issue 10's benchmark), on the
real runner (backtest.walk_runner.ConfigRunner) over the synthetic market.

    .venv/bin/python bench/bench_walkforward.py [--days 720] [--grid 4] [--train-days 180] [--test-days 30]

Runs the same walk-forward serially (in this process), on a pool of 1 process and on a pool
of 2 (backtest.walkforward.job_mapper, warmed before the first phase). For each pool it
prints the start-up (spawning the workers, their imports, opening the source) apart from
the grid itself, then the speed-up of 2 processes over 1, on the grid and on the whole, and
whether all three chose the same parameters. It reports, it does not judge: the machine is
shared, so run it twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY_MS = 86_400_000
END_MS = 1_773_100_800_000  # 2026-03-10T00:00Z (the synthetic market starts 2024-01-01)


def main() -> int:
    from backtest import walkforward as wf
    from backtest.walk_runner import ConfigRunner
    from scheduler.config import parse_config
    from scheduler.flags import config_from_flags, market_from_flags

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=720, help="the whole range, up to 2026-03-10 (at most ~770)")
    ap.add_argument("--grid", type=int, default=4, help="values per axis (fast x slow)")
    ap.add_argument("--train-days", type=int, default=180)
    ap.add_argument("--test-days", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(config_from_flags("sma_crossover", ["BTC/USDT"], "1h", 1000.0,
                                                market_from_flags("synthetic", None, 42)), base_dir=Path(tmp))
        run = ConfigRunner(config.model_dump(mode="json"), config.strategies[0].id, tmp)
        grid = wf.param_grid({"fast": [5 + 5 * i for i in range(args.grid)],
                              "slow": [40 + 20 * i for i in range(args.grid)]})
        wins = wf.windows(END_MS - args.days * DAY_MS, END_MS, args.train_days * DAY_MS, args.test_days * DAY_MS)
        print(f"walk-forward: sma_crossover BTC/USDT 1h, synthetic, {args.days} days, {len(wins)} windows "
              f"({args.train_days}/{args.test_days} days) x {len(grid)} parameter sets "
              f"({len(wins) * (len(grid) + 1)} runs); {os.cpu_count()} cores")
        t0 = time.perf_counter()
        results = {"serial": wf.walk_forward(run, grid, wins)}
        serial_s = time.perf_counter() - t0
        print(f"  serial (this process)   {serial_s:7.2f} s")
        startup, work, whole = {}, {}, {}
        for n in (1, 2):
            t0 = time.perf_counter()
            with wf.job_mapper(n, warm=run, pool_of_one=True) as map_jobs:
                t1 = time.perf_counter()
                results[n] = wf.walk_forward(run, grid, wins, map_jobs=map_jobs)
                t2 = time.perf_counter()
            t3 = time.perf_counter()
            startup[n], work[n], whole[n] = t1 - t0, t2 - t1, t3 - t0
            print(f"  {n} process{'es' if n > 1 else '  '}             {whole[n]:7.2f} s  (pool start-up "
                  f"{startup[n]:.2f} s, grid {work[n]:.2f} s, shutdown {t3 - t2:.2f} s)")
    same = results["serial"] == results[1] == results[2]
    print(f"  speed-up 2 processes / 1: grid {work[1] / work[2]:.2f}x, whole {whole[1] / whole[2]:.2f}x; "
          f"2 processes / serial: grid {serial_s / work[2]:.2f}x, whole {serial_s / whole[2]:.2f}x  "
          f"(same result: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
