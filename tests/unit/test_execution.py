"""scheduler/execution.py: how the daemon prices a cycle's orders at the fetched quotes,
through the real engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.engine.fills import Costs
from scheduler.engine.models import State, new_sleeve
from scheduler.engine.step import Mark, SleeveRules, SpotIntent, step
from scheduler.execution import at_market, name_no_quotes

NOW = datetime(2026, 3, 10, 10, 20, tzinfo=UTC)
CLOSED = NOW - timedelta(hours=10, minutes=20)  # close time of the last closed daily candle
QUOTE_MS = int((NOW - timedelta(seconds=3)).timestamp() * 1000)
QUOTES = {"BTC/USDT": {"bid": 145_000.0, "ask": 145_010.0, "last": 145_005.0, "at_ms": QUOTE_MS},
          "ETH/USDT": {"bid": None, "ask": None, "last": 2_000.0, "at_ms": QUOTE_MS}}


def test_orders_take_their_side_of_the_quote_and_holds_stay() -> None:
    buy = SpotIntent("a", "BTC/USDT", 1, 157_698.0, CLOSED, stop_price=157_698.0 * 0.85)
    sell = SpotIntent("b", "BTC/USDT", -1, 157_698.0, CLOSED)
    hold = SpotIntent("c", "BTC/USDT", 0, 157_698.0, CLOSED)
    last_only = SpotIntent("d", "ETH/USDT", 1, 2_100.0, CLOSED)
    priced, unquoted = at_market([buy, sell, hold, last_only], QUOTES)
    assert unquoted == {}
    at = datetime.fromtimestamp(QUOTE_MS / 1000, tz=UTC)
    assert (priced[0].price, priced[0].price_at) == (145_010.0, at)
    assert priced[0].stop_price == pytest.approx(145_010.0 * 0.85)  # the strategy's 15 % keeps its distance
    assert (priced[1].price, priced[1].price_at) == (145_000.0, at)
    assert priced[2] is hold
    assert priced[3].price == 2_000.0


@pytest.mark.parametrize("quotes", [None, {}, {"BTC/USDT": None},
                                    {"BTC/USDT": {"bid": 1.0, "ask": None, "last": None, "at_ms": QUOTE_MS}},
                                    {"BTC/USDT": {"bid": 1.0, "ask": 2.0, "last": 1.5}}])
def test_an_order_without_a_quote_is_rejected_no_quote_through_the_engine(quotes: dict | None) -> None:
    state = State(sleeves={"a": new_sleeve("a", "spot", 1000.0)})
    intents, unquoted = at_market([SpotIntent("a", "BTC/USDT", 1, 157_698.0, CLOSED)], quotes)
    assert intents[0].price is None and list(unquoted) == [("a", "BTC/USDT")]
    rules = {"a": SleeveRules(costs=Costs(0.001, 0.0005), max_drawdown_pct=50.0, timeframe="1d")}
    events = step(state, intents, {"BTC/USDT": Mark(150_000.0, NOW)}, rules, {}, NOW, 1)
    name_no_quotes(events, unquoted)
    rejected = [e for e in events if e.kind == "rejected"]
    assert [e.data["code"] for e in rejected] == ["NO_QUOTE"]
    assert "no ask or last price for BTC/USDT" in rejected[0].data["detail"]
    assert state.sleeves["a"].positions == {} and state.sleeves["a"].cash_usd == 1000.0


def test_a_buy_fills_at_the_ask_plus_slippage_not_the_candle_close() -> None:
    state = State(sleeves={"a": new_sleeve("a", "spot", 1000.0)})
    intents, _ = at_market([SpotIntent("a", "BTC/USDT", 1, 157_698.0, CLOSED)], QUOTES)
    rules = {"a": SleeveRules(costs=Costs(0.001, 0.0005), max_drawdown_pct=50.0, timeframe="1d")}
    step(state, intents, {"BTC/USDT": Mark(145_005.0, NOW)}, rules, {}, NOW, 1)
    trade = state.sleeves["a"].trades[-1]
    assert trade.quote_price == 145_010.0 and trade.fill_price == pytest.approx(145_010.0 * 1.0005)
