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
    [together] = replay_together(config, source, None, START, END)
    assert together.fills and together.fills == alone.fills
    assert list(together.equity.values) == list(alone.equity.values)
    assert together.notes == alone.notes


def test_each_sleeve_of_a_joint_replay_is_judged_on_the_account_and_marked_on_its_own_clock():
    """A position cap of 10 % binds at 100 USD on a 1,000 USD sleeve alone and at 200 on the
    2,000 USD account: the joint fills are bigger; the 4h strategy's equity is taken every 4 h."""
    config = _config([SMA, RSI], risk={"max_position_pct": 10})
    source = SyntheticSource(7)
    sma, rsi = replay_together(config, source, None, START, END)
    alone = runner.run(config, config.strategies[0], source, START, END, with_gross=False)[0]
    assert sma.fills and rsi.fills
    assert max(f["notional_usd"] for f in alone.fills if f["side"] == "buy") <= 100 + 1e-6
    assert max(f["notional_usd"] for f in sma.fills if f["side"] == "buy") > 150
    assert {f["strategy_id"] for f in sma.fills} == {"sma"} and {f["strategy_id"] for f in rsi.fills} == {"rsi"}
    steps = {int(b) - int(a) for a, b in zip(rsi.equity.times[1:], rsi.equity.times[2:], strict=False)}
    assert steps == {4 * HOUR}
    assert any("replayed together" in n for n in sma.notes) and sma.notes == rsi.notes


def test_the_account_kill_switch_trips_on_the_sum_of_the_sleeves_and_blocks_every_one():
    """The kill switch (1 % under the account's peak) judges the 2,000 USD account: once it
    trips, both strategies' entries are refused, and each result counts its own."""
    import re

    config = _config([SMA, {**RSI, "args": ["rsi", "BTC/USDT", "4h"]}], risk={"portfolio_kill_pct": 1})
    results = replay_together(config, SyntheticSource(7), None, START, END)
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
    sma, vmr = replay_together(config, SyntheticSource(7), SyntheticOptions(7), jan, jan + 5 * DAY)
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
