"""What the daemon fetches and passes on for options (scheduler/options_cycle.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler import options_cycle
from scheduler.config import parse_config
from scheduler.engine.models import OptionPosition, Position, State, new_sleeve
from scheduler.signals import OptionsSignal

NOW = datetime(2026, 3, 10, 10, 20, tzinfo=UTC)
CHECKERS = Path(__file__).resolve().parents[2] / "checkers"


def _config(*strategies: dict) -> object:
    return parse_config({"market": {"source": "synthetic"}, "strategies": list(strategies)}, base_dir=Path("."),
                        checkers_dir=CHECKERS)


def _opt(sid: str, strategy: str, underlying: str) -> dict:
    return {"id": sid, "type": "options", "script": "check_options.py", "args": [strategy, underlying],
            "capital": 1000}


def _position(sid: str, underlying: str, expiry: datetime, seq: int = 1) -> OptionPosition:
    return OptionPosition(id=f"{sid}:{seq}", instrument=f"{underlying}-13MAR26-70000-P", underlying=underlying,
                          option_type="put", strike=70_000.0, expiry=expiry, side="long", quantity=0.1,
                          entry_premium_coin=0.01, entry_premium_usd=700.0, entry_fee_usd=1.0,
                          entry_index_usd=70_000.0, opened_at=NOW - timedelta(days=3),
                          greeks={"delta": -0.3, "gamma": 1e-5, "theta": -20.0, "vega": 30.0})


def test_due_strategies_and_sleeves_holding_options_get_their_chains() -> None:
    cfg = _config(_opt("mom", "momentum_options", "BTC"), _opt("held", "protective_puts", "ETH"),
                  _opt("idle", "covered_calls", "BTC"))
    state = State(sleeves={s.id: new_sleeve(s.id, s.type, s.capital) for s in cfg.strategies})
    expired = NOW.replace(day=6, hour=8, minute=0)
    state.sleeves["held"].option_positions = [_position("held", "ETH", NOW + timedelta(days=3)),
                                              _position("held", "ETH", expired, 2)]
    due = [s for s in cfg.strategies if s.id == "mom"]  # "held" is not due this cycle
    pairs, prices, unders, deliveries = options_cycle.fetch_needs(cfg, state, due, NOW)
    assert pairs == {("BTC/USDT", "1d"), ("BTC/USDT", "4h")} and prices == {"BTC/USDT"}
    assert unders == ["BTC", "ETH"]  # ETH marked every cycle while held, due or not
    assert deliveries == {"ETH": [round(expired.timestamp() * 1000)]}  # only the expired one is settled


def test_the_checker_is_told_the_sleeve_positions_and_its_coin() -> None:
    cfg = _config(_opt("wheel", "wheel", "BTC"))
    s = cfg.strategies[0]
    sleeve = new_sleeve("wheel", "options", 1000)
    sleeve.option_positions = [_position("wheel", "BTC", NOW + timedelta(days=3))]
    sleeve.option_positions[0].greeks = {}  # unknown after a quote without greeks: the checker uses the chain's
    sleeve.positions["BTC/USDT"] = Position(symbol="BTC/USDT", quantity=0.1, entry_price=70_000.0,
                                            cost_basis_usd=7_000.0, entry_fee_usd=0.0, opened_at=NOW)
    doc = options_cycle.checker_stdin(s, sleeve)
    assert doc == {"spot_held": 0.1, "positions": [{"id": "wheel:1", "instrument": "BTC-13MAR26-70000-P",
                                                    "side": "long", "quantity": 0.1, "entry_premium_coin": 0.01}]}


def test_an_intent_keeps_every_leg_as_the_checker_proposed_it() -> None:
    signal = OptionsSignal.model_validate({
        "strategy": "wheel", "underlying": "BTC", "signal": 1, "spot_price": 70_000.0,
        "timestamp": "2026-03-10T10:20:00Z", "actions": [{
            "action": "sell", "option_type": "put", "strike": 66_000.0, "expiry": "2026-04-17T08:00:00Z",
            "expiry_ms": 1776412800000, "instrument": "BTC-17APR26-66000-P", "dte": 37.9, "premium": 0.02,
            "premium_usd": 1400.0, "quantity": 0.1, "greeks": {"delta": -0.3, "gamma": 1e-5, "theta": -20.0,
                                                              "vega": 30.0},
            "score": 1.0, "score_reason": "1.0 no open option positions; = 1.00", "assign": True}]})
    intent = options_cycle.intent("wheel", "BTC", signal)
    (leg,) = intent.legs
    assert (leg.action, leg.instrument, leg.underlying, leg.expiry_ms, leg.assign, leg.quantity, leg.score) == (
        "sell", "BTC-17APR26-66000-P", "BTC", 1776412800000, True, 0.1, 1.0)
    assert options_cycle.intent("wheel", "BTC", signal.model_copy(update={"actions": []})) is None


def test_delivery_prices_and_failures_from_the_fetch_step() -> None:
    fetched = {"deliveries": {"BTC": {"1773388800000": {"ok": True, "price": 70_123.5, "method": "m"},
                                      "1773993600000": {"ok": False, "error": "DataError: no candles"},
                                      "x": {"ok": True, "price": 1.0}}}}
    prices, methods = options_cycle.delivery_prices(fetched)
    assert prices == {"BTC": {1773388800000: 70_123.5}} and methods == {("BTC", 1773388800000): "m"}
    assert options_cycle.delivery_failures(fetched) == [
        "delivery price of BTC at 2026-03-20T08:00:00Z: DataError: no candles"]
