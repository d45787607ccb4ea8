"""Bars per second of a single-strategy backtest on the real BTC/USDT 1h candles (about
76,000), beside backtesting.py on the same data and strategy in the same run.

    .venv/bin/python bench/bench_backtest.py [--runs N] [--no-reference] [--daemon-cycles N]

Ours: sma_crossover 20/50 with the full engine (fees, slippage, a 5 % protective stop, the
default risk rules: caps, breakers, daily loss, kill switch), timed from the candles in
memory to the BacktestResult: the decisions (backtest/signals.py) and the replay through
``engine.step`` on the ticks where something can happen (backtest/skip.py). Then the plain
replay that calls ``step`` on every bar, whose fills must be identical (it says so, and the
ratio). backtesting.py: its canonical SmaCross (``backtesting.test.SMA``, ``lib.crossover``,
``buy()`` / ``position.close()``) with commission and spread on the same DataFrame, timed
around ``Backtest.run``. Best of N runs each (default 3), on this machine as it is (2 shared
cores: the ratio, measured in the same run, is the figure to read). Last, the replayed
daemon (tests/integration/test_parity.py's way: ManualClock stepping an hour a cycle, the
real fetch step and checker processes, state saved every cycle) on the same strategy:
cycles per second, beside the backtester's bars per second. Skips with a reason
without ../shared/data. Exits 0; it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("GO_TRADER_SHARED_DATA", ROOT.parent / "shared" / "data"))
END_MS = 1_778_954_400_000 + 3_600_000  # where the BTC 1h file ends


def _config():
    from scheduler.config import parse_config

    doc = {"market": {"source": "files", "root": str(DATA / "ohlcv")},
           "strategies": [{"id": "sma", "type": "spot", "script": "check_strategy.py",
                           "args": ["sma_crossover", "BTC/USDT", "1h"], "capital": 10_000, "stop_loss_pct": 5.0,
                           "interval_seconds": 3600}]}
    return parse_config(doc, base_dir=ROOT)


def ours(runs: int, reference: bool) -> tuple[int, float]:
    from backtest import runner
    from backtest.signals import decisions
    from market.files_source import FilesSource

    config = _config()
    s = config.strategies[0]
    source = FilesSource(DATA / "ohlcv")
    start = int(source.fetch_candles("BTC/USDT", "1h", now_ms=END_MS, limit=100_000).ts_ms[0])
    market = runner.load_spot(source, s, start, END_MS, 0)
    bars = len(market.candles)
    best, result = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        decided = decisions("sma_crossover", market.candles, s.params, limit=config.runner.candles_limit)
        result = runner.replay_spot(config, s, market, start, END_MS, decided=decided)
        best = min(best, time.perf_counter() - t)
    assert result is not None
    print(f"go-trader backtest  {bars:7d} bars  {best:7.3f} s  {bars / best:11,.0f} bars/s  "
          f"{len(result.fills)} fills ({sum(f['reason'] == 'stop' for f in result.fills)} at the stop)")
    if reference:
        t = time.perf_counter()
        plain = runner.replay_spot(config, s, market, start, END_MS, reference=True, decided=decided)
        took = time.perf_counter() - t
        same = plain.fills == result.fills and plain.equity == result.equity
        print(f"  plain step-every-bar replay  {took:7.3f} s  {bars / took:11,.0f} bars/s  "
              f"identical fills and equity: {same}  (skipping is {took / best:.1f}x faster)")
    return bars, best


def theirs(runs: int) -> tuple[int, float]:
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    from market.files_source import FilesSource

    c = FilesSource(DATA / "ohlcv").fetch_candles("BTC/USDT", "1h", now_ms=END_MS, limit=100_000)
    frame = pd.DataFrame({"Open": c.open, "High": c.high, "Low": c.low, "Close": c.close, "Volume": c.volume},
                         index=pd.to_datetime(c.ts_ms, unit="ms"))

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, 20)
            self.slow = self.I(SMA, self.data.Close, 50)

        def next(self) -> None:
            if crossover(self.fast, self.slow) and not self.position:
                self.buy()
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    best, stats = float("inf"), None
    for _ in range(runs):
        bt = Backtest(frame, SmaCross, cash=10_000_000, commission=0.001, spread=0.0005)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            stats = bt.run()
            best = min(best, time.perf_counter() - t)
    print(f"backtesting.py      {len(c):7d} bars  {best:7.3f} s  {len(c) / best:11,.0f} bars/s  "
          f"{stats['# Trades']} trades")
    return len(c), best


def daemon_cycles(cycles: int) -> None:
    import json
    import tempfile
    from datetime import UTC, datetime

    from scheduler.clock import ManualClock
    from scheduler.config import load_config
    from scheduler.daemon import Daemon

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        doc = _config().model_dump(mode="json", exclude_none=True)
        doc.update(state_file="state.json", log_dir="logs", status={"host": "127.0.0.1", "port": 0})
        path = folder / "config.json"
        path.write_text(json.dumps(doc))
        config = load_config(path)
        clock = ManualClock(datetime.fromtimestamp((END_MS - (cycles + 1) * 3_600_000) / 1000, tz=UTC))
        daemon = Daemon(config, path, clock=clock, state_path=folder / "state.json", log_dir=folder / "logs",
                        stdout_logs=False)
        daemon.open()
        try:
            t = time.perf_counter()
            for _ in range(cycles):
                daemon.run_cycle()
                clock.advance(3600)
            took = time.perf_counter() - t
        finally:
            daemon.close()
    print(f"replayed daemon     {cycles:7d} cycles {took:7.3f} s  {cycles / took:11,.2f} cycles/s  "
          "(fetch step + checker process + engine + save per cycle)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-reference", action="store_true", help="skip the plain step-every-bar replay")
    p.add_argument("--daemon-cycles", type=int, default=20, help="cycles of the replayed daemon (0: skip)")
    args = p.parse_args()
    if not (DATA / "ohlcv" / "binance").is_dir():
        print(f"skipped: real market data not found at {DATA} (set GO_TRADER_SHARED_DATA)")
        return 0
    try:
        import backtesting  # noqa: F401
    except ImportError:
        print("backtesting.py is not installed (pip install -e '.[test]'); only our figure follows")
        ours(args.runs, not args.no_reference)
        return 0
    bars, mine = ours(args.runs, not args.no_reference)
    their_bars, their_s = theirs(args.runs)
    print(f"ratio: go-trader is {(bars / mine) / (their_bars / their_s):.2f}x backtesting.py's bars per second "
          f"(target 10x)")
    if args.daemon_cycles > 0:
        daemon_cycles(args.daemon_cycles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
