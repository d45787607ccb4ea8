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
around ``Backtest.run``. N pairs of runs (default 7), ours then theirs, interleaved so that
both see the same machine (2 shared, noisy cores); the best of each gives the ratio, and the
spread of the pairs' own ratios says how much to trust it. Last, the replayed
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def ours() -> tuple[int, Callable[[], Any], Callable[[Any], None]]:
    """(bars, one timed run, what to print about a run and the plain replay)."""
    from backtest import runner
    from backtest.signals import decisions
    from market.files_source import FilesSource

    config = _config()
    s = config.strategies[0]
    source = FilesSource(DATA / "ohlcv")
    start = int(source.fetch_candles("BTC/USDT", "1h", now_ms=END_MS, limit=100_000).ts_ms[0])
    market = runner.load_spot(source, s, start, END_MS, 0)

    def run() -> Any:
        decided = decisions("sma_crossover", market.candles, s.params, limit=config.runner.candles_limit)
        return runner.replay_spot(config, s, market, start, END_MS, decided=decided)

    def plain(result: Any, best: float) -> None:
        decided = decisions("sma_crossover", market.candles, s.params, limit=config.runner.candles_limit)
        t = time.perf_counter()
        ref = runner.replay_spot(config, s, market, start, END_MS, reference=True, decided=decided)
        took = time.perf_counter() - t
        same = ref.fills == result.fills and ref.equity == result.equity
        print(f"  plain step-every-bar replay  {took:7.3f} s  {len(market.candles) / took:11,.0f} bars/s  "
              f"identical fills and equity: {same}  (skipping is {took / best:.1f}x faster)")

    return len(market.candles), run, plain


def theirs() -> tuple[int, Callable[[], Any]]:
    """(bars, one timed run) of backtesting.py's canonical SmaCross on the same candles."""
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

    def run() -> Any:
        bt = Backtest(frame, SmaCross, cash=10_000_000, commission=0.001, spread=0.0005)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bt.run()

    return len(c), run


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = run()
    return time.perf_counter() - t, out


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
    p.add_argument("--runs", type=int, default=7, help="interleaved pairs of runs (best of each counts)")
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
        bars, mine, plain = ours()
        best, result = min((_timed(mine) for _ in range(args.runs)), key=lambda x: x[0])
        print(f"go-trader backtest  {bars:7d} bars  {best:7.3f} s  {bars / best:11,.0f} bars/s")
        if not args.no_reference:
            plain(result, best)
        return 0
    bars, mine, plain = ours()
    their_bars, their_run = theirs()
    # interleaved, ours then theirs, so that both see the same machine (a shared, noisy one)
    pairs = [(_timed(mine), _timed(their_run)) for _ in range(args.runs)]
    best, result = min((p[0] for p in pairs), key=lambda x: x[0])
    their_best, stats = min((p[1] for p in pairs), key=lambda x: x[0])
    print(f"go-trader backtest  {bars:7d} bars  {best:7.3f} s  {bars / best:11,.0f} bars/s  "
          f"{len(result.fills)} fills ({sum(f['reason'] == 'stop' for f in result.fills)} at the stop)")
    print(f"backtesting.py      {their_bars:7d} bars  {their_best:7.3f} s  {their_bars / their_best:11,.0f} bars/s  "
          f"{stats['# Trades']} trades")
    each = sorted((bars / a[0]) / (their_bars / b[0]) for a, b in pairs)
    print(f"ratio: go-trader is {(bars / best) / (their_bars / their_best):.2f}x backtesting.py's bars per second, "
          f"best against best (target 10x); run by run {each[0]:.2f}x to {each[-1]:.2f}x, "
          f"median {each[len(each) // 2]:.2f}x over {len(each)} interleaved pairs")
    if not args.no_reference:
        plain(result, best)
    if args.daemon_cycles > 0:
        daemon_cycles(args.daemon_cycles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
