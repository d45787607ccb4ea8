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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from backtest import notes
from backtest.options_runner import CheckerMarket, OptionsLeg
from backtest.result import BacktestResult, Curve
from backtest.runner import SpotLeg, StepInputs, check_span, gross, load_spot
from market.base import MarketSource
from scheduler import engine_rules
from scheduler.config import Config
from scheduler.engine.errors import ConfigError, DataError
from scheduler.engine.models import State, new_sleeve, utc_from_ms
from scheduler.engine.risk import ACCOUNT
from scheduler.engine.step import Event, Mark, account_equity, step


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
    strategy, in the config's order, each its sleeve's share of the one run, then the whole
    account's (``strategy_id`` "account", ``kind`` "account")."""
    if not config.strategies:
        raise ConfigError(["the config has no strategies to replay"])
    check_span(config.strategies, start_ms, end_ms)
    legs: list[Leg] = []
    market_rules: dict[str, Any] = {}
    chains = CheckerMarket(source, options_source) if options_source is not None else None
    for s in config.strategies:
        with _naming(s.id):
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
    ids = [s.id for s in config.strategies]
    book: list[tuple[int, float | None, float]] = []  # per tick: the account's equity and exposure (USD)
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
        book.append((T, account_equity(state, ids), _held_usd(state)))
        if progress is not None:
            progress(c + 1, len(clock))
    results = []
    for s, leg in zip(config.strategies, legs, strict=True):
        with _naming(s.id):
            results.append(leg.result(state, notes.together(config)))
    return [*results, _account(config, results, book)]


@contextmanager
def _naming(strategy_id: str) -> Iterator[None]:
    """A strategy that cannot be replayed stops the joint run (its sleeve is part of the
    account): the error names it, and says how to replay the others."""
    how = (f"the config's strategies are replayed together, so {strategy_id} stops them all: fix its data or "
           f"range, remove it from the config, or replay the others one at a time with --strategy ID")
    try:
        yield
    except ConfigError as e:
        raise ConfigError([p if p.startswith(f"{strategy_id}:") else f"{strategy_id}: {p}" for p in e.problems]
                          + [how]) from None
    except DataError as e:
        text = str(e)
        raise DataError(f"{text if text.startswith(f'{strategy_id}:') else f'{strategy_id}: {text}'}; {how}") from None


def _account(config: Config, results: list[BacktestResult], book: list[tuple[int, float | None, float]]
             ) -> BacktestResult:
    """The whole account as one more result (``strategy_id`` "account", a reserved id): its
    equity, the sum of the sleeves after each step, on a regular grid of the finest
    strategy's step from the earliest start (each point the last step at or before it);
    every fill and round trip of the sleeves; the fees and slippage of all."""
    bar_ms = min(r.bar_ms for r in results)
    start_ms, end_ms = min(r.start_ms for r in results), max(r.end_ms for r in results)
    capital = float(sum(s.capital for s in config.strategies))
    grid = np.arange(start_ms, end_ms + 1, bar_ms, dtype=np.int64)
    if grid[-1] != end_ms:
        grid = np.append(grid, end_ms)
    times = np.array([start_ms] + [t for t, _, _ in book], dtype=np.int64)
    values, held = [capital], [0.0]
    for _, value, exposed in book:  # an unpriced step keeps the value before it
        values.append(values[-1] if value is None else value)
        held.append(exposed)
    at = np.searchsorted(times, grid, side="right") - 1
    equity = np.asarray(values)[at]
    exposure = np.divide(np.asarray(held)[at], equity, out=np.zeros(len(grid)), where=equity > 0)
    fills = sorted((f for r in results for f in r.fills), key=lambda f: int(f["at_ms"]))  # stable: a step's order
    trades = tuple(sorted((t for r in results for t in r.trades), key=lambda t: (t.exit_ms, t.entry_ms)))
    symbols = tuple(dict.fromkeys(sym for r in results for sym in r.symbols))
    # the costs the sleeves ran with: one set when they share it, else each strategy's by its id
    costs = dict(results[0].costs) if all(r.costs == results[0].costs for r in results) else {
        f"{r.strategy_id}.{k}": v for r in results for k, v in r.costs.items()}
    return BacktestResult(
        strategy_id=ACCOUNT, kind="account", strategy="(all strategies)", symbols=symbols,
        timeframe=next((r.timeframe for r in results if r.bar_ms == bar_ms and r.timeframe), None),
        bar_ms=bar_ms, start_ms=start_ms, end_ms=end_ms, initial_capital_usd=capital,
        equity=Curve(grid, equity),
        exposure=tuple(exposure.tolist()), trades=trades, fills=tuple(fills),
        fees_usd=float(sum(r.fees_usd for r in results)), slippage_usd=float(sum(r.slippage_usd for r in results)),
        costs=costs, source=results[0].source,
        notes=notes.together(config) + (f"the account's equity is the sum of the {len(results)} sleeves after each "
                                         f"step, taken every {_span(bar_ms)}",),
    )


def _span(ms: int) -> str:
    """``ms`` as "15 min", "1 h", "1 d"."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms / 1000:g} s"


def _held_usd(state: State) -> float:
    """The marked value of every position held: spot at its mark, option legs at theirs
    (absolute), as each sleeve's result measures its exposure."""
    total = 0.0
    for sleeve in state.sleeves.values():
        total += sum(p.quantity * (p.mark_price or 0.0) for p in sleeve.positions.values())
        total += sum(abs((p.mark_usd or 0.0) * p.quantity) for p in sleeve.option_positions)
    return total


def run_together(config: Config, source: MarketSource, start_ms: int, end_ms: int, *,
                 options_source: Any = None, progress: Callable[[int, int], None] | None = None
                 ) -> list[tuple[BacktestResult, BacktestResult]]:
    """(net, gross) per strategy of ``config`` replayed together: the config's costs, then the
    same joint run without fees and slippage."""
    net = replay_together(config, source, options_source, start_ms, end_ms, progress=progress)
    costless = replay_together(gross(config), source, options_source, start_ms, end_ms)
    return list(zip(net, costless, strict=True))

