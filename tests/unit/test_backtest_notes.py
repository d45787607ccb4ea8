"""A run says what it could not do: checks that failed and orders the engine refused are counted
in the result's notes (spot and options), a run where every check failed is refused instead of
reported flat, and a range starting before the data starts where the data does, with a note."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from backtest import runner
from backtest.signals import Decisions, decisions
from market.synthetic import ORIGIN_MS, SyntheticSource
from market.synthetic_options import SyntheticOptions
from scheduler.cli import main
from scheduler.config import parse_config
from scheduler.engine.errors import DataError

HOUR = 3_600_000
DAY = 24 * HOUR
START = ORIGIN_MS + 40 * DAY
END = START + 60 * DAY


def _spot(strategy: dict, market: dict | None = None):
    doc = {"market": market or {"source": "synthetic", "seed": 7},
           "strategies": [{"id": "s1", "type": "spot", "script": "check_strategy.py", "capital": 1000, **strategy}]}
    return parse_config(doc, base_dir=Path("."))


def test_entries_refused_on_every_signal_are_counted_by_code_in_both_paths():
    """Risk-based sizing with no stop refuses every entry (NO_STOP): the fast replay and the
    plain one that steps every tick say so alike, with the count and the engine's detail."""
    config = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"], "sizing": {"mode": "risk_based"}})
    s = config.strategies[0]
    market = runner.load_spot(SyntheticSource(7), s, START, END, config.runner.candles_limit)
    fast = runner.replay_spot(config, s, market, START, END)
    plain = runner.replay_spot(config, s, market, START, END, reference=True)
    assert not fast.fills
    [note] = fast.notes
    buys = note.split(" order(s)")[0]
    assert int(buys.replace(",", "")) > 3, note
    assert "refused by the engine with NO_STOP" in note and "needs a protective stop" in note, note
    assert plain.notes == fast.notes


def _failing(decided: Decisions, bars: list[int]) -> Decisions:
    signal = decided.signal.copy()
    signal[bars] = 0
    return Decisions(signal, decided.stop, decided.path, {i: f"bar {i} failed" for i in bars})


def test_failed_checks_are_counted_with_the_first_reason_and_all_failing_is_refused():
    config = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"]})
    s = config.strategies[0]
    market = runner.load_spot(SyntheticSource(7), s, START, END, config.runner.candles_limit)
    decided = decisions(s.strategy_name, market.candles, s.params, limit=config.runner.candles_limit)
    close_ms = market.candles.ts_ms + HOUR
    first = int(np.searchsorted(close_ms, START + HOUR))  # the bar decided at the first tick
    some = _failing(decided, [first + 5, first + 9, first + 200])
    result = runner.replay_spot(config, s, market, START, END, decided=some)
    assert result.notes == (f"3 of {60 * 24:,} checks failed, so those ticks made no decision (first at "
                            f"{runner.notes.when(START + 6 * HOUR)}: bar {first + 5} failed)",)
    every = _failing(decided, list(range(len(market.candles))))
    with pytest.raises(DataError, match=r"s1: every one of the 1,440 checks from .* failed, so nothing could be "
                                        r"decided; the first failure: bar \d+ failed"):
        runner.replay_spot(config, s, market, START, END, decided=every)


def test_stale_candles_count_as_failed_checks():
    """A gap of 5 hours in the candles: the daemon's check fails on the ticks more than 2 bars
    behind, with check_fresh's own message."""
    config = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"]})
    s = config.strategies[0]
    market = runner.load_spot(SyntheticSource(7), s, START, END, config.runner.candles_limit)
    gap_at = int(np.searchsorted(market.candles.ts_ms, START + 10 * DAY))
    keep = np.ones(len(market.candles), dtype=bool)
    keep[gap_at:gap_at + 5] = False
    c = market.candles
    from market.base import Candles

    rows = np.column_stack([c.ts_ms, c.open, c.high, c.low, c.close, c.volume])[keep]
    gapped = runner.SpotMarket(Candles.from_rows(c.symbol, c.timeframe, rows, c.source), None, market.rules,
                               market.source)
    [note] = runner.replay_spot(config, s, gapped, START, END).notes
    assert note.startswith(f"3 of {60 * 24:,} checks failed") and "stale data from synthetic" in note, note


def test_the_wheel_short_of_margin_says_so():
    doc = {"market": {"source": "synthetic", "seed": 42},
           "strategies": [{"id": "w", "type": "options", "script": "check_options.py", "args": ["wheel", "BTC"],
                           "capital": 1000}]}
    config = parse_config(doc, base_dir=Path("."))
    start = ORIGIN_MS + 400 * DAY
    net, _ = runner.run(config, config.strategies[0], SyntheticSource(42), start, start + 30 * DAY,
                        options_source=SyntheticOptions(42), with_gross=False)
    assert not net.fills
    assert any("refused by the engine with INSUFFICIENT_MARGIN" in n and "initial margin" in n for n in net.notes), \
        net.notes


@pytest.mark.shared_data
def test_an_options_run_where_every_check_fails_is_refused(shared_data, capsys, tmp_path):
    """momentum_options reads 4h candles, which the real files do not hold: every check fails,
    so there is no result to report (exit 1, the missing file named), not a flat 0 %."""
    out = tmp_path / "mo.json"
    code = main(["backtest", "--strategy", "momentum_options", "--symbols", "BTC", "--source", "files",
                 "--data-root", str(shared_data / "ohlcv"), "--start", "2026-01-01", "--end", "2026-03-01",
                 "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "momentum_options-btc: every one of the 58 checks from 2026-01-02T10:00:00Z" in err, err
    assert "nothing could be decided; the first failure: files:binance: no candle file for BTC/USDT 4h" in err, err
    assert not out.exists()


@pytest.mark.shared_data
@pytest.mark.parametrize(("strategy", "symbols", "timeframe", "starts_ms"), [
    ("sma_crossover", "SOL/USDT", "1d", 1_597_104_000_000),  # SOL's daily candles start 2020-08-11
    ("pairs_spread", "SOL/USDT,BTC/USDT", "1h", 1_597_125_600_000),  # the later of the two: SOL, 06:00
])
def test_a_range_starting_before_the_data_starts_where_the_data_does(strategy, symbols, timeframe, starts_ms,
                                                                     shared_data, tmp_path, capsys):
    out = tmp_path / "bt.json"
    assert main(["backtest", "--strategy", strategy, "--symbols", symbols, "--timeframe", timeframe, "--source",
                 "files", "--data-root", str(shared_data / "ohlcv"), "--start", "2019-01-01", "--end", "2021-01-01",
                 "--json", str(out)]) == 0, capsys.readouterr().err
    net = json.loads(out.read_text())["reports"][0]["result"]
    assert net["start_ms"] == starts_ms and net["equity"][0][0] == starts_ms
    assert net["benchmark"][0][0] == starts_ms
    assert any(n.startswith("the SOL/USDT ") and "data starts at " in n
               and "after the requested start 2019-01-01T00:00:00Z: the run starts there" in n for n in net["notes"])
    if strategy == "sma_crossover":  # buy and hold over the 0.39 years there are, not over two flat-padded ones
        bench = [v for _, v in net["benchmark"]]
        years = (net["benchmark"][-1][0] - net["benchmark"][0][0]) / (365.25 * DAY)
        cagr = (bench[-1] / bench[0]) ** (1 / years) - 1
        assert years < 0.4 and cagr < -0.8


@pytest.mark.shared_data
def test_an_options_range_starting_before_the_chains_starts_at_the_first_chain(shared_data):
    from market.files_options import FilesOptions
    from market.files_source import FilesSource

    doc = {"market": {"source": "files", "root": str(shared_data / "ohlcv")},
           "strategies": [{"id": "pp", "type": "options", "script": "check_options.py",
                           "args": ["protective_puts", "BTC"], "capital": 100_000}]}
    config = parse_config(doc, base_dir=Path("."))
    first_chain = 1_767_115_875_944  # 2025-12-30T17:31:15.944Z
    net, _ = runner.run(config, config.strategies[0], FilesSource(shared_data / "ohlcv"), first_chain - 200 * DAY,
                        first_chain + 20 * DAY, options_source=FilesOptions(shared_data), with_gross=False)
    assert net.equity[0][0] == 1_767_175_200_000  # 2025-12-31T10:00Z, the first step after the first chain
    assert net.notes[0].startswith("the BTC option chains start at 2025-12-30T17:31:15.944000Z, after the requested "
                                   "start"), net.notes


def test_a_flat_curve_has_a_max_drawdown_of_plus_zero():
    from backtest import metrics

    m = metrics.curve_metrics([(0, 1000.0), (HOUR, 1000.0), (2 * HOUR, 1000.0)], HOUR)
    assert m.max_drawdown_pct == 0.0 and math.copysign(1.0, m.max_drawdown_pct) == 1.0
    assert f"{m.max_drawdown_pct:.2f}" == "0.00"


def test_a_strategy_of_a_config_of_several_is_noted_as_replayed_alone():
    """Each strategy of a config is replayed on its own, so its account is its sleeve; the
    note says so and what the daemon's account would be (a single-strategy run has none)."""
    strategies = [{"id": "a", "type": "spot", "script": "check_strategy.py", "capital": 1000,
                   "args": ["sma_crossover", "BTC/USDT", "1h"]},
                  {"id": "b", "type": "spot", "script": "check_strategy.py", "capital": 4000,
                   "args": ["rsi", "ETH/USDT", "1h"]}]
    config = parse_config({"market": {"source": "synthetic", "seed": 7}, "strategies": strategies},
                          base_dir=Path("."))
    s = config.strategies[0]
    market = runner.load_spot(SyntheticSource(7), s, START, END, config.runner.candles_limit)
    [note] = [n for n in runner.replay_spot(config, s, market, START, END).notes if "replayed alone" in n]
    assert note.startswith("a is replayed alone: its 1,000.00 USD sleeve is the whole account here")
    assert "the sum of its 2 strategies (5,000.00 USD)" in note
    single = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"]})
    assert not [n for n in runner.replay_spot(single, single.strategies[0], market, START, END).notes
                if "replayed alone" in n]


@pytest.mark.shared_data
def test_the_markets_max_stale_candles_is_the_limit_for_the_checker_and_the_backtester(shared_data, tmp_path):
    """BTC/USDT 1h has no candles from 12:00 to 16:00 on 2020-02-19. With the default limit (2
    candles) the checks at 15:00, 16:00 and 17:00 fail as stale; with ``max_stale_candles: 5``
    none does, in the checker run by hand as in the backtester (not the checker's own 2)."""
    import subprocess
    import sys

    from market.sources import open_source

    start, at_16 = 1_582_070_400_000, 1_582_070_400_000 + 16 * HOUR
    checker = Path(__file__).resolve().parents[2] / "checkers" / "check_strategy.py"
    for limit, fails in ((None, 3), (5, 0)):
        market = {"source": "files", "root": str(shared_data / "ohlcv"),
                  **({"max_stale_candles": limit} if limit is not None else {})}
        config = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"]}, market)
        s = config.strategies[0]
        got = runner.replay_spot(config, s, runner.load_spot(open_source(market), s, start, start + DAY, 500),
                                 start, start + DAY)
        failed = [n for n in got.notes if "checks failed" in n]
        assert (failed[0].startswith(f"{fails} of 24 checks failed") if fails else not failed), (limit, got.notes)
        path = tmp_path / f"config-{limit}.json"
        path.write_text(json.dumps({"market": market, "strategies": []}))
        run = subprocess.run([sys.executable, str(checker), "sma_crossover", "BTC/USDT", "1h", "--config", str(path),
                              "--now-ms", str(at_16)], capture_output=True, text=True, timeout=60)
        doc = json.loads(run.stdout)
        assert (run.returncode != 0 and "stale" in doc["error"]) if fails else (run.returncode == 0 and
                                                                               "error" not in doc), (limit, doc)


def test_a_strategy_that_never_leaves_its_warm_up_says_so():
    """sma_crossover 400/500 needs 501 closed candles; the checker is given 500 (runner.
    candles_limit): it holds on every bar, and the result says why rather than looking flat."""
    config = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"], "params": {"fast": 400, "slow": 500}})
    s = config.strategies[0]
    market = runner.load_spot(SyntheticSource(7), s, START, START + 5 * DAY, config.runner.candles_limit)
    got = runner.replay_spot(config, s, market, START, START + 5 * DAY)
    assert not got.fills
    assert any("needs 501 closed candles for a signal" in n and "runner.candles_limit = 500" in n for n in got.notes)
    fine = _spot({"args": ["sma_crossover", "BTC/USDT", "1h"], "params": {"fast": 400, "slow": 499}})
    s = fine.strategies[0]
    assert not any("warm-up" in n for n in runner.replay_spot(fine, s, market, START, START + 5 * DAY).notes)
