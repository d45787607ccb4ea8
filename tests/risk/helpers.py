"""Builders shared by the risk-rule tests: states, rules, one step with a manual clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from scheduler.engine.fills import Costs
from scheduler.engine.market_rules import MarketRules
from scheduler.engine.models import Position, State, new_sleeve
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import Bar, Event, Mark, SleeveRules, SpotIntent, step
from scheduler.state_store import load_state, save_state

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a Wednesday, noon UTC
BTC, ETH, SOL = "BTC/USDT", "ETH/USDT", "SOL/USDT"
DEFAULT_COSTS = Costs(fee_rate=0.001, slippage_rate=0.0005)
FREE = Costs(fee_rate=0.0, slippage_rate=0.0)
MIN_NOTIONAL_USD = 5.0
FINE = {s: MarketRules(s, amount_step=1e-8, min_amount=1e-8, min_notional_usd=MIN_NOTIONAL_USD)
        for s in (BTC, ETH, SOL)}
#: Account rules that never bind: for tests about one sleeve's rules.
LOOSE = AccountRules(max_position_pct=1e9, max_position_usd=1e18, max_exposure_pct=1e9,
                     daily_loss_pct=100.0, portfolio_kill_pct=100.0)


def make_state(capitals: Mapping[str, float]) -> State:
    state = State()
    for sid, capital in capitals.items():
        state.sleeves[sid] = new_sleeve(sid, "spot", capital)
    return state


def rules_for(ids: Iterable[str], **kw: object) -> dict[str, SleeveRules]:
    kw.setdefault("costs", DEFAULT_COSTS)
    kw.setdefault("max_drawdown_pct", 60.0)
    return {sid: SleeveRules(**kw) for sid in ids}  # type: ignore[arg-type]


def hold(state: State, sid: str, symbol: str, quantity: float, mark: float | None, *, cash: float,
         at: datetime = T0) -> Position:
    """Give a sleeve ``cash`` and a position of ``quantity`` marked at ``mark`` (None: unpriced)."""
    sleeve = state.sleeves[sid]
    sleeve.cash_usd = cash
    entry = mark if mark else 1.0
    pos = Position(symbol=symbol, quantity=quantity, entry_price=entry, cost_basis_usd=quantity * entry,
                   entry_fee_usd=0.0, opened_at=at, mark_price=mark, mark_at=at if mark is not None else None)
    sleeve.positions[symbol] = pos
    return pos


def buy(sid: str, symbol: str, price: float | None, at: datetime, *, stop: float | None = None) -> SpotIntent:
    return SpotIntent(sid, symbol, 1, price, at, stop)


def sell(sid: str, symbol: str, price: float | None, at: datetime) -> SpotIntent:
    return SpotIntent(sid, symbol, -1, price, at)


def go(state: State, rules: Mapping[str, SleeveRules], now: datetime, *,
       intents: Sequence[SpotIntent] = (), prices: Mapping[str, float | None] | None = None,
       account_rules: AccountRules | None = None, bars: Mapping[tuple[str, str], Sequence[Bar]] | None = None,
       market: Mapping[str, MarketRules] | None = None, cycle: int = 1) -> list[Event]:
    """One step at ``now``; ``prices`` become marks taken at ``now``."""
    marks = {s: Mark(p, now) for s, p in (prices or {}).items()}
    return step(state, intents, marks, rules, FINE if market is None else market, now, cycle,
                bars=bars, account_rules=account_rules)


def restart(state: State, tmp_path: Path) -> State:
    """What a daemon restart does to the state: save it, then load it back."""
    path = tmp_path / "state.json"
    save_state(path, state)
    loaded = load_state(path)
    assert loaded is not None
    assert loaded.model_dump(mode="json") == state.model_dump(mode="json")
    return loaded


def of_kind(events: Sequence[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


def only(events: Sequence[Event], kind: str) -> Event:
    found = of_kind(events, kind)
    assert len(found) == 1, events
    return found[0]


def fills_of(events: Sequence[Event], sid: str | None = None, side: str | None = None) -> list[Event]:
    return [e for e in events if e.kind == "fill" and (sid is None or e.strategy_id == sid)
            and (side is None or e.data["side"] == side)]
