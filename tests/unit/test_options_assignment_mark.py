"""An assigned put's coin is marked at the step's own mark of the spot market, not at the
delivery price (scheduler/engine/option_book.py, OptionDesk._coin_mark): the delivery price
is the index's average of the 30 minutes before expiry, the step's mark is the cycle's price
that every other holding of the coin is valued at."""

from __future__ import annotations

from datetime import timedelta

from scheduler.engine.fills import Costs
from scheduler.engine.models import State, new_sleeve
from scheduler.engine.option_book import OptionDesk
from scheduler.engine.option_fills import OptionLimits
from scheduler.engine.step import Mark, SleeveRules, _Book, sleeve_equity
from tests.unit.test_wheel_assignment import EXP_MS, EXPIRY, LOOSE, SPOT, T0, go, leg

DELIVERY = 50_000.0
CYCLE_PRICE = 49_000.0  # the step's BTC/USDT mark, an hour after the expiry


def _short_put_state() -> State:
    state = State()
    state.sleeves["o1"] = new_sleeve("o1", "options", 10_000.0)
    go(state, T0, legs=[leg("sell", 55_000, "put", assign=True)], coin=0.01, index=55_000.0)
    return state


def _settle(state: State, spot_marks: dict[str, Mark] | None) -> None:
    now = EXPIRY + timedelta(hours=1)
    book = _Book(state, {"o1": SleeveRules(costs=Costs(0.001, 0.0), max_drawdown_pct=1e6)}, LOOSE, {}, now, 2)
    desk = OptionDesk(book, {}, {}, {}, {"BTC": {EXP_MS: DELIVERY}}, OptionLimits(), sleeve_equity, lambda: None,
                      spot_marks=spot_marks)
    desk.settle(state.sleeves["o1"])


def test_the_assigned_coin_is_marked_at_the_steps_mark_when_the_step_has_one() -> None:
    state = _short_put_state()
    _settle(state, {SPOT: Mark(CYCLE_PRICE, EXPIRY + timedelta(hours=1))})
    sleeve = state.sleeves["o1"]
    coin = sleeve.positions[SPOT]
    assert coin.quantity == 0.1 and coin.entry_price == DELIVERY  # bought at the delivery price
    assert coin.mark_price == CYCLE_PRICE and coin.mark_at == EXPIRY + timedelta(hours=1)
    assert sleeve_equity(sleeve) == sleeve.cash_usd + 0.1 * CYCLE_PRICE


def test_without_a_fresh_step_mark_the_coin_is_marked_at_the_delivery_price() -> None:
    for marks in (None, {SPOT: Mark(CYCLE_PRICE, EXPIRY - timedelta(hours=1))}, {SPOT: Mark(None, EXPIRY)},
                  {"ETH/USDT": Mark(3_000.0, EXPIRY)}):
        state = _short_put_state()
        _settle(state, marks)  # type: ignore[arg-type]
        assert state.sleeves["o1"].positions[SPOT].mark_price == DELIVERY, marks
