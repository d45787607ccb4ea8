"""A whole config replayed as the daemon runs it: every strategy's sleeve in one state, on one
clock (README "Backtesting").

The daemon's account is the sum of its sleeves: the account-wide rules (the position and
exposure caps, the daily loss, the kill switch, the options limits) judge that sum, and a
sleeve's fill can be refused, or its position closed, because of the others. Replaying each
strategy alone cannot show that, so a config of several strategies is replayed together:

- each strategy keeps its own clock (the bars of its timeframe, the daily options step) and
  gives ``engine.step`` at its ticks exactly what it gives when replayed alone
  (``runner.SpotLeg``, ``options_runner.OptionsLeg``);
- the joint clock is the union of those ticks; at each, one ``step`` on the one state takes
  the intents, marks, bars, chains and delivery prices of the strategies ticking then, with
  every configured sleeve taking part (``rules`` names them all, as the daemon's do): a
  symbol marked by two strategies keeps the newer mark;
- as the daemon's fetch step does every cycle, every held symbol is marked at its ticker
  (``source.fetch_prices``) and every held option leg at the chain of then
  (``OptionsLeg.between``), also at ticks that are not its strategy's;
- every step's events go to the strategy they name, whether it ticked then or not (the
  account's blocks refuse every sleeve's entries); each strategy's equity is taken at its
  own ticks.

There is no skipping of quiet ticks here (backtest/skip.py reasons about one sleeve): a
joint run steps every tick of the union, as ``replay_spot(reference=True)`` does for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from backtest import notes
from backtest.options_runner import CheckerMarket, OptionsLeg
from backtest.result import BacktestResult
from backtest.runner import SpotLeg, StepInputs, check_span, gross, load_spot
from market.base import MarketSource
from scheduler import engine_rules
from scheduler.config import Config
from scheduler.engine.errors import ConfigError
from scheduler.engine.models import State, new_sleeve, utc_from_ms
from scheduler.engine.step import Event, Mark, step


class Leg(Protocol):
    n: int
    ticks: Any  # the leg's tick times (ms), ascending
    rules: Any

    def inputs(self, k: int, state: State) -> StepInputs: ...
    def between(self, T: int, state: State) -> StepInputs: ...
    def take(self, events: list[Event], now: Any) -> None: ...
    def after(self, k: int, state: State) -> None: ...
    def result(self, state: State, run_notes: tuple[str, ...]) -> BacktestResult: ...


def replay_together(config: Config, source: MarketSource, options_source: Any, start_ms: int, end_ms: int, *,
                    progress: Callable[[int, int], None] | None = None) -> list[BacktestResult]:
    """Every strategy of ``config`` replayed together over [start_ms, end_ms]: one result per
    strategy, in the config's order, each its sleeve's share of the one run."""
    if not config.strategies:
        raise ConfigError(["the config has no strategies to replay"])
    check_span(config.strategies, start_ms, end_ms)
    legs: list[Leg] = []
    market_rules: dict[str, Any] = {}
    chains = CheckerMarket(source, options_source) if options_source is not None else None
    for s in config.strategies:
        if s.type == "options":
            legs.append(OptionsLeg(config, s, source, options_source, start_ms, end_ms, market=chains))
        else:
            market = load_spot(source, s, start_ms, end_ms, config.runner.candles_limit)
            market_rules.update(market.rules)
            legs.append(SpotLeg(config, s, market, start_ms, end_ms))
    state = State()
    for s in config.strategies:
        state.sleeves[s.id] = new_sleeve(s.id, "options" if s.type == "options" else "spot", s.capital)
    rules = {s.id: leg.rules for s, leg in zip(config.strategies, legs, strict=True)}
    option_rules = {s.id: leg.option_rules for s, leg in zip(config.strategies, legs, strict=True)
                    if isinstance(leg, OptionsLeg)}
    account, limits = engine_rules.account_rules(config), engine_rules.account_option_limits(config)
    clock = sorted({int(t) for leg in legs for t in leg.ticks})
    at = [0] * len(legs)  # per leg: its next tick
    for c, T in enumerate(clock):
        now = utc_from_ms(T)
        # every held symbol at its ticker, as the daemon's fetch step prices them each cycle
        held = sorted({sym for sl in state.sleeves.values() for sym in sl.positions})
        got = StepInputs(marks={sym: Mark(p, now) for sym, p in
                                (source.fetch_prices(held, now_ms=T).items() if held else ()) if p})
        ticking = []
        for j, leg in enumerate(legs):
            k = at[j]
            if k < leg.n and int(leg.ticks[k]) == T:
                got.add(leg.inputs(k, state))
                ticking.append(j)
            else:
                got.add(leg.between(T, state))
        events = step(state, got.intents, got.marks, rules, market_rules, now, c + 1, bars=got.bars,
                      account_rules=account, option_intents=got.option_intents, option_quotes=got.option_quotes,
                      index_prices=got.index_prices, delivery_prices=got.delivery_prices,
                      option_rules=option_rules, account_option_limits=limits)
        for leg in legs:
            leg.take(events, now)
        for j in ticking:
            legs[j].after(at[j], state)
            at[j] += 1
        if progress is not None:
            progress(c + 1, len(clock))
    return [leg.result(state, notes.together(config)) for s, leg in zip(config.strategies, legs, strict=True)]


def run_together(config: Config, source: MarketSource, start_ms: int, end_ms: int, *,
                 options_source: Any = None, progress: Callable[[int, int], None] | None = None
                 ) -> list[tuple[BacktestResult, BacktestResult]]:
    """(net, gross) per strategy of ``config`` replayed together: the config's costs, then the
    same joint run without fees and slippage."""
    net = replay_together(config, source, options_source, start_ms, end_ms, progress=progress)
    costless = replay_together(gross(config), source, options_source, start_ms, end_ms)
    return list(zip(net, costless, strict=True))

