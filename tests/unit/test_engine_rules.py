"""One function per rule set turns a config into the engine's rules (daemon and replays alike)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from scheduler import engine_rules
from scheduler.config import parse_config

CHECKERS = Path(__file__).resolve().parents[2] / "checkers"


def _config(**extra: object) -> object:
    doc = {"strategies": [
        {"id": "s", "type": "spot", "script": "check_strategy.py", "args": ["rsi", "BTC/USDT", "1h"], "capital": 100},
        {"id": "o", "type": "options", "script": "check_options.py", "args": ["wheel", "BTC"], "capital": 100,
         "harvest": {"profit_target_pct": 60}},
        {"id": "p", "type": "options", "script": "check_options.py", "args": ["butterfly", "ETH"], "capital": 100}],
        **extra}
    return parse_config(doc, base_dir=CHECKERS.parent, checkers_dir=CHECKERS)


def test_option_rules_take_the_configured_fees_spread_age_and_overrides() -> None:
    config = _config(options={"no_side_spread_pct": 2, "max_quote_age_s": 600,
                              "fees": {"trade_pct": 0.05}, "harvest": {"min_dte_days": 3},
                              "limits": {"max_abs_vega_usd": 500}, "account_limits": {"max_abs_delta_usd": 9e4}})
    by_id = {s.id: s for s in config.strategies}
    own = engine_rules.option_rules(config, by_id["o"])
    default = engine_rules.option_rules(config, by_id["p"])
    assert own.fees.trade_rate == 0.0005 and own.fees.trade_cap == 0.125 and own.no_side_spread == 0.02
    assert own.max_quote_age == timedelta(seconds=600)
    assert own.harvest is not None and own.harvest.profit_target_pct == 60 and own.harvest.min_dte_days is None
    assert default.harvest is not None and default.harvest.min_dte_days == 3
    assert default.limits.max_abs_vega_usd == 500
    assert engine_rules.account_option_limits(config).max_abs_delta_usd == 9e4


def test_defaults_are_deribits() -> None:
    config = _config()
    rules = engine_rules.option_rules(config, config.strategies[1])
    assert (rules.fees.trade_rate, rules.fees.trade_cap, rules.fees.delivery_rate) == (0.0003, 0.125, 0.00015)
    assert engine_rules.sleeve_rules(config, config.strategies[0]).costs.fee_rate == 0.001
