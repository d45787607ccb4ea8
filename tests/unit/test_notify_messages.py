"""The words of the notifications: a summary line of a sleeve that holds only option legs, and an
option fill at its premium in coin as Deribit quotes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.engine.models import OptionPosition, State, new_sleeve
from scheduler.engine.step import Event
from scheduler.notify.messages import event_line, summary_message

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _leg(seq: int) -> OptionPosition:
    return OptionPosition(id=f"o:{seq}", instrument="BTC-27MAR26-70000-P", underlying="BTC", option_type="put",
                          strike=70_000.0, expiry=NOW + timedelta(days=26), side="short", quantity=0.1,
                          entry_premium_coin=0.01, entry_premium_usd=700.0, entry_fee_usd=1.0,
                          entry_index_usd=70_000.0, opened_at=NOW, mark_usd=650.0)


def test_a_sleeve_with_only_option_legs_is_summarised_in_words() -> None:
    state = State()
    state.sleeves["o"] = new_sleeve("o", "options", 1000.0)
    state.sleeves["o"].option_positions = [_leg(1)]
    state.sleeves["o"].trade_count = 1
    line = summary_message(state, ["o"], NOW).splitlines()[-1]
    assert ", 1 trade, " in line and line.endswith("holding 1 option leg"), line
    state.sleeves["o"].option_positions.append(_leg(2))
    state.sleeves["o"].trade_count = 2
    line = summary_message(state, ["o"], NOW).splitlines()[-1]
    assert ", 2 trades, " in line and line.endswith("holding 2 option legs") and "holding ," not in line, line


def test_an_option_fill_is_told_at_its_premium_in_coin() -> None:
    fill = Event("fill", "o", NOW, {"side": "sell", "quantity": 0.1, "symbol": "BTC-27MAR26-70000-P",
                                    "fill_price": 4530.30697111231, "fee_usd": 0.5, "reason": "signal",
                                    "option": {"premium_coin": 0.0477, "underlying": "BTC"}})
    assert event_line(fill) == "o: SELL 0.1 BTC-27MAR26-70000-P @ 0.0477 BTC ($4,530.31 a contract) (fee $0.50)"
