"""The backtester: one strategy of a config replayed through the daemon's engine.

It is the live engine replayed (issue 10, README "Backtesting"):

- the clock steps bar by bar on the strategy's timeframe: ticks at ``t0 + tf, t0 + 2 tf, ...
  <= end``, each tick T the close of the bar [T - tf, T); the strategy is due at a tick by the
  daemon's own rule (``interval_seconds``, 1 % slack), so a 1h strategy with interval 3600 s
  (or less) decides every bar;
- at a due tick the decision is the checker's on the candles closed at T
  (backtest/signals.py, which calls ``checkers.check_strategy.decide`` or its exact fast
  path); a check that would fail (stale candles after a gap) gives no intent;
- the order goes to ``engine.step`` at the ticker: the open of the candle starting at T
  (``SpotIntent.price``, ``price_at`` = T), with the config's slippage and fee, sizing,
  stops and risk rules, all from scheduler/engine_rules.py;
- every tick marks the position at that ticker (the last close when no candle starts at T,
  as in an outage of the data, where an order goes at that close as of its close time)
  and passes the bar that just closed for the protective stops (the engine fills at the
  stop, or at the open when the bar gapped through it).

``replay_spot`` calls ``step`` only on the ticks where something can happen (module
backtest/skip.py says which and why); ``reference=True`` calls it on every tick, and a test
pins the two to identical results. Options: backtest/options_runner.py.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from backtest import notes, skip
from backtest.result import BacktestResult, ClosedTrade, Curve
from backtest.signals import Decisions, decisions
from market.base import Candles, MarketSource, stale_limit
from scheduler import engine_rules
from scheduler.config import Config, ExchangeFees, ExecutionConfig, StrategyConfig
from scheduler.engine.errors import ConfigError, DataError
from scheduler.engine.models import State, new_sleeve, utc_from_ms, utc_iso
from scheduler.engine.step import Bar, Event, Mark, SpotIntent, sleeve_equity, step
from scheduler.engine.timeframes import first_open_at_or_after_ms, timeframe_ms

if TYPE_CHECKING:
    from scheduler.engine.market_rules import MarketRules

Progress = Callable[[int, int], None]  # (ticks done, ticks in all)


@dataclass(frozen=True)
class SpotMarket:
    """What a spot replay reads: every candle closed by the end (the warm-up included)."""

    candles: Candles
    candles_b: Candles | None
    rules: dict[str, MarketRules]
    source: str


@dataclass
class StepInputs:
    """What one tick gives ``engine.step``: the intents, marks and candles of the strategies
    ticking then (one strategy's, or several merged by ``add`` in a joint replay)."""

    intents: list[SpotIntent] = field(default_factory=list)
    marks: dict[str, Mark] = field(default_factory=dict)
    bars: dict[tuple[str, str], list[Bar]] = field(default_factory=dict)
    option_intents: list[Any] = field(default_factory=list)
    option_quotes: dict[str, Any] = field(default_factory=dict)
    index_prices: dict[str, float] = field(default_factory=dict)
    delivery_prices: dict[str, dict[int, float]] = field(default_factory=dict)

    def add(self, other: StepInputs) -> None:
        """Merge ``other`` in: a symbol marked by both keeps the newer mark (a 1h strategy's
        ticker, not a 1d one's last close), as the daemon marks every held symbol at its ticker."""
        self.intents += other.intents
        for symbol, mark in other.marks.items():
            mine = self.marks.get(symbol)
            if mine is None or mark.at > mine.at:
                self.marks[symbol] = mark
        self.bars.update(other.bars)
        self.option_intents += other.option_intents
        self.option_quotes.update(other.option_quotes)
        self.index_prices.update(other.index_prices)
        for underlying, prices in other.delivery_prices.items():
            self.delivery_prices.setdefault(underlying, {}).update(prices)


def with_costs(config: Config, *, fee_pct: float | None = None, slippage_pct: float | None = None,
               capital: float | None = None) -> Config:
    """``config`` with the taker fee of every exchange, the slippage or every strategy's
    capital replaced (the CLI's overrides; the gross run sets fee and slippage to 0). Each
    value is checked as the config file's own field is (type, bounds, finite): ConfigError
    names the option."""
    execution = config.execution
    if fee_pct is not None:
        fee_pct = _as_field(ExchangeFees, "taker_pct", fee_pct, "--fee-pct", "the taker fee in percent")
        fees = {k: v.model_copy(update={"taker_pct": fee_pct, "maker_pct": fee_pct}) for k, v in execution.fees.items()}
        execution = execution.model_copy(update={"fees": fees})
    if slippage_pct is not None:
        slippage_pct = _as_field(ExecutionConfig, "slippage_pct", slippage_pct, "--slippage-pct",
                                 "the slippage in percent")
        execution = execution.model_copy(update={"slippage_pct": slippage_pct})
    strategies = config.strategies
    if capital is not None:
        capital = check_capital(capital)
        strategies = [s.model_copy(update={"capital": capital}) for s in strategies]
    return config.model_copy(update={"execution": execution, "strategies": strategies})


def check_capital(capital: float) -> float:
    """``--capital`` checked as a strategy's ``capital`` in a config file (ConfigError names it)."""
    return _as_field(StrategyConfig, "capital", capital, "--capital", "each strategy's starting cash in USD")


def _as_field(model: type[BaseModel], name: str, value: float, option: str, what: str) -> float:
    """``value`` validated as field ``name`` of ``model`` (model_copy would take it unchecked)."""
    info = model.model_fields[name]
    try:
        return TypeAdapter(Annotated[info.annotation, info], config=ConfigDict(allow_inf_nan=False)).validate_python(
            value, strict=True)
    except ValidationError as e:
        bounds = [f"{sign} {getattr(m, key):g}" for m in info.metadata
                  for key, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if hasattr(m, key)]
        raise ConfigError([f"{option} {value!r}: {e.errors()[0]['msg'].lower()}; it is {what}, a finite number "
                           + " and ".join(bounds)]) from None


def gross(config: Config) -> Config:
    """The same config without fees and slippage (the report's gross run): spot fees and
    slippage 0, and for options Deribit's trade and delivery fees and the no-side spread 0."""
    o = config.options
    fees = o.fees.model_copy(update={"trade_pct": 0.0, "delivery_pct": 0.0})
    options = o.model_copy(update={"fees": fees, "no_side_spread_pct": 0.0})
    return with_costs(config, fee_pct=0.0, slippage_pct=0.0).model_copy(update={"options": options})


#: the most bars (ticks) one replay takes: its working arrays hold a few hundred bytes a bar
MAX_BARS = 5_000_000


def check_span(strategies: Sequence[StrategyConfig], start_ms: int, end_ms: int) -> None:
    """Refuse a range no replay can hold: one starting before 1970 (no market data is there, and
    far enough back its dates overflow), or one longer than MAX_BARS of a strategy's step (its
    timeframe; a day for options)."""
    if start_ms < 0:
        raise ConfigError(["the run would start before 1970-01-01, where there is no market data; give a later "
                           "--start or fewer --days"])
    for s in strategies:
        tf = "1d" if s.type == "options" else s.timeframe or "1h"
        bars = (end_ms - start_ms) // timeframe_ms(tf)
        if bars > MAX_BARS:
            raise ConfigError([f"{s.id}: the run from {utc_iso(utc_from_ms(start_ms))} to {utc_iso(utc_from_ms(end_ms))} "
                               f"holds {bars:,} {tf} bars, more than the {MAX_BARS:,} one replay takes; give a "
                               "shorter range or a longer timeframe"])


def find_strategy(config: Config, strategy_id: str) -> StrategyConfig:
    for s in config.strategies:
        if s.id == strategy_id:
            return s
    raise ConfigError([f"--strategy {strategy_id!r} is not in the config; its strategies are "
                       f"{', '.join(s.id for s in config.strategies)}"])


def load_spot(source: MarketSource, s: StrategyConfig, start_ms: int, end_ms: int, warmup_bars: int) -> SpotMarket:
    """Every candle of the strategy's symbols closed by ``end_ms`` (and the one starting then),
    from ``warmup_bars`` before
    ``start_ms``; the market rules where the source has them (else the engine's defaults,
    as the daemon when its fetch step got none)."""
    tf = s.timeframe or "1h"
    bar = timeframe_ms(tf)
    limit = max(1, (end_ms - start_ms) // bar + warmup_bars + 3)
    # one bar past the end: the candle starting at the last tick is its ticker (its open is
    # known then; decisions only ever see the candles closed at their tick)
    upto = end_ms + bar
    candles = source.fetch_candles(s.symbols[0], tf, now_ms=upto, limit=limit).closed_at(upto)
    candles_b = (source.fetch_candles(s.symbols[1], tf, now_ms=upto, limit=limit).closed_at(upto)
                 if len(s.symbols) > 1 else None)
    if not len(candles) or int(candles.ts_ms[-1]) + bar <= start_ms:  # the newest candle closed before the start
        have = (f"the {limit} candles before the end run from {utc_from_ms(int(candles.ts_ms[0]))} to "
                f"{utc_from_ms(int(candles.ts_ms[-1]))}" if len(candles) else "it has none before the end")
        raise DataError(f"{source.name}: no {s.symbols[0]} {tf} candles between the start {utc_from_ms(start_ms)} and the end "
                        f"{utc_from_ms(end_ms)} of the run ({have}); choose --start/--end inside the data")
    try:
        rules = source.fetch_market_rules(list(s.symbols[:1]))
    except DataError:
        rules = {}
    return SpotMarket(candles, candles_b, rules, source.name)


def _ticks(start_ms: int, end_ms: int, timeframe: str) -> tuple[np.ndarray, int]:
    """The ticks after the first bar boundary at or after the start, up to the end, on the
    timeframe's candle grid (weeks open on Mondays), and that boundary."""
    bar_ms = timeframe_ms(timeframe)
    t0 = first_open_at_or_after_ms(timeframe, start_ms)
    return np.arange(t0 + bar_ms, end_ms + 1, bar_ms, dtype=np.int64), t0


def _due_every(interval_s: int, bar_ms: int) -> int:
    """Every how many ticks the daemon's is_due would run the strategy (scheduler/daemon.py: due
    when the interval has passed since the last run, a moment early, 1 % or at most 5 s,
    counting as on time). The ticks are a regular grid: the strategy runs on ticks 0, every,
    2 every, ..."""
    slack_ms = min(5.0, interval_s * 0.01) * 1000
    return max(1, int(np.ceil((interval_s * 1000 - slack_ms) / bar_ms)))


def replay_spot(config: Config, s: StrategyConfig, market: SpotMarket, start_ms: int, end_ms: int, *,
                reference: bool = False, per_bar: bool = False, progress: Progress | None = None,
                decided: Decisions | None = None, on_event: Callable[[Event], None] | None = None) -> BacktestResult:
    """Replay spot strategy ``s`` of ``config`` over [start_ms, end_ms] on ``market``.

    ``reference``: call ``step`` on every tick (the plain run the fast one must equal);
    ``per_bar``: decide with the checker's code on every bar (no fast indicator path);
    ``on_event`` sees every engine event (blocks, rejections, holds too). A start before the
    data of the strategy's symbols moves to where it begins; that, the checks that failed and
    the orders refused are the result's notes (backtest/notes.py), and a run where every
    check failed is refused (DataError)."""
    return replay_spot_state(config, s, market, start_ms, end_ms, reference=reference, per_bar=per_bar,
                             progress=progress, decided=decided, on_event=on_event)[0]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the duration, then as it was. A replay allocates
    thousands of containers that live to its end (trades, round trips), and the collector's
    passes over them and the rest of the heap free nothing: ~10 ms of a 75,000-bar run
    (bench/bench_backtest.py's). A step leaves no cycle (tests/unit/test_engine.py), so
    reference counting frees all else at once; the collector, back on, takes anything left."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def replay_spot_state(config: Config, s: StrategyConfig, market: SpotMarket, start_ms: int, end_ms: int, *,
                      reference: bool = False, per_bar: bool = False, progress: Progress | None = None,
                      decided: Decisions | None = None,
                      on_event: Callable[[Event], None] | None = None) -> tuple[BacktestResult, State]:
    """``replay_spot`` and the engine state it ended with."""
    with _gc_paused():
        return _replay(config, s, market, start_ms, end_ms, reference, per_bar, progress, decided, on_event)


def _replay(config: Config, s: StrategyConfig, market: SpotMarket, start_ms: int, end_ms: int, reference: bool,
            per_bar: bool, progress: Progress | None, decided: Decisions | None,
            on_event: Callable[[Event], None] | None) -> tuple[BacktestResult, State]:
    leg = SpotLeg(config, s, market, start_ms, end_ms, per_bar=per_bar, decided=decided)
    state = State()
    state.sleeves[s.id] = new_sleeve(s.id, "spot", s.capital)
    rules = {s.id: leg.rules}
    account = engine_rules.account_rules(config)
    n = leg.n
    plan = None if reference else skip.Planner(leg.skip_ticks(), leg.rules, account, s)
    k = 0
    report_every = max(1, n // 100)
    while k < n:
        got = leg.inputs(k, state)
        events = step(state, got.intents, got.marks, rules, market.rules, leg.now(k), k + 1, bars=got.bars,
                      account_rules=account)
        leg.take(events, leg.now(k))
        leg.after(k, state)
        if on_event is not None:
            for e in events:
                on_event(e)
        nxt = k + 1 if plan is None else plan.advance(k, state, s.id)
        if nxt > k + 1:  # quiet ticks: nothing changes but the marks (skip.py); the same numbers as a step
            leg.quiet_span(k, nxt, state)
        if progress is not None and (nxt // report_every != k // report_every or nxt >= n):
            progress(min(nxt, n), n)
        k = nxt
    return leg.result(state, notes.alone(config, s)), state


class SpotLeg:
    """One spot strategy's part of a replay: its clock (the ticks of its timeframe), what each
    of its ticks gives ``engine.step`` (``inputs``), and what the result is built from (the
    fills and refusals of its sleeve, ``take``; its equity and exposure at its ticks,
    ``after``). ``_replay`` drives one alone (skipping quiet ticks), backtest/joint.py several
    on one clock."""

    def __init__(self, config: Config, s: StrategyConfig, market: SpotMarket, start_ms: int, end_ms: int, *,
                 per_bar: bool = False, decided: Decisions | None = None) -> None:
        self.config, self.s, self.market = config, s, market
        self.tf = tf = s.timeframe or "1h"
        self.bar_ms = bar_ms = timeframe_ms(tf)
        candles, self.symbol = market.candles, s.symbols[0]
        start_ms, self.data_notes = _clamp_to_data(s, market, start_ms)
        self.data_notes += _warmup_note(config, s)
        ticks, self.t0 = _ticks(start_ms, end_ms, tf)
        if not len(ticks):
            raise ConfigError([f"the run from {utc_from_ms(start_ms)} to {utc_from_ms(end_ms)} holds no whole {tf} "
                               "bar; give a later --end or an earlier --start"])
        self.ticks, self.n = ticks, len(ticks)
        self.close_ms = close_ms = candles.ts_ms + bar_ms
        last_closed = np.searchsorted(close_ms, ticks, side="right") - 1  # per tick: the newest closed bar
        at = np.searchsorted(candles.ts_ms, ticks)  # per tick: the candle starting at the tick, if any
        self.starts = starts = (at < len(candles)) & (candles.ts_ms[np.minimum(at, len(candles) - 1)] == ticks)
        first_bar = int(np.searchsorted(close_ms, ticks[0], side="left"))
        if decided is None:
            decided = decisions(s.strategy_name, candles, s.params, market.candles_b,
                                limit=config.runner.candles_limit, first=max(0, first_bar - 1), per_bar=per_bar)
        self.decided = decided
        # the price at each tick, the replayed daemon's ticker (market.files_source.fetch_quotes):
        # the open of the candle starting then, as of the tick; in an outage of the data (none
        # starts then) the last close, as of its close; no order price once that candle opened
        # more than max_stale_candles bars before (the position stays marked at it)
        safe_at = np.minimum(at, len(candles) - 1)
        self.newest = newest = np.maximum(last_closed, 0)
        self.mark_px = np.where(starts, candles.open[safe_at], candles.close[newest])
        self.mark_at = np.where(starts, ticks, close_ms[newest])
        stale = stale_limit(config.market)
        quoted = starts | ((last_closed >= 0) & ((ticks - candles.ts_ms[newest]) // bar_ms <= stale))
        self.ticker = np.where(quoted, self.mark_px, np.nan)
        # a check of candles more than max_stale_candles bars behind the clock fails (market.base.check_fresh)
        self.fresh = fresh = (last_closed >= 0) & ((ticks - bar_ms - candles.ts_ms[newest]) // bar_ms <= stale)
        self.every = every = _due_every(config.interval_for(s), bar_ms)
        self.due = due = np.zeros(len(ticks), dtype=bool)
        due[::every] = True
        self.sig = np.where(due & fresh, decided.signal[newest], 0).astype(np.int8)
        # a bar is passed for the stops at the tick it closes at
        self.new_bar = (last_closed >= 0) & (close_ms[newest] == ticks)
        self.tally = _check_tally(candles, decided, ticks, due, fresh, last_closed, stale)
        self.tally.raise_if_nothing_decided(s.id, int(ticks[0]), int(ticks[-1]))
        self.rules = engine_rules.sleeve_rules(config, s)
        self.fills: list[dict[str, Any]] = []
        self.equity = np.empty(self.n)
        self.exposure = np.empty(self.n)
        self._quiet: list[tuple[int, int, float, float, float]] = []  # (from, to, cash, quantity, equity)

    def skip_ticks(self) -> skip.Ticks:
        """What backtest/skip.py's planner reads of this leg."""
        c, newest = self.market.candles, self.newest
        bar_min = np.where(self.new_bar, np.minimum(c.open, c.low)[newest], np.inf)
        on = self.due & self.fresh
        return skip.Ticks(self.ticks, self.mark_px, self.mark_at, self.new_bar, c.ts_ms[newest], bar_min,
                          on & (self.sig == 1), on & (self.sig == -1))

    def now(self, k: int) -> datetime:
        return utc_from_ms(int(self.ticks[k]))

    def _intent(self, k: int, i: int, now: datetime) -> SpotIntent:
        """The checker's decision priced as the daemon prices it (scheduler/execution.py): a
        hold keeps the checker's price (the last close, at its close time); a buy or sell goes
        at the ticker (the open of the candle starting at the tick, as of the tick), none when
        in an outage of the data at the last close as of its close (the engine refuses it once
        older than ``max_quote_age``), none once the data is stale; a strategy's stop keeps its
        distance from the price. ``now``: the tick's time."""
        sid, sym, candles, decided = self.s.id, self.symbol, self.market.candles, self.decided
        signal, close, stop = int(decided.signal[i]), float(candles.close[i]), float(decided.stop[i])
        stop = stop if math.isfinite(stop) else None
        if signal == 0:
            return SpotIntent(sid, sym, 0, close, utc_from_ms(int(self.close_ms[i])), stop)
        price = float(self.ticker[k])
        if not math.isfinite(price):
            return SpotIntent(sid, sym, signal, None, utc_from_ms(int(self.close_ms[i])), None)
        at = now if self.starts[k] else utc_from_ms(int(self.mark_at[k]))
        return SpotIntent(sid, sym, signal, price, at, stop * price / close if stop is not None else None)

    def inputs(self, k: int, state: State) -> StepInputs:
        """Tick ``k``'s intent (when the strategy is due and its candles fresh), the mark of its
        symbol, and the bar that just closed (for the stops)."""
        T = int(self.ticks[k])
        now = utc_from_ms(T)
        got = StepInputs()
        if self.due[k] and self.fresh[k]:
            got.intents.append(self._intent(k, int(self.newest[k]), now))
        marked_at = int(self.mark_at[k])
        got.marks[self.symbol] = Mark(float(self.mark_px[k]), now if marked_at == T else utc_from_ms(marked_at))
        if self.new_bar[k]:
            i, c = int(self.newest[k]), self.market.candles
            got.bars[(self.symbol, self.tf)] = [Bar(int(c.ts_ms[i]), float(c.open[i]), float(c.high[i]),
                                                    float(c.low[i]), float(c.close[i]))]
        return got

    def between(self, T: int, state: State) -> StepInputs:
        """A joint replay's tick that is not this leg's: no bar of its timeframe closes then,
        and its held symbol is marked with every held symbol (backtest/joint.py)."""
        return StepInputs()

    def take(self, events: list[Event], now: datetime) -> None:
        """A step's events for this leg's sleeve: its fills, and the orders refused."""
        _collect(self.fills, events, self.s.id)
        for e in events:
            if e.kind == "rejected" and e.strategy_id == self.s.id:
                self.tally.refusal(int(now.timestamp() * 1000), str(e.data.get("code")), str(e.data.get("detail")))

    def after(self, k: int, state: State) -> None:
        """The sleeve after tick ``k``'s step: its run time, equity and exposure."""
        sleeve = state.sleeves[self.s.id]
        if self.due[k]:
            sleeve.last_run_at = self.now(k)
        value = sleeve_equity(sleeve)
        self.equity[k] = value if value is not None else (self.equity[k - 1] if k else self.s.capital)
        pos = sleeve.positions.get(self.symbol)
        self.exposure[k] = (pos.quantity * pos.mark_price / self.equity[k]) \
            if pos and pos.mark_price and self.equity[k] else 0.0

    def quiet_span(self, k: int, nxt: int, state: State) -> None:
        """Ticks k+1 .. nxt-1 were quiet (skip.py applied them): their figures, and the last run."""
        sleeve = state.sleeves[self.s.id]
        pos = sleeve.positions.get(self.symbol)
        self._quiet.append((k + 1, nxt, sleeve.cash_usd, pos.quantity if pos is not None else 0.0,
                            float(self.equity[k])))
        ran = (nxt - 1) // self.every * self.every  # the last run among the quiet ticks, if any
        if ran > k:
            sleeve.last_run_at = utc_from_ms(int(self.ticks[ran]))

    def result(self, state: State, run_notes: tuple[str, ...]) -> BacktestResult:
        """The leg's result; ``run_notes`` say how it was replayed (alone, or with others)."""
        _fill_quiet(self._quiet, self.mark_px, self.equity, self.exposure)
        self._quiet = []
        s, config, fills = self.s, self.config, self.fills
        costs = {"fee_pct": config.fees_for(s).taker_pct, "slippage_pct": config.execution.slippage_pct}
        times = np.concatenate(([self.t0], self.ticks))  # the run's equity points: the start, then every tick
        bench = _buy_and_hold(self.ticker, self.mark_px, times, s.capital, self.rules.costs.fee_rate,
                              self.rules.costs.slippage_rate)
        return BacktestResult(
            strategy_id=s.id, kind="spot", strategy=s.strategy_name, symbols=tuple(s.symbols), timeframe=self.tf,
            bar_ms=self.bar_ms, start_ms=int(self.t0), end_ms=int(self.ticks[-1]),
            initial_capital_usd=float(s.capital), equity=Curve(times, np.concatenate(([s.capital], self.equity))),
            exposure=(0.0, *self.exposure.tolist()), trades=closed_trades(fills), fills=tuple(fills),
            fees_usd=float(sum(f["fee_usd"] for f in fills)), slippage_usd=slippage_usd(fills),
            benchmark=bench, params=dict(s.params), costs=costs, source=self.market.source,
            notes=run_notes + self.data_notes + self.tally.notes(),
        )


def _clamp_to_data(s: StrategyConfig, market: SpotMarket, start_ms: int) -> tuple[int, tuple[str, ...]]:
    """The run's start: ``start_ms``, or where the data of all the strategy's symbols starts
    when that is later (the bars before it hold no price: a flat stretch there would skew
    every annualised figure), with a note saying so."""
    firsts = [(int(c.ts_ms[0]), sym) for c, sym in ((market.candles, s.symbols[0]),
                                                    (market.candles_b, s.symbols[-1])) if c is not None and len(c)]
    if not firsts or max(firsts)[0] <= start_ms:
        return start_ms, ()
    first_ms, symbol = max(firsts)
    return first_ms, (f"the {symbol} {s.timeframe or '1h'} data starts at {notes.when(first_ms)}, after the "
                      f"requested start {notes.when(start_ms)}: the run starts there",)


def _warmup_note(config: Config, s: StrategyConfig) -> tuple[str, ...]:
    """A note when the strategy's parameters need more closed candles for a signal than the
    checker is given (``runner.candles_limit``): it holds on every bar, in the daemon too."""
    from strategies.api import min_bars
    from strategies.catalog import CATALOG

    if s.strategy_name not in CATALOG:
        return ()
    need, have = min_bars(s.strategy_name, s.params), config.runner.candles_limit
    if need <= have:
        return ()
    return (f"{s.strategy_name} with these parameters needs {need:,} closed candles for a signal, and the checker "
            f"is given runner.candles_limit = {have:,}: it never leaves its warm-up, so it cannot trade (the daemon's "
            "checker neither); shorten its windows, or raise runner.candles_limit (at most 1,000)",)


def _check_tally(candles: Candles, decided: Decisions, ticks: np.ndarray, due: np.ndarray, fresh: np.ndarray,
                 last_closed: np.ndarray, stale_limit: int) -> notes.Tally:
    """The checks of the due ticks and those that failed: stale candles (the daemon's
    ``check_fresh``) or the checker's own DataError on that bar."""
    from market.base import check_fresh

    tally = notes.Tally()
    tally.checked(int(due.sum()))
    stale = np.flatnonzero(due & ~fresh)
    if len(stale):
        k = int(stale[0])
        reason = f"the candles are more than {stale_limit} bars behind the clock"
        try:
            check_fresh(candles.head(max(int(last_closed[k]) + 1, 0)), int(ticks[k]), stale_limit)
        except DataError as e:
            reason = str(e)
        tally.check_failed(int(ticks[k]), reason, len(stale))
    if decided.failed:
        bad = np.zeros(len(candles), dtype=bool)
        bad[list(decided.failed)] = True
        errored = np.flatnonzero(due & fresh & bad[np.maximum(last_closed, 0)])
        if len(errored):
            k = int(errored[0])
            tally.check_failed(int(ticks[k]), decided.failed[int(last_closed[k])], len(errored))
    return tally


def _fill_quiet(quiet: list[tuple[int, int, float, float, float]], mark_px: np.ndarray, equity: np.ndarray,
                exposure: np.ndarray) -> None:
    """The quiet ticks' equity and exposure, all spans at once: held, cash + quantity x mark
    (``sleeve_equity``'s arithmetic); flat, the equity of the step before."""
    if not quiet:
        return
    lo, hi, cash, qty, flat = (np.array(col) for col in zip(*quiet, strict=True))
    lens = hi - lo
    idx = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo, lens)
    held = np.repeat(qty > 0, lens)
    q, px = np.repeat(qty, lens), mark_px[idx]
    value = np.where(held, np.repeat(cash, lens) + q * px, np.repeat(flat, lens))
    equity[idx] = value
    exposure[idx] = np.divide(q * px, value, out=np.zeros(len(idx)), where=held)


def _collect(fills: list[dict[str, Any]], events: list[Event], strategy_id: str) -> None:
    """The fill events of ``strategy_id`` as the result's fill records (the time as text and in ms)."""
    when: datetime | None = None  # a step's events share its time: each conversion is done once
    for e in events:
        if e.kind == "fill" and e.strategy_id == strategy_id:
            if e.at is not when:
                when, text, ms = e.at, utc_iso(e.at), int(e.at.timestamp() * 1000)
            fills.append({"strategy_id": e.strategy_id, "at": text, "at_ms": ms, **e.data})


def _buy_and_hold(ticker: np.ndarray, mark_px: np.ndarray, times: np.ndarray, capital: float, fee: float,
                  slip: float) -> Curve:
    """Buy the first symbol at the first ticker the strategy could have filled at (slippage and
    fee paid), hold, sell at the end (costs paid again): one point per equity time (the start,
    then each tick: ``ticker`` and ``mark_px`` are per tick)."""
    first = np.flatnonzero(np.isfinite(ticker))
    if not len(first):
        return Curve.of(())
    f = int(first[0])
    qty = capital / (ticker[f] * (1 + slip) * (1 + fee))
    values = np.full(len(times), float(capital))
    values[f + 1:] = qty * mark_px[f:]
    values[-1] = qty * mark_px[-1] * (1 - slip) * (1 - fee)
    return Curve(times, values)


def slippage_usd(fills: list[dict[str, Any]]) -> float:
    """What the slippage cost: |fill - quote| x quantity over the fills that had a quote."""
    return float(sum(abs(f["fill_price"] - f["quote_price"]) * f["quantity"] for f in fills
                     if f.get("quote_price") and f.get("reason") != "expiry"))


def closed_trades(fills: list[dict[str, Any]]) -> tuple[ClosedTrade, ...]:
    """Round trips from the engine's fills, per symbol: the buys that opened a position and the
    sells that closed it (a part sale closes its share); P&L net of both fees."""
    out: list[ClosedTrade] = []
    open_: dict[str, dict[str, Any]] = {}
    for f in fills:
        if f.get("option"):
            continue  # option legs: backtest/options_runner.py builds their round trips
        sym = f["symbol"]
        if f["side"] == "buy":
            book = open_.setdefault(sym, {"qty": 0.0, "cost": 0.0, "fees": 0.0, "slip": 0.0, "at": f["at_ms"]})
            book["qty"] += f["quantity"]
            book["cost"] += f["quantity"] * f["fill_price"]
            book["fees"] += f["fee_usd"]
            book["slip"] += (f["fill_price"] - f["quote_price"]) * f["quantity"]
            continue
        book = open_.get(sym)
        if book is None or book["qty"] <= 0:
            continue
        share = min(1.0, f["quantity"] / book["qty"])
        entry_price = book["cost"] / book["qty"]
        fees = book["fees"] * share + f["fee_usd"]
        slip = book["slip"] * share + (f["quote_price"] - f["fill_price"]) * f["quantity"]
        out.append(ClosedTrade(symbol=sym, side="long", entry_ms=int(book["at"]), exit_ms=int(f["at_ms"]),
                               quantity=float(f["quantity"]), entry_price=float(entry_price),
                               exit_price=float(f["fill_price"]), pnl_usd=float(f["realized_pnl_usd"] or 0.0),
                               fees_usd=float(fees), slippage_usd=float(slip), exit_reason=str(f["reason"])))
        if share >= 1.0 - 1e-12:
            del open_[sym]
        else:
            for key in ("qty", "cost", "fees", "slip"):
                book[key] *= 1 - share
    return tuple(out)


def run(config: Config, s: StrategyConfig, source: MarketSource, start_ms: int, end_ms: int, *,
        progress: Progress | None = None, options_source: Any = None,
        with_gross: bool = True) -> tuple[BacktestResult, BacktestResult | None]:
    """(net, gross) runs of strategy ``s``: the config's costs, then fee and slippage 0
    (same data, same decisions: only the costs differ). ``with_gross=False``: the net run
    only, gross None (the walk-forward scores net)."""
    check_span([s], start_ms, end_ms)
    if s.type == "options":
        from backtest import options_runner

        net = options_runner.replay_options(config, s, source, options_source, start_ms, end_ms, progress=progress)
        if not with_gross:
            return net, None
        return net, options_runner.replay_options(gross(config), find_strategy(gross(config), s.id), source,
                                                  options_source, start_ms, end_ms)
    market = load_spot(source, s, start_ms, end_ms, config.runner.candles_limit)
    tf = s.timeframe or "1h"
    first = int(np.searchsorted(market.candles.ts_ms + timeframe_ms(tf), start_ms, side="left"))
    decided = decisions(s.strategy_name, market.candles, s.params, market.candles_b,
                        limit=config.runner.candles_limit, first=max(0, first - 1))
    net = replay_spot(config, s, market, start_ms, end_ms, progress=progress, decided=decided)
    if not with_gross:
        return net, None
    g = gross(config)
    return net, replay_spot(g, find_strategy(g, s.id), market, start_ms, end_ms, decided=decided)
