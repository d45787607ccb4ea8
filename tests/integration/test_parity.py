"""Parity (issue 10 item 4): the daemon itself, replayed over history (the scheduler with a
manual clock stepping bar by bar, the real fetch step and checker subprocesses, the real
engine, its state saved and reloaded every few cycles), makes exactly the fills of the
backtester over the same range, on the real candles in ../shared/data.

Needs the execution contract (scheduler/execution.py: a replayed daemon's orders fill at
the open of the candle starting at the clock time, as the backtester's): skipped before it.
The account rules are set where they cannot bind, so the daemon's three sleeves trade as
three independent backtests (the backtester replays one strategy at a time); each sleeve's
own rules (sizing, stops, drawdown, loss streak) are the config's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtest import runner  # noqa: E402
from scheduler.config import load_config  # noqa: E402
from tests.integration.joint_parity import replay_daemon  # noqa: E402

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

HOUR = 3_600_000
START_MS = 1_704_067_200_000 + 200 * 24 * HOUR  # 2024-07-19 00:00 UTC: no exchange outage in the range
CYCLES = 40
RELOAD_EVERY = 15
SPOT = [
    ("sma-btc", ["sma_crossover", "BTC/USDT", "1h"], {"fast": 3, "slow": 8}, {"stop_loss_pct": 0.7}),
    ("rsi-eth", ["rsi", "ETH/USDT", "1h"], {"period": 5, "oversold": 40, "overbought": 60}, {}),
    ("boll-sol", ["bollinger_bands", "SOL/USDT", "1h"], {"period": 8, "num_std": 1.0},
     {"sizing": {"mode": "fixed_usd", "usd": 400}}),
]
FIELDS = ("symbol", "side", "quantity", "quote_price", "fill_price", "fee_usd", "realized_pnl_usd", "reason", "cycle")


def _write_config(folder: Path, shared_data: Path) -> Path:
    doc = {"interval_seconds": 3600, "log_dir": "logs", "state_file": "state.json",
           "market": {"source": "files", "root": str(shared_data / "ohlcv")},
           "status": {"host": "127.0.0.1", "port": 0},
           "risk": {"max_position_pct": 100, "max_position_usd": 1e9, "max_exposure_pct": 100,
                    "daily_loss_pct": 100, "portfolio_kill_pct": 100},
           "strategies": [{"id": sid, "type": "spot", "script": "check_strategy.py", "args": args, "capital": 1000,
                           "params": params, **extra} for sid, args, params, extra in SPOT]}
    path = folder / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_replayed_daemon_fills_exactly_as_the_backtester(shared_data, tmp_path):
    path = _write_config(tmp_path, shared_data)
    config = load_config(path)
    logged = replay_daemon(config, path, tmp_path, START_MS + HOUR, HOUR, CYCLES, RELOAD_EVERY)
    end_ms = START_MS + CYCLES * HOUR
    from market.files_source import FilesSource

    source = FilesSource(shared_data / "ohlcv")
    traded = 0
    for s in config.strategies:
        market = runner.load_spot(source, s, START_MS, end_ms, config.runner.candles_limit)
        result = runner.replay_spot(config, s, market, START_MS, end_ms)
        daemon_fills = [t for t in logged if t["strategy_id"] == s.id]
        assert [{k: f.get(k) for k in FIELDS} for f in result.fills] == \
            [{k: t.get(k) for k in FIELDS} for t in daemon_fills], s.id
        assert [f["at"] for f in result.fills] == [t["at"] for t in daemon_fills], s.id
        assert result.fills, f"{s.id} must trade for its comparison to mean something"
        traded += len(result.fills)
        state = json.loads((tmp_path / "state.json").read_text())["sleeves"][s.id]
        cash = result.initial_capital_usd + sum(
            (-(f["notional_usd"] + f["fee_usd"]) if f["side"] == "buy" else f["notional_usd"] - f["fee_usd"])
            for f in result.fills)
        assert state["cash_usd"] == pytest.approx(cash, rel=1e-12, abs=1e-9), s.id
    assert traded >= 6, "the strategies must trade for the comparison to mean something"


DAY = 24 * HOUR
OPTIONS_START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC; the first cycle is at 10:00 on the 2nd
OPTIONS_DAYS = 12


def test_the_replayed_daemon_trades_options_on_the_real_chains_as_the_backtester(shared_data, tmp_path):
    from market.sources import open_options_source, open_source

    doc = {"interval_seconds": 86_400, "log_dir": "logs", "state_file": "state.json",
           "market": {"source": "files", "root": str(shared_data / "ohlcv"), "options_root": ".."},
           "status": {"host": "127.0.0.1", "port": 0},
           "risk": {"max_position_pct": 100, "max_position_usd": 1e9, "max_exposure_pct": 100,
                    "daily_loss_pct": 100, "portfolio_kill_pct": 100},
           "strategies": [{"id": "vmr-btc", "type": "options", "script": "check_options.py",
                           "args": ["vol_mean_reversion", "BTC"], "capital": 100_000,
                           "params": {"sell_above_rank": 50, "buy_below_rank": 50, "dte_tolerance_days": 18}}]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    config = load_config(path)
    logged = replay_daemon(config, path, tmp_path, OPTIONS_START_MS + DAY + 10 * HOUR, DAY, OPTIONS_DAYS,
                           reload_every=5)
    s = config.strategies[0]
    end_ms = OPTIONS_START_MS + (OPTIONS_DAYS + 1) * DAY
    spec = config.market.model_dump()
    net, _ = runner.run(config, s, open_source(spec), OPTIONS_START_MS, end_ms,
                        options_source=open_options_source(spec))
    keys = (*FIELDS, "option", "at")
    assert [{k: f.get(k) for k in keys} for f in net.fills] == [{k: t.get(k) for k in keys} for t in logged]
    assert len(net.fills) >= 2
    state = json.loads((tmp_path / "state.json").read_text())["sleeves"][s.id]
    opened = {f["option"]["position_id"] for f in net.fills if f["option"]["effect"] == "open"}
    closed = {f["option"]["position_id"] for f in net.fills if f["option"]["effect"] == "close"}
    assert {p["id"] for p in state["option_positions"]} == opened - closed
    assert state["cash_usd"] == pytest.approx(net.initial_capital_usd + sum(
        (-(f["notional_usd"] + f["fee_usd"]) if f["side"] == "buy" else f["notional_usd"] - f["fee_usd"])
        for f in net.fills), rel=1e-12)



def test_through_an_exchange_outage_the_replayed_daemon_fills_as_the_backtester(shared_data, tmp_path):
    """BTC/USDT 1h has no candles from 12:00 to 16:00 on 2020-02-19 (an exchange outage). At
    12:00 the checkers decide on the 11:00 bar (closed, fresh), one to buy and one to sell, and
    both fill at the last price known then, the 11:00 close (the ticker in an outage: never
    the 11:00 open, older than the close decided on); from 15:00 the candles are stale and
    the checks fail until 18:00. The daemon and the backtester agree on every fill."""
    start = 1_582_070_400_000  # 2020-02-19 00:00 UTC
    doc = {"interval_seconds": 3600, "log_dir": "logs", "state_file": "state.json",
           "market": {"source": "files", "root": str(shared_data / "ohlcv")},
           "status": {"host": "127.0.0.1", "port": 0},
           "risk": {"max_position_pct": 100, "max_position_usd": 1e9, "max_exposure_pct": 100},
           "strategies": [{"id": sid, "type": "spot", "script": "check_strategy.py", "capital": 1000,
                           "args": ["sma_crossover", "BTC/USDT", "1h"], "params": {"fast": fast, "slow": slow}}
                          for sid, fast, slow in (("buys-in-it", 5, 8), ("sells-in-it", 3, 4))]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    config = load_config(path)
    # cycles at 01:00 .. 24:00: those at 15:00, 16:00 and 17:00 fail (the candles are stale)
    logged = replay_daemon(config, path, tmp_path, start + HOUR, HOUR, 24, 10, failing=frozenset({15, 16, 17}))
    from backtest.joint import replay_together
    from market.files_source import FilesSource

    source = FilesSource(shared_data / "ohlcv")
    results = replay_together(config, source, None, start, start + 24 * HOUR)
    closed_11 = float(source.fetch_candles("BTC/USDT", "1h", now_ms=start + 12 * HOUR, limit=1).close[-1])
    for s, result in zip(config.strategies, results, strict=False):
        daemon_fills = [t for t in logged if t["strategy_id"] == s.id]
        assert [{k: f.get(k) for k in (*FIELDS, "at")} for f in result.fills] == \
            [{k: t.get(k) for k in (*FIELDS, "at")} for t in daemon_fills], s.id
        in_outage = [f for f in result.fills if f["at"] == "2020-02-19T12:00:00Z"]
        assert [f["quote_price"] for f in in_outage] == [closed_11], s.id
        alone = runner.replay_spot(config, s, runner.load_spot(source, s, start, start + 24 * HOUR, 500), start,
                                   start + 24 * HOUR)
        # the caps cannot bind: alone is the same but for the trade numbers (the account's)
        assert [{k: f.get(k) for k in (*FIELDS, "at")} for f in alone.fills] == \
            [{k: f.get(k) for k in (*FIELDS, "at")} for f in result.fills], s.id


def test_a_whole_config_replayed_together_fills_exactly_as_the_replayed_daemon(shared_data, tmp_path):
    """On the real candles and chains (tests/integration/joint_parity.py says what is checked)."""
    from tests.integration.joint_parity import check_joint_parity

    check_joint_parity(tmp_path, {"source": "files", "root": str(shared_data / "ohlcv"), "options_root": ".."})
