"""A whole config replayed together (backtest/joint.py): one account, one clock. A config of one
strategy replayed together is that strategy's own replay; the account-wide rules judge the sum
of the sleeves; the marks of two strategies on one symbol keep the newer; the CLI replays a
config of several together in run mode and each alone in compare mode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backtest import runner
from backtest.joint import replay_together
from backtest.runner import StepInputs
from market.synthetic import ORIGIN_MS, SyntheticSource
from market.synthetic_options import SyntheticOptions
from scheduler.cli import main
from scheduler.config import parse_config
from scheduler.engine.errors import ConfigError
from scheduler.engine.step import Mark

HOUR = 3_600_000
DAY = 24 * HOUR
START = ORIGIN_MS + 40 * DAY
END = START + 45 * DAY


def _config(strategies: list[dict], risk: dict | None = None):
    doc = {"market": {"source": "synthetic", "seed": 7}, "risk": risk or {},
           "strategies": [{"type": "spot", "script": "check_strategy.py", "capital": 1000, **s} for s in strategies]}
    return parse_config(doc, base_dir=Path("."))


SMA = {"id": "sma", "args": ["sma_crossover", "BTC/USDT", "1h"], "params": {"fast": 5, "slow": 20}, "stop_loss_pct": 2}
RSI = {"id": "rsi", "args": ["rsi", "ETH/USDT", "4h"], "params": {"period": 5, "oversold": 40, "overbought": 60},
       "interval_seconds": 14_400}


def test_one_strategy_replayed_together_is_its_own_replay():
    config = _config([SMA])
    s = config.strategies[0]
    source = SyntheticSource(7)
    market = runner.load_spot(source, s, START, END, config.runner.candles_limit)
    alone = runner.replay_spot(config, s, market, START, END, reference=True)
    together, account = replay_together(config, source, None, START, END)
    assert together.fills and together.fills == alone.fills
    assert list(together.equity.values) == list(alone.equity.values)
    assert together.notes == alone.notes


def test_each_sleeve_of_a_joint_replay_is_judged_on_the_account_and_marked_on_its_own_clock():
    """A position cap of 10 % binds at 100 USD on a 1,000 USD sleeve alone and at 200 on the
    2,000 USD account: the joint fills are bigger; the 4h strategy's equity is taken every 4 h."""
    config = _config([SMA, RSI], risk={"max_position_pct": 10})
    source = SyntheticSource(7)
    sma, rsi, account = replay_together(config, source, None, START, END)
    alone = runner.run(config, config.strategies[0], source, START, END, with_gross=False)[0]
    assert sma.fills and rsi.fills
    assert max(f["notional_usd"] for f in alone.fills if f["side"] == "buy") <= 100 + 1e-6
    assert max(f["notional_usd"] for f in sma.fills if f["side"] == "buy") > 150
    assert {f["strategy_id"] for f in sma.fills} == {"sma"} and {f["strategy_id"] for f in rsi.fills} == {"rsi"}
    steps = {int(b) - int(a) for a, b in zip(rsi.equity.times[1:], rsi.equity.times[2:], strict=False)}
    assert steps == {4 * HOUR}
    assert any("replayed together" in n for n in sma.notes) and sma.notes == rsi.notes
    # the account: the sum of the sleeves, every hour; all the fills and round trips
    assert account.strategy_id == "account" and account.initial_capital_usd == 2000 and account.bar_ms == HOUR
    assert account.timeframe == "1h" and account.costs == sma.costs == rsi.costs  # the finest; costs shared
    assert account.final_equity_usd == pytest.approx(sma.final_equity_usd + rsi.final_equity_usd, rel=1e-12)
    assert len(account.fills) == len(sma.fills) + len(rsi.fills) and len(account.trades) == len(sma.trades) + len(
        rsi.trades)
    assert account.fees_usd == pytest.approx(sma.fees_usd + rsi.fees_usd)
    values = dict(zip([int(t) for t in sma.equity.times], sma.equity.values, strict=True))
    for t, v in zip(rsi.equity.times[-5:], rsi.equity.values[-5:], strict=True):  # at the 4h ticks both are taken
        assert float(account.equity.values[list(account.equity.times).index(t)]) == pytest.approx(v + values[int(t)])


def test_the_account_kill_switch_trips_on_the_sum_of_the_sleeves_and_blocks_every_one():
    """The kill switch (1 % under the account's peak) judges the 2,000 USD account: once it
    trips, both strategies' entries are refused, and each result counts its own."""
    import re

    config = _config([SMA, {**RSI, "args": ["rsi", "BTC/USDT", "4h"]}], risk={"portfolio_kill_pct": 1})
    *results, _ = replay_together(config, SyntheticSource(7), None, START, END)
    tripped = []
    for r in results:
        [note] = [n for n in r.notes if "with PORTFOLIO_KILL_SWITCH" in n]
        m = re.search(r"first at (\S+): .*account equity ([\d.]+) USD", note)
        assert m and float(m.group(2)) > 1500, note  # the sum of both sleeves, not one alone
        tripped.append(datetime.fromisoformat(m.group(1).replace("Z", "+00:00")))
        assert r.fills
    first = min(tripped)
    for r in results:  # no entry after the switch tripped, in either sleeve
        assert all(datetime.fromisoformat(f["at"].replace("Z", "+00:00")) < first
                   for f in r.fills if f["side"] == "buy"), r.strategy_id


def test_marks_of_one_symbol_from_two_strategies_keep_the_newer():
    at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    later = datetime(2026, 1, 1, 11, tzinfo=UTC)
    got = StepInputs(marks={"BTC/USDT": Mark(100.0, at)})
    got.add(StepInputs(marks={"BTC/USDT": Mark(101.0, later), "ETH/USDT": Mark(5.0, at)},
                       delivery_prices={"BTC": {1: 2.0}}))
    got.add(StepInputs(marks={"BTC/USDT": Mark(99.0, at)}, delivery_prices={"BTC": {3: 4.0}}))
    assert got.marks == {"BTC/USDT": Mark(101.0, later), "ETH/USDT": Mark(5.0, at)}
    assert got.delivery_prices == {"BTC": {1: 2.0, 3: 4.0}}


def test_an_options_strategy_in_a_joint_replay_needs_an_options_source():
    doc = {"market": {"source": "synthetic", "seed": 7},
           "strategies": [{"id": "sma", "type": "spot", "script": "check_strategy.py", "capital": 1000,
                           "args": ["sma_crossover", "BTC/USDT", "1h"]},
                          {"id": "vmr", "type": "options", "script": "check_options.py", "capital": 100_000,
                           "args": ["vol_mean_reversion", "BTC"],
                           "params": {"sell_above_rank": 50, "buy_below_rank": 50, "dte_tolerance_days": 18}}]}
    config = parse_config(doc, base_dir=Path("."))
    with pytest.raises(ConfigError, match="needs an options source"):
        replay_together(config, SyntheticSource(7), None, START, END)
    jan = 1_767_225_600_000  # 2026-01-01, a year of synthetic DVOL behind it for the rank
    sma, vmr, _ = replay_together(config, SyntheticSource(7), SyntheticOptions(7), jan, jan + 5 * DAY)
    assert vmr.kind == "options" and vmr.fills and {f["strategy_id"] for f in vmr.fills} == {"vmr"}


def test_the_cli_replays_a_config_together_in_run_mode_and_alone_in_compare_mode(tmp_path, capsys):
    doc = {"market": {"source": "synthetic", "seed": 7},
           "strategies": [{"type": "spot", "script": "check_strategy.py", "capital": 1000, **s} for s in (SMA, RSI)]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    common = ["backtest", "--config", str(path), "--start", "2026-01-01", "--end", "2026-01-21"]
    assert main([*common, "--json", str(tmp_path / "run.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("NOTE (every strategy): the config's 2 strategies are replayed together") == 1
    assert main([*common, "--mode", "compare", "--json", str(tmp_path / "compare.json")]) == 0
    out = capsys.readouterr().out
    assert "replayed alone" in out and "replayed together" not in out
    run_notes = [r["result"]["notes"] for r in json.loads((tmp_path / "run.json").read_text())["reports"]]
    assert all(any("replayed together" in n for n in notes) for notes in run_notes)


def test_a_strategy_that_cannot_be_replayed_stops_the_joint_run_naming_it():
    """A range inside one 1d bar holds no whole bar of the 1d strategy (it once said there were
    no candles at all): the error names that strategy and how to replay the others."""
    config = _config([SMA, {**SMA, "id": "daily", "args": ["sma_crossover", "BTC/USDT", "1d"]}])
    day = START + 10 * DAY
    with pytest.raises(ConfigError) as e:
        replay_together(config, SyntheticSource(7), None, day + 3 * HOUR, day + 20 * HOUR)
    assert e.value.problems[0].startswith("daily: the run from ") and "holds no whole 1d bar" in e.value.problems[0]
    assert "replay the others one at a time with --strategy ID" in e.value.problems[-1]


def test_one_strategy_picked_from_a_config_of_several_says_it_was_replayed_alone(tmp_path):
    doc = {"market": {"source": "synthetic", "seed": 7},
           "strategies": [{"type": "spot", "script": "check_strategy.py", "capital": 1000, **s} for s in (SMA, RSI)]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "one.json"
    assert main(["backtest", "--config", str(path), "--strategy", "sma", "--start", "2026-01-01", "--end",
                 "2026-01-05", "--json", str(out)]) == 0
    [report] = json.loads(out.read_text())["reports"]
    assert report["result"]["notes"][0].startswith("sma is replayed alone: its 1,000.00 USD sleeve is the whole")
    assert report["gross"]["result"]["notes"][0] == report["result"]["notes"][0]
