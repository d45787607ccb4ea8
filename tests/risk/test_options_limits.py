"""Options risk limits (issue 9 item 7): |delta|, |gamma|, |vega| and premium at risk, per strategy
and account-wide, block entries with a reason code, counting the legs about to be added; exits
always run; the portfolio greeks and margin the status page shows."""

from __future__ import annotations

import pytest

from scheduler.engine import option_risk
from scheduler.engine.option_fills import OptionLeg, OptionLimits, OptionRules
from tests.unit.test_options_engine import (
    EXP_MS,
    INDEX,
    go,
    intent,
    kinds,
    leg,
    name,
    one,
    options_state,
    quote,
)

K1, K2 = 62_000, 64_000


def quotes(delta: float = 0.3, **kw: float | None) -> dict:
    return {name(k): quote(0.05, bid=0.05, ask=0.05, delta=delta, **kw) for k in (K1, K2)}  # type: ignore[arg-type]


def limited(**kw: float) -> dict[str, OptionRules]:
    return {"o1": OptionRules(limits=OptionLimits(**kw))}


def test_the_sleeve_delta_limit_blocks_an_entry_that_would_break_it() -> None:
    state = options_state()
    rules = limited(max_abs_delta_usd=2000.0)
    # 0.1 x 0.3 x 60,000 = 1,800 USD of dollar delta: within 2,000
    assert kinds(go(state, intents=[intent(leg("buy", K1))], quotes=quotes(), rules=rules), "fill")
    events = go(state, intents=[intent(leg("buy", K2))], quotes=quotes(), rules=rules)
    rejected = one(events, "rejected")
    assert rejected.data["code"] == "OPTIONS_DELTA_LIMIT" and "3600.00" in rejected.data["detail"]
    # selling a call brings delta back towards 0: allowed
    assert kinds(go(state, intents=[intent(leg("sell", K2))], quotes=quotes(), rules=rules), "fill")


def test_the_legs_of_one_proposal_count_together() -> None:
    state = options_state()
    events = go(state, intents=[intent(leg("buy", K1), leg("buy", K2))], quotes=quotes(),
                rules=limited(max_abs_delta_usd=2000.0))
    assert one(events, "rejected").data["code"] == "OPTIONS_DELTA_LIMIT"
    assert state.sleeves["o1"].option_positions == []


def test_an_entry_that_reduces_a_greek_beyond_its_limit_is_allowed() -> None:
    state = options_state()
    go(state, intents=[intent(leg("buy", K1))], quotes=quotes(delta=0.5))  # 3,000 USD delta, no limit yet
    rules = limited(max_abs_delta_usd=1000.0)
    events = go(state, intents=[intent(leg("sell", K2))], quotes=quotes(delta=0.2), rules=rules)  # 3,000 -> 1,800
    assert kinds(events, "fill")
    events = go(state, intents=[intent(leg("buy", K2, "put"))], quotes={name(K2, "put"): quote(0.05, ask=0.05, delta=0.5)},
                rules=rules)  # (the marks moved: delta is 0 now) a put quoted with delta +0.5 adds 3,000: refused
    assert one(events, "rejected").data["code"] == "OPTIONS_DELTA_LIMIT"


@pytest.mark.parametrize("limit,code", [({"max_abs_gamma_usd": 50.0}, "OPTIONS_GAMMA_LIMIT"),
                                        ({"max_abs_vega_usd": 5.0}, "OPTIONS_VEGA_LIMIT")])
def test_gamma_and_vega_limits(limit: dict[str, float], code: str) -> None:
    # dollar gamma 0.1 x 2e-5 x 60,000^2 / 100 = 72 USD per 1 % move; vega 0.1 x 60 = 6 USD per vol point
    state = options_state()
    events = go(state, intents=[intent(leg("buy", K1))], quotes=quotes(), rules=limited(**limit))
    assert one(events, "rejected").data["code"] == code


def test_the_account_limit_counts_every_sleeve() -> None:
    state = options_state("o1", "o2")
    events = go(state, intents=[intent(leg("buy", K1)), intent(leg("buy", K2), sid="o2")], quotes=quotes(),
                limits=OptionLimits(max_abs_delta_usd=3000.0))
    assert one(events, "fill").strategy_id == "o1"
    rejected = one(events, "rejected")
    assert (rejected.strategy_id, rejected.data["code"]) == ("o2", "OPTIONS_DELTA_LIMIT")
    assert rejected.data["detail"].startswith("account:")


def test_premium_at_risk_limit() -> None:
    state = options_state()  # 10,000 USD
    rules = limited(max_premium_at_risk_pct=5.0)
    # 0.1 x 0.05 x 60,000 = 300 USD of premium: 3 %
    assert kinds(go(state, intents=[intent(leg("buy", K1))], quotes=quotes(), rules=rules), "fill")
    events = go(state, intents=[intent(leg("buy", K2))], quotes=quotes(), rules=rules)
    assert one(events, "rejected").data["code"] == "PREMIUM_AT_RISK"
    # a sale pays no premium: not limited by it
    assert kinds(go(state, intents=[intent(leg("sell", K2))], quotes=quotes(), rules=rules), "fill")


def test_premium_at_risk_cannot_be_checked_on_an_unknown_equity() -> None:
    state = options_state()
    go(state, intents=[intent(leg("buy", K1))], quotes=quotes())
    state.sleeves["o1"].option_positions[0].mark_usd = None
    events = go(state, intents=[intent(leg("buy", K2))], quotes={name(K2): quotes()[name(K2)]},
                rules=limited(max_premium_at_risk_pct=50.0))
    rejected = one(events, "rejected")
    assert rejected.data["code"] == "PREMIUM_AT_RISK" and "unknown" in rejected.data["detail"]


def test_a_greek_limit_needs_the_legs_greeks() -> None:
    state = options_state()
    events = go(state, intents=[intent(leg("buy", K1))], quotes=quotes(gamma=None), rules=limited(max_abs_gamma_usd=1e9))
    assert one(events, "rejected").data["code"] == "NO_GREEKS"
    assert kinds(go(state, intents=[intent(leg("buy", K1))], quotes=quotes(gamma=None)), "fill")  # no limit: fine


def test_exits_always_run_beyond_the_limits() -> None:
    state = options_state()
    go(state, intents=[intent(leg("buy", K1)), intent(leg("buy", K2))], quotes=quotes(delta=0.9))
    rules = limited(max_abs_delta_usd=1.0, max_premium_at_risk_pct=0.1)
    events = go(state, intents=[intent(OptionLeg("close", name(K1), "BTC", "call", K1, EXP_MS, 1.0))], quotes=quotes(),
                rules=rules)
    assert one(events, "fill").data["option"]["effect"] == "close"


def test_portfolio_greeks_and_margin_for_the_status_page() -> None:
    state = options_state("o1", "o2")
    go(state, intents=[intent(leg("buy", K1)), intent(leg("sell", K2), sid="o2")], quotes=quotes())
    o1 = option_risk.sleeve_summary(state.sleeves["o1"])
    g = o1["greeks"]
    assert g["delta_usd"] == pytest.approx(0.1 * 0.3 * INDEX) and g["delta_coin"] == {"BTC": pytest.approx(0.03)}
    assert g["gamma_usd_per_1pct"] == pytest.approx(72.0) and g["vega_usd_per_vol_pt"] == pytest.approx(6.0)
    assert g["theta_usd_per_day"] == pytest.approx(-3.0)
    assert o1["margin_in_use_usd"] == 0.0 and o1["premium_at_risk_usd"] == pytest.approx(300.0)
    o2 = option_risk.sleeve_summary(state.sleeves["o2"])
    # short 64,000 call at 60,000: (max(0.15 - 4,000/60,000, 0.10) + 0.05) x 60,000 x 0.1
    assert o2["margin_in_use_usd"] == pytest.approx((max(0.15 - 4000 / 60000, 0.10) + 0.05) * 6000)  # 900
    account = option_risk.account_summary(state, ["o1", "o2"])
    assert account["greeks"]["delta_usd"] == pytest.approx(0.0)
    assert account["margin_in_use_usd"] == pytest.approx(o2["margin_in_use_usd"])
    assert account["open_option_positions"] == 2
