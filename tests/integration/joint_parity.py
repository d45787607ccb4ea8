"""The replayed daemon (``replay_daemon``, for every parity test), and the joint replay's
parity with it (backtest/joint.py), on any market: four
strategies (1h spot run every hour, 1h spot every 2 hours, a daily options one) in one account
whose position cap (1.5 % of the account, the options leg's marks included) binds on the sum of
the sleeves, and far harder on one alone. The daemon, replayed hour by hour with its real fetch
step and checker processes, state saved and reloaded, and the joint backtest make the same
fills; a strategy replayed alone makes other ones. Used by test_parity.py (the real data) and
test_joint_parity.py (the synthetic market, whose chains move every hour: the held option legs
are marked between the options strategy's checks as the daemon marks them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backtest import runner
from scheduler.clock import ManualClock
from scheduler.config import load_config
from scheduler.daemon import Daemon

HOUR = 3_600_000
START_MS = 1_767_225_600_000 + 10 * HOUR  # 2026-01-01 10:00 UTC: the spot ticks start at 11:00
CYCLES = 36  # to 01-02 22:00: one options step (10:00 on the 2nd), its leg marked hourly after
STRATEGIES = [
    ("sma-btc", "spot", ["sma_crossover", "BTC/USDT", "1h"], {"fast": 3, "slow": 8}, 3600, 2_000),
    ("rsi-eth", "spot", ["rsi", "ETH/USDT", "1h"], {"period": 2, "oversold": 40, "overbought": 60}, 3600, 2_000),
    ("boll-sol-2h", "spot", ["bollinger_bands", "SOL/USDT", "1h"], {"period": 3, "num_std": 0.3}, 7_200, 2_000),
    ("vmr-btc", "options", ["vol_mean_reversion", "BTC"],
     {"sell_above_rank": 50, "buy_below_rank": 50, "dte_tolerance_days": 18}, 86_400, 100_000),
]
FIELDS = ("symbol", "side", "quantity", "quote_price", "fill_price", "fee_usd", "realized_pnl_usd", "reason", "cycle",
          "option", "at")


def _daemon(config: Any, path: Path, folder: Path, clock: ManualClock) -> Daemon:
    d = Daemon(config, path, clock=clock, state_path=folder / "state.json", log_dir=folder / "logs",
               stdout_logs=False)
    d.open()
    return d


def replay_daemon(config: Any, path: Path, folder: Path, first_cycle_ms: int, step_ms: int, cycles: int,
                  reload_every: int, *, failing: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """The daemon itself over history: ``cycles`` cycles of a ManualClock from ``first_cycle_ms``,
    ``step_ms`` apart, the real fetch step and checker processes; every ``reload_every`` cycles
    its state saved, the daemon gone, a new one reloading it. The trade log it wrote. A cycle
    whose checks fail must be one of ``failing`` (1-based), and those must fail."""
    clock = ManualClock(datetime.fromtimestamp(first_cycle_ms / 1000, tz=UTC))
    daemon = _daemon(config, path, folder, clock)
    try:
        for cycle in range(1, cycles + 1):
            report = daemon.run_cycle()
            assert report is not None and bool(report.failed) == (cycle in failing), f"cycle {cycle}: {report}"
            if cycle % reload_every == 0:
                daemon.close()
                daemon = _daemon(config, path, folder, clock)
            clock.advance(step_ms / 1000)
    finally:
        daemon.close()
    lines = (folder / "state.trades.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def check_joint_parity(tmp_path: Path, market: dict[str, Any]) -> None:
    from backtest.joint import replay_together
    from market.sources import open_options_source, open_source
    from scheduler.engine.models import State, new_sleeve, utc_from_ms
    from scheduler.state_store import save_state

    doc = {"interval_seconds": 3600, "log_dir": "logs", "state_file": "state.json", "market": market,
           "status": {"host": "127.0.0.1", "port": 0}, "risk": {"max_position_pct": 1.5},
           "strategies": [{"id": sid, "type": kind, "script": f"check_{'options' if kind == 'options' else 'strategy'}.py",
                           "args": args, "params": params, "interval_seconds": every, "capital": capital}
                          for sid, kind, args, params, every, capital in STRATEGIES]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    config = load_config(path)
    # the daemon runs the options strategy first where the backtester's clock does (10:00 the
    # next day): as if it had run it at 10:00 today
    seeded = State()
    for sid, kind, _, _, _, capital in STRATEGIES:
        seeded.sleeves[sid] = new_sleeve(sid, kind, capital)
    seeded.sleeves["vmr-btc"].last_run_at = utc_from_ms(START_MS)
    save_state(tmp_path / "state.json", seeded)
    logged = replay_daemon(config, path, tmp_path, START_MS + HOUR, HOUR, CYCLES, reload_every=25)
    spec = config.market.model_dump()
    end_ms = START_MS + CYCLES * HOUR
    source, options = open_source(spec), open_options_source(spec)
    *results, account = replay_together(config, source, options, START_MS, end_ms)
    state = json.loads((tmp_path / "state.json").read_text())
    for result in results:
        daemon_fills = [t for t in logged if t["strategy_id"] == result.strategy_id]
        assert [{k: f.get(k) for k in FIELDS} for f in result.fills] == \
            [{k: t.get(k) for k in FIELDS} for t in daemon_fills], result.strategy_id
        assert state["sleeves"][result.strategy_id]["cash_usd"] == pytest.approx(
            result.initial_capital_usd + sum((-(f["notional_usd"] + f["fee_usd"]) if f["side"] == "buy"
                                              else f["notional_usd"] - f["fee_usd"]) for f in result.fills),
            rel=1e-12, abs=1e-9), result.strategy_id
    assert account.strategy_id == "account" and account.kind == "account"
    assert sorted(json.dumps(f, sort_keys=True) for f in account.fills) == \
        sorted(json.dumps(f, sort_keys=True) for r in results for f in r.fills)
    final = sum(s["cash_usd"] for s in state["sleeves"].values())  # + the marked positions, from the daemon's /status
    assert account.final_equity_usd == pytest.approx(final + sum(
        p["quantity"] * p["mark_price"] for s in state["sleeves"].values() for p in s["positions"].values()) + sum(
        (1 if p["side"] == "long" else -1) * p["quantity"] * p["mark_usd"] for s in state["sleeves"].values()
        for p in s["option_positions"]), rel=1e-9)
    traded = {r.strategy_id for r in results if r.fills}
    assert traded == {sid for sid, *_ in STRATEGIES}, f"every strategy must trade for the comparison to mean something: {traded}"
    # alone, a 2,000 USD sleeve's 1.5 % cap is 30 USD; together the account's is ~1,590: other fills
    alone = runner.run(config, config.strategies[0], source, START_MS, end_ms, with_gross=False)[0]
    assert [f["quantity"] for f in alone.fills] != [f["quantity"] for f in results[0].fills]
