"""kill -9 of the daemon at random moments, 50 times: state.json always loads, and
every fill is recorded exactly once (trade log == state, cash rebuilt from the log)."""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest

from scheduler.clock import SystemClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from scheduler.state_store import load_state, read_trade_log
from tests.integration.harness import DaemonProcess, spot, write_config

KILLS = 50


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    strategies = [spot(f"s{i}", interval_seconds=1) for i in range(3)]
    config = write_config(tmp_path, strategies, interval_seconds=1, runner={"timeout_s": 10})
    env = {"ALTERNATE_PERIOD_S": "1"}  # the test checker flips buy/sell every second: fills every cycle
    state_path = tmp_path / "state.json"
    rng = random.Random(20261121)
    loads = kills = 0
    # at least KILLS kills, and on a slow machine more, until enough fills make the test mean something
    while kills < KILLS or (len(read_trade_log(state_path)) < 20 and kills < 3 * KILLS):
        d = DaemonProcess(config, env)
        if kills % 5 == 0:  # during start-up
            time.sleep(rng.uniform(0.05, 1.0))
        else:  # while cycling: timed from the moment it serves, so a slow start does not eat the window
            deadline = time.monotonic() + 30
            while "Status server on" not in d.output and time.monotonic() < deadline and d.proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 2.0))
        d.kill()
        kills += 1
        state = load_state(state_path)  # must never raise: no torn or half-written file
        loads += state is not None

    # A clean start repairs the trade log from the saved state (crash between save and append).
    daemon = Daemon(load_config(config), config, clock=SystemClock(), state_path=state_path,
                    log_dir=tmp_path / "logs", stdout_logs=False)
    daemon.open()
    daemon.close()
    state = load_state(state_path)
    trades = read_trade_log(state_path)
    assert loads >= kills - 5, "most kills should land after the first save"
    assert len(trades) >= 20, f"too few fills ({len(trades)}) for the test to mean anything"
    seqs = [t.seq for t in trades]
    assert seqs == list(range(1, state.next_trade_seq)), "each fill exactly once, none missing"

    cash = defaultdict(lambda: 1000.0)
    held: dict[str, float] = defaultdict(float)
    for t in trades:
        cash[t.strategy_id] += -(t.notional_usd + t.fee_usd) if t.side == "buy" else t.notional_usd - t.fee_usd
        held[t.strategy_id] += t.quantity if t.side == "buy" else -t.quantity
    for sid, sleeve in state.sleeves.items():
        assert sleeve.cash_usd == pytest.approx(cash[sid], abs=1e-6)
        assert sum(p.quantity for p in sleeve.positions.values()) == pytest.approx(held[sid], abs=1e-12)
        assert sleeve.trade_count == sum(t.strategy_id == sid for t in trades)
    assert not list(tmp_path.glob(".state.json*.tmp")) and not list(tmp_path.glob(".state.json.cycle-*"))
