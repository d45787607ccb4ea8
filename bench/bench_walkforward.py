"""The walk-forward grid's speed-up from 1 to 2 local processes (issue 10's benchmark), on the
real runner (backtest.walk_runner.ConfigRunner) over the synthetic market.

    .venv/bin/python bench/bench_walkforward.py [--days 240] [--grid 3]

Prints the wall time of the same walk-forward serially, on 1 and on 2 worker processes, the
speed-up of 2 over 1, and that all three chose the same parameters. It reports, it does not judge.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY_MS = 86_400_000
END_MS = 1_773_100_800_000  # 2026-03-10T00:00Z


def main() -> int:
    from backtest import walkforward as wf
    from backtest.walk_runner import ConfigRunner
    from scheduler.config import parse_config
    from scheduler.flags import config_from_flags, market_from_flags

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=240)
    ap.add_argument("--grid", type=int, default=3, help="values per axis (fast x slow)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(config_from_flags("sma_crossover", ["BTC/USDT"], "1h", 1000.0,
                                                market_from_flags("synthetic", None, 42)), base_dir=Path(tmp))
        run = ConfigRunner(config.model_dump(mode="json"), config.strategies[0].id, tmp)
        grid = wf.param_grid({"fast": [5 + 5 * i for i in range(args.grid)],
                              "slow": [40 + 20 * i for i in range(args.grid)]})
        wins = wf.windows(END_MS - args.days * DAY_MS, END_MS, 90 * DAY_MS, 30 * DAY_MS)
        times, results = {}, {}
        for label, workers in (("serial", None), ("1 process", 1), ("2 processes", 2)):
            t0 = time.perf_counter()
            results[label] = wf.walk_forward(run, grid, wins, workers=workers or 1)
            times[label] = time.perf_counter() - t0
    print(f"walk-forward: sma_crossover BTC/USDT 1h, synthetic, {len(wins)} windows x {len(grid)} parameter sets "
          f"({len(wins) * len(grid) * 2} runs)")
    for label, t in times.items():
        print(f"  {label:12} {t:7.2f} s")
    same = results["serial"] == results["1 process"] == results["2 processes"]
    print(f"  speed-up 2 processes / 1: {times['1 process'] / times['2 processes']:.2f}x  (2 cores; same choices: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
