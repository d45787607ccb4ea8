"""The six options strategies through the real daemon: checker processes on the synthetic
chain, the fetch step, the engine, the state file and /status (issue 9 items 4-9)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scheduler.clock import ManualClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from scheduler.engine.models import State
from scheduler.state_store import load_state, read_trade_log
from scheduler.status import build_status
from tests.integration.harness import REPO, open_daemon, write_config

#: 2026-03-10 10:20 UTC: on the synthetic chain (seed 42) BTC's DVOL rank is 39.5 and the listed
#: expiries are 2026-03-13/20/27, 04-03, 04-24, 05-29 and the quarterlies
T0 = datetime(2026, 3, 10, 10, 20, tzinfo=UTC)
DAY_MS = 86_400_000


def options(sid: str, strategy: str, underlying: str = "BTC", **params: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": sid, "type": "options", "script": "check_options.py",
                           "args": [strategy, underlying], "capital": 20_000}
    if params:
        doc["params"] = params
    return doc


SIX = [
    options("mom", "momentum_options", trigger="level", threshold_pct=0, dte_tolerance_days=10),
    options("vmr", "vol_mean_reversion", sell_above_rank=30, buy_below_rank=20),
    options("pp", "protective_puts"),
    options("cc", "covered_calls"),
    options("wheel", "wheel", put_dte_days=44),
    options("fly", "butterfly"),
]


def _config(tmp_path: Path, strategies: list[dict[str, Any]], **overrides: Any) -> Path:
    return write_config(tmp_path, strategies, checkers_dir=str(REPO / "checkers"), **overrides)


def _daemon(config_path: Path, clock: ManualClock) -> Daemon:
    return open_daemon(config_path, clock)


def _status(d: Daemon) -> dict[str, Any]:
    doc = build_status(d.state, d.config, d.prices, started_at=T0, halted=None)
    return {s["id"]: s for s in doc["strategies"]} | {"account": doc["account"]}


@pytest.fixture(scope="module")
def first_cycle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], State, list[dict]]:
    folder = tmp_path_factory.mktemp("six")
    config = _config(folder, SIX)
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    try:
        report = d.run_cycle()
        assert report is not None and report.failed == 0, [d.state.sleeves[s].last_check for s in report.failed_ids]
        status = _status(d)
        state = d.state.model_copy(deep=True)
    finally:
        d.close()
    return config, status, state, read_trade_log(folder / "state.json")


def test_every_strategy_opens_its_legs_on_the_first_cycle(first_cycle: Any) -> None:
    _, status, state, _ = first_cycle
    want = {"mom": [("long", "put")], "vmr": [("short", "call"), ("short", "put")], "pp": [("long", "put")],
            "cc": [("short", "call")], "wheel": [("short", "put")],
            "fly": [("long", "call"), ("short", "call"), ("long", "call")]}
    for sid, legs in want.items():
        held = state.sleeves[sid].option_positions
        assert [(p.side, p.option_type) for p in held] == legs, (sid, state.sleeves[sid].last_check)
        assert all(p.underlying == "BTC" and p.expiry.hour == 8 and p.expiry.weekday() == 4 for p in held)
    fly = state.sleeves["fly"].option_positions
    assert [p.quantity for p in fly] == [0.1, 0.2, 0.1] and fly[0].strike < fly[1].strike < fly[2].strike
    assert state.sleeves["wheel"].option_positions[0].assign
    assert not any(p.assign for sid in want if sid != "wheel" for p in state.sleeves[sid].option_positions)


def test_fills_are_at_the_ask_or_bid_with_deribit_fees_and_cash_adds_up(first_cycle: Any) -> None:
    _, _, state, log = first_cycle
    for sid, sleeve in state.sleeves.items():
        cash = 20_000.0
        for t in [t.model_dump(mode="json") for t in log if t.strategy_id == sid]:
            o = t["option"]
            assert o["price_source"] == ("ask" if t["side"] == "buy" else "bid")
            assert math.isclose(t["fill_price"], o["premium_coin"] * o["index_usd"], rel_tol=1e-12)
            fee = min(0.0003 * o["index_usd"], 0.125 * t["fill_price"]) * t["quantity"]
            assert math.isclose(t["fee_usd"], fee, rel_tol=1e-12), t
            cash += (-1 if t["side"] == "buy" else 1) * t["fill_price"] * t["quantity"] - t["fee_usd"]
        assert math.isclose(sleeve.cash_usd, cash, rel_tol=1e-12), sid


def test_status_shows_each_leg_with_greeks_value_and_margin(first_cycle: Any) -> None:
    _, status, state, _ = first_cycle
    total_margin = 0.0
    for sid in ("mom", "vmr", "pp", "cc", "wheel", "fly"):
        s = status[sid]
        assert s["options"]["open_option_positions"] == len(s["option_positions"]) > 0
        for leg in s["option_positions"]:
            assert set(leg["greeks"]) == {"delta", "gamma", "theta", "vega"}
            assert leg["value_usd"] is not None and leg["unrealized_pnl_usd"] is not None
            sign = 1 if leg["side"] == "long" else -1
            assert math.isclose(leg["value_usd"], sign * leg["mark_usd"] * leg["quantity"], rel_tol=1e-12)
            assert (leg["margin_usd"] > 0) == (leg["side"] == "short")
        margin = sum(leg["margin_usd"] for leg in s["option_positions"])
        assert math.isclose(s["options"]["margin_in_use_usd"], margin, rel_tol=1e-12)
        total_margin += margin
        delta = sum((1 if leg["side"] == "long" else -1) * leg["quantity"] * leg["greeks"]["delta"]
                    for leg in s["option_positions"])
        assert math.isclose(s["options"]["greeks"]["delta_coin"]["BTC"], delta, rel_tol=1e-9, abs_tol=1e-12)
        assert s["last_check"]["outcome"].startswith(("buy", "sell"))
    assert math.isclose(status["account"]["options"]["margin_in_use_usd"], total_margin, rel_tol=1e-12)
    # the wheel's put is cash-secured: it reserves the strike it may have to pay
    put = status["wheel"]["option_positions"][0]
    assert put["margin_usd"] >= put["strike"] * put["quantity"]
    vmr = status["vmr"]["last_check"]
    assert vmr["indicators"]["iv_rank_source"] == "IV rank (DVOL, 365d)" and 0 <= vmr["indicators"]["iv_rank"] <= 100


def test_the_state_file_holds_the_positions_and_a_restart_keeps_them(first_cycle: Any) -> None:
    config, _, state, _ = first_cycle
    saved = load_state(config.parent / "state.json")
    assert saved is not None
    for sid, sleeve in state.sleeves.items():
        assert saved.sleeves[sid].option_positions == sleeve.option_positions


def test_a_second_cycle_marks_the_legs_again_and_opens_nothing_twice(tmp_path: Path) -> None:
    config = _config(tmp_path, [SIX[2], SIX[3], SIX[5]])  # protective puts, covered calls, butterfly
    clock = ManualClock(T0)
    d = _daemon(config, clock)
    try:
        d.run_cycle()
        before = {sid: [p.model_copy() for p in d.state.sleeves[sid].option_positions] for sid in ("pp", "cc", "fly")}
        clock.advance(600)
        report = d.run_cycle()
        assert report is not None and report.failed == 0 and report.fills == 0
        for sid, old in before.items():
            now = d.state.sleeves[sid].option_positions
            assert [p.id for p in now] == [p.id for p in old]
            assert all(p.mark_at == clock.now() for p in now)  # the synthetic chain is quoted at the cycle's time
            assert any(p.mark_coin != q.mark_coin for p, q in zip(now, old, strict=True))
            assert any(p.greeks != q.greeks for p, q in zip(now, old, strict=True))
            assert d.state.sleeves[sid].last_check.outcome.startswith(("HELD", "CAP"))
    finally:
        d.close()


def test_default_parameters_skip_with_the_reason_when_no_expiry_is_near_the_target(tmp_path: Path) -> None:
    config = _config(tmp_path, [options("wheel", "wheel")])  # 37 DTE: nearest listed is 44.9 days away
    d = _daemon(config, ManualClock(T0))
    try:
        report = d.run_cycle()
        check = d.state.sleeves["wheel"].last_check
        assert report is not None and report.fills == 0 and check.ok
        assert check.outcome.startswith("NO_EXPIRY: no expiry within 7 days of 37 DTE: the nearest is 2026-04-24")
    finally:
        d.close()


def test_an_entry_the_sleeve_cannot_margin_is_rejected_with_a_code(tmp_path: Path) -> None:
    strategy = {**options("cc", "covered_calls"), "capital": 500}  # a naked 0.1 BTC call needs ~1,000 USD margin
    d = _daemon(_config(tmp_path, [strategy]), ManualClock(T0))
    try:
        d.run_cycle()
        sleeve = d.state.sleeves["cc"]
        assert sleeve.option_positions == [] and sleeve.cash_usd == 500
        assert sleeve.last_check.outcome.startswith("rejected INSUFFICIENT_MARGIN: the short legs need ")
    finally:
        d.close()


def test_an_options_book_limit_blocks_the_entry(tmp_path: Path) -> None:
    strategy = {**options("pp", "protective_puts"), "option_limits": {"max_abs_delta_usd": 100}}
    d = _daemon(_config(tmp_path, [strategy]), ManualClock(T0))
    try:
        d.run_cycle()
        assert d.state.sleeves["pp"].option_positions == []
        assert d.state.sleeves["pp"].last_check.outcome.startswith("rejected ")
        assert "delta" in d.state.sleeves["pp"].last_check.outcome
    finally:
        d.close()


def test_a_chain_the_fetch_step_could_not_get_fails_the_check_and_trades_nothing(tmp_path: Path) -> None:
    # ETH options on a files market without ETH chain files: the check fails with the recorded error
    root = tmp_path / "data"
    root.mkdir()
    config = _config(tmp_path, [options("pp", "protective_puts", "ETH")])
    doc = json.loads(config.read_text())
    doc["market"] = {"source": "files", "root": str(root)}
    config.write_text(json.dumps(doc))
    d = _daemon(config, ManualClock(T0))
    try:
        report = d.run_cycle()
        check = d.state.sleeves["pp"].last_check
        assert report is not None and report.failed == 1 and not check.ok
        assert "option chain" in check.error or "chain" in check.error
        assert d.state.sleeves["pp"].option_positions == []
    finally:
        d.close()


def test_json_of_the_checker_input_is_what_check_options_reads(first_cycle: Any) -> None:
    from scheduler import options_cycle

    config, _, state, _ = first_cycle
    cfg = load_config(config)
    s = next(x for x in cfg.strategies if x.id == "fly")
    doc = options_cycle.checker_stdin(s, state.sleeves["fly"])
    assert [p["id"] for p in doc["positions"]] == [p.id for p in state.sleeves["fly"].option_positions]
    assert doc["spot_held"] == 0.0
    json.dumps(doc)  # plain JSON


def _delivery_from_synthetic(expiry: datetime, symbol: str = "BTC/USDT") -> float:
    """The delivery price computed apart from the fetch step: the mean of the synthetic 5m closes
    of the 30 minutes before expiry."""
    from market.synthetic import SyntheticSource

    expiry_ms = round(expiry.timestamp() * 1000)
    bars = SyntheticSource(42).fetch_candles(symbol, "5m", now_ms=expiry_ms, limit=6)
    assert int(bars.ts_ms[0]) == expiry_ms - 30 * 60_000 and len(bars) == 6
    return math.fsum(float(c) for c in bars.close) / 6


def test_expired_legs_settle_at_the_delivery_price_with_the_delivery_fee(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    d = _daemon(_config(tmp_path, [SIX[5]]), clock)  # the butterfly: 3 legs on 2026-04-03
    try:
        d.run_cycle()
        legs = [p.model_copy() for p in d.state.sleeves["fly"].option_positions]
        expiry = legs[0].expiry
        assert {p.expiry for p in legs} == {expiry} and expiry == datetime(2026, 4, 3, 8, tzinfo=UTC)
        cash_before = d.state.sleeves["fly"].cash_usd
        clock.advance((expiry - clock.now()).total_seconds() + 3600)  # the first cycle after expiry
        report = d.run_cycle()
        assert report is not None and report.failed == 0
        sleeve = d.state.sleeves["fly"]
        settled = [t for t in read_trade_log(tmp_path / "state.json") if t.reason == "expiry"]
        assert len(settled) == 3
        delivery = _delivery_from_synthetic(expiry)
        cash = cash_before
        for p in legs:
            value = max(delivery - p.strike, 0.0)
            fee = min(0.00015 * delivery, 0.125 * value) * p.quantity
            cash += (value if p.side == "long" else -value) * p.quantity - fee
        assert not any(p.instrument in {q.instrument for q in legs} for p in sleeve.option_positions)
        assert math.isclose(sleeve.cash_usd, cash, rel_tol=1e-12, abs_tol=1e-9)
        assert all(math.isclose(t.option.index_usd, delivery, rel_tol=1e-12) for t in settled)
        log = (tmp_path / "logs" / "fly.log").read_text()
        assert "average of 6 5m closes of BTC/USDT" in log and "delivery price" in log
    finally:
        d.close()


def test_the_wheel_is_assigned_coin_and_then_sells_a_call_covered_by_it(tmp_path: Path) -> None:
    # a put far in the money (1.3 x spot) on the nearest expiry: assigned at expiry
    wheel = options("wheel", "wheel", put_moneyness=1.3, put_dte_days=3, call_dte_days=10, dte_tolerance_days=7)
    clock = ManualClock(T0)
    d = _daemon(_config(tmp_path, [wheel]), clock)
    try:
        d.run_cycle()
        (put,) = d.state.sleeves["wheel"].option_positions
        assert put.side == "short" and put.option_type == "put" and put.assign
        clock.advance((put.expiry - clock.now()).total_seconds() + 3600)
        d.run_cycle()
        sleeve = d.state.sleeves["wheel"]
        delivery = _delivery_from_synthetic(put.expiry)
        assert delivery < put.strike  # in the money
        coin = sleeve.positions["BTC/USDT"]
        assert coin.quantity == put.quantity and math.isclose(coin.entry_price, delivery, rel_tol=1e-12)
        trades = read_trade_log(tmp_path / "state.json")
        assert [t.reason for t in trades] == ["signal", "expiry", "assignment"]
        # in total the coin cost the strike: the put's settlement (K - D) q plus D q for the coin
        paid = sum(t.notional_usd for t in trades[1:3])
        assert math.isclose(paid, put.strike * put.quantity, rel_tol=1e-12)
        # that cycle's check ran before the settlement (it saw the put still held); the next one sees
        # the coin and sells a call covered by it (no margin)
        assert sleeve.option_positions == [] and "(expiry); buy 0.1 BTC/USDT" in sleeve.last_check.outcome
        assert sleeve.last_check.outcome.endswith("(assignment)")
        clock.advance(600)
        d.run_cycle()
        (call,) = d.state.sleeves["wheel"].option_positions
        assert call.side == "short" and call.option_type == "call" and call.assign
        assert call.covered_quantity == put.quantity and call.margin_usd == 0.0
    finally:
        d.close()
