"""Quantities are shown exactly as held (never 6 significant digits, never scientific notation),
in notifications, Telegram answers and the dashboard; prices keep their precision."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.engine.models import Position, State, new_sleeve
from scheduler.engine.step import Event
from scheduler.http_status import DASHBOARD_HTML
from scheduler.notify import commands, messages

NOW = datetime(2026, 1, 2, tzinfo=UTC)
CASES = [(61.99947, "61.99947"), (1e-07, "0.0000001"), (2e6, "2000000"), (1234567.123456789, "1234567.123456789"),
         (0.1 + 0.2, "0.3"), (3.0, "3"), (123456789.12345678, "123456789.12345678"), (1e22, "1" + "0" * 22),
         (0.000123456789, "0.000123456789"), (0.0001234567890123, "0.000123456789"), (1e-13, "0"), (-0.0, "0"), (0.5, "0.5")]


@pytest.mark.parametrize(("value", "text"), CASES)
def test_a_quantity_is_shown_as_held(value: float, text: str) -> None:
    assert messages.quantity(value) == text


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=0, max_value=1e15, allow_nan=False))
def test_a_quantity_reads_back_as_the_engines_rounded_value(value: float) -> None:
    text = messages.quantity(value)
    assert "e" not in text.lower() and (not text.endswith("0") or "." not in text)
    assert float(text) == round(value, messages.QUANTITY_DECIMALS)


@pytest.mark.parametrize(("value", "text"), [(66916.8612, "$66,916.8612"), (61.5, "$61.50"),
                                             (0.00001234, "$0.00001234"), (1e7, "$10,000,000.00"), (None, "unknown")])
def test_a_price_keeps_its_precision(value: float | None, text: str) -> None:
    assert messages.price(value) == text


def test_fill_lines_and_telegram_answers_show_the_exact_quantity() -> None:
    fill = {"side": "buy", "quantity": 61.99947, "symbol": "BTC/USDT", "fill_price": 0.00001234, "fee_usd": 0.01,
            "reason": "signal"}
    text = messages.commit_message(State(cycle_count=1), State(cycle_count=2), [Event("fill", "a", NOW, fill)], 3)
    assert text is not None and "a: BUY 61.99947 BTC/USDT @ $0.00001234 (fee $0.01)" in text
    answer = commands.trade_answer("long", "a", "BTC/USDT", {"ok": True, "events": [
        {"kind": "fill", **fill, "quantity": 2_500_000.5}]})
    assert answer.startswith("a: BUY 2500000.5 BTC/USDT @ $0.00001234")
    sleeve = new_sleeve("a", "spot", 1000)
    sleeve.positions["BTC/USDT"] = Position(symbol="BTC/USDT", quantity=0.00012345678, entry_price=66916.8612,
                                            cost_basis_usd=8.27, entry_fee_usd=0.01, opened_at=NOW,
                                            mark_price=67000.0)
    state = State(sleeves={"a": sleeve})
    assert commands.positions_answer(state, ["a"]).startswith("a: 0.00012345678 BTC/USDT @ $66,916.8612, now $8.27")


def _dashboard_function(name: str) -> str:
    page = DASHBOARD_HTML.decode()
    start = page.index(f"function {name}(")
    end = page.index("\n}\n", start) + 2
    return page[start:end]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (it runs the dashboard's formatter)")
def test_the_dashboards_formatter_agrees_with_the_python_helper() -> None:
    values = [v for v, _ in CASES] + [0.00012345678, 42.000000001, 1e21 * 3, 5e-7, 61.9994700000001]
    script = _dashboard_function("exact") + f"\nconsole.log(JSON.stringify({json.dumps(values)}.map(exact)));"
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout) == [messages.quantity(v) for v in values]


def test_the_dashboard_formats_quantities_and_prices_exactly() -> None:
    page = DASHBOARD_HTML.decode()
    assert not re.search(r"num\([^)]*(quantity|price)", page), "quantities and prices must use exact()"
    assert "exact(t.quantity)" in page and "exact(p.quantity)" in page and "exact(o.quantity)" in page
