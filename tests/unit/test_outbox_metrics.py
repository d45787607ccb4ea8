"""/metrics: the outbox per destination, and option greeks per strategy and for the account."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from scheduler import metrics

GREEKS = {"delta_usd": 120.5, "gamma_usd_per_1pct": 3.25, "vega_usd_per_vol_pt": -40.0, "theta_usd_per_day": 12.0,
          "delta_coin": {"BTC": 0.002}, "unpriced": 0}


def _status() -> dict:
    return {
        "last_cycle_at": None,
        "strategies": [{"id": "spot1", "options": None, "positions": [], "risk": {}},
                       {"id": "wheel", "options": {"greeks": GREEKS}, "positions": [], "risk": {}},
                       {"id": "new", "options": {"greeks": {**GREEKS, "delta_usd": None}}, "positions": [], "risk": {}}],
        "account": {"options": {"greeks": {**GREEKS, "delta_usd": 99.0}}},
        "notifications": {"enabled": True, "dropped": 4, "destinations": {
            "telegram:42": {"pending": 3, "delivered_total": 10, "failed_total": 2},
            "webhook": {"pending": 0, "delivered_total": 11, "failed_total": 0}}},
    }


def _families(text: bytes) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text.decode())}


def test_outbox_depth_and_delivery_counters_per_destination() -> None:
    fam = _families(metrics.render(_status(), metrics.Counters()))
    depth = {(s.labels["channel"], s.labels["destination"]): s.value for s in fam["go_trader_outbox_messages"]}
    assert depth == {("telegram", "telegram:42"): 3.0, ("webhook", "webhook"): 0.0}
    delivered = {s.labels["destination"]: s.value for s in fam["go_trader_notifications_delivered"]}
    assert delivered == {"telegram:42": 10.0, "webhook": 11.0}
    assert {s.labels["destination"]: s.value for s in fam["go_trader_notifications_failed"]}["telegram:42"] == 2.0
    assert fam["go_trader_outbox_dropped"][0].value == 4.0


def test_option_greeks_per_strategy_and_for_the_account() -> None:
    fam = _families(metrics.render(_status(), metrics.Counters()))
    assert [(s.labels, s.value) for s in fam["go_trader_option_delta_usd"]] == [({"strategy": "wheel"}, 120.5)]
    assert {s.labels["strategy"] for s in fam["go_trader_option_theta_usd_per_day"]} == {"wheel", "new"}
    assert fam["go_trader_option_vega_usd_per_vol_pt"][0].value == -40.0
    assert fam["go_trader_account_option_delta_usd"][0].value == 99.0
    assert fam["go_trader_account_option_gamma_usd"][0].value == 3.25


def test_no_notifications_section_renders_no_outbox_samples() -> None:
    status = _status()
    del status["notifications"]
    fam = _families(metrics.render(status, metrics.Counters()))
    assert fam["go_trader_outbox_messages"] == [] and fam["go_trader_outbox_dropped"] == []
