"""An options strategy of a config replayed through the engine (README "Backtesting").

The clock steps once a day at 10:00 UTC by default (``step_ms``/``offset_ms``): the real
Deribit files hold one chain a day, taken about 09:15 UTC, and a quote older than
``options.max_quote_age_s`` (1 h) does not fill, so a daily tick just after the snapshot
is the one at which the daemon could have traded on them. At each tick, as one daemon
cycle of this strategy:

- the chain available then (the files source's newest snapshot at or before the tick, or
  the synthetic chain), the index, DVOL and the spot candles, through
  ``checkers.check_options.decide`` (the checker's own code) with the sleeve's positions;
- its document validated as the daemon validates a checker's (``OptionsSignal``) and
  turned into the engine's intent (``scheduler.options_cycle.intent``);
- marks for the held and proposed instruments from that chain;
- delivery prices for expired options as the fetch step finds them
  (``market.prefetch._delivery``: the exchange's own, else the spot candles of the 30
  minutes before expiry; the files here have no minute candles, so on them an expired
  option waits, as the daemon's would);
- ``engine.step`` with the config's option rules (scheduler/engine_rules.py).

A check that fails (no chain at the tick, stale data) gives no intent and no new marks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from backtest import notes
from backtest.result import BacktestResult, ClosedTrade
from backtest.runner import StepInputs, slippage_usd
from market.base import MarketSource, stale_limit
from scheduler import engine_rules, options_cycle
from scheduler.config import Config, StrategyConfig
from scheduler.engine.errors import ConfigError, DataError, ExchangeError, GoTraderError
from scheduler.engine.models import State, new_sleeve, utc_from_ms, utc_iso
from scheduler.engine.option_fills import OptionMark
from scheduler.engine.step import Event, Mark, sleeve_equity, step
from scheduler.engine.timeframes import DAY_MS, HOUR_MS


class CheckerMarket:
    """What check_options reads, as the cycle's cache serves it: candles and prices from the
    spot source, chains, index and DVOL from the options source. One per replay: the options
    strategies of a joint replay share it, so a tick's chain of an underlying is built once."""

    def __init__(self, spot: MarketSource, options: Any) -> None:
        self.spot, self.options = spot, options
        self.name = getattr(options, "name", None) or spot.name
        self._chains: dict[tuple[str, int], Any] = {}

    def cycle_chain(self, underlying: str, now_ms: int) -> Any:
        """The chain as the fetch step caches it for a cycle (market.prefetch._options): the
        source's chain, the index asked for when the rows had none, Black-76 greeks at mark IV
        where the quotes had none. Once per tick; a failure is raised each time it is asked."""
        from dataclasses import replace

        from options.chain_greeks import fill_model_greeks

        key = (underlying, now_ms)
        if key not in self._chains:
            if any(t != now_ms for _, t in self._chains):  # a new tick: the last one's chains go
                self._chains.clear()
            chain = self.options.fetch_option_chain(underlying, now_ms=now_ms)
            if chain.index_price is None:
                index = self.options.fetch_index_price(underlying)
                if index is not None and index > 0:
                    chain = replace(chain, index_price=float(index))
            self._chains[key] = fill_model_greeks(chain)[0]
        return self._chains[key]

    def chain_of(self, underlying: str, now_ms: int, instruments: set[str]) -> Any:
        """``cycle_chain`` where only ``instruments``' quotes are read (marking held legs): the
        source's partial chain when it can price a few options alone (the synthetic one can),
        the same numbers for those; else, or when the tick's chain is built already, that."""
        from dataclasses import replace

        from options.chain_greeks import fill_model_greeks

        partial = getattr(self.options, "fetch_option_chain_of", None)
        if (underlying, now_ms) in self._chains or partial is None:
            return self.cycle_chain(underlying, now_ms)
        chain = partial(underlying, instruments, now_ms=now_ms)
        if chain.index_price is None:
            index = self.options.fetch_index_price(underlying)
            if index is not None and index > 0:
                chain = replace(chain, index_price=float(index))
        return fill_model_greeks(chain)[0]

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Any:
        return self.spot.fetch_candles(symbol, timeframe, now_ms=now_ms, limit=limit)

    def fetch_prices(self, symbols: list[str], *, now_ms: int) -> dict[str, float | None]:
        return self.spot.fetch_prices(symbols, now_ms=now_ms)

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> Any:
        return self.cycle_chain(underlying, now_ms)

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> Any:
        return self.options.fetch_dvol(underlying, start_ms=start_ms, end_ms=end_ms)


def _checker_doc(s: StrategyConfig, underlying: str, market: CheckerMarket, sleeve: Any, now_ms: int,
                 max_stale: int) -> tuple[Any, str | None]:
    """The checker's document at ``now_ms``, validated as the daemon validates it, and None; or
    None and why, when the check would fail (``max_stale``: the market's ``max_stale_candles``)."""
    from checkers import common
    from checkers.check_options import decide, read_positions
    from options.params import validate_params
    from scheduler.signals import OptionsSignal

    params = validate_params(s.strategy_name, dict(s.params), underlying=underlying)
    positions, spot_held = read_positions(json.dumps(options_cycle.checker_stdin(s, sleeve)))
    doc: dict[str, Any] = {"strategy": s.strategy_name, "underlying": underlying, "signal": 0, "spot_price": None,
                           "actions": [], "iv_rank": None, "timestamp": common.iso_ms(now_ms)}
    try:
        doc.update(decide(s.strategy_name, underlying, params, positions, spot_held, market, now_ms, max_stale))
    except (GoTraderError, ValueError) as e:
        return None, str(e) or type(e).__name__  # the check fails: this cycle has no intent for the strategy
    return OptionsSignal.model_validate(json.loads(json.dumps(common._clean(doc), allow_nan=False))), None


def _marks(chain: Any, instruments: set[str]) -> dict[str, OptionMark]:
    """The engine's quotes from a chain, as scheduler.options_cycle.read_marks builds them."""
    at = utc_from_ms(chain.asof_ms or chain.now_ms)
    return {q.instrument: OptionMark.from_quote(q, at, chain.index_price)
            for q in chain.quotes if q.instrument in instruments}


def _deliveries(spot: MarketSource, options: Any, underlying: str, expiries: list[int], now_ms: int
                ) -> dict[str, dict[int, float]]:
    """Delivery prices of the expiries due, found as the fetch step finds them."""
    from market.prefetch import _delivery, _Fetch

    prices: dict[int, float] = {}
    for expiry in expiries:
        entry = _delivery(_Fetch({"source_failed": None, "options_source_failed": None}), spot, options,
                          underlying, expiry, now_ms)
        if entry.get("ok"):
            prices[expiry] = float(entry["price"])
    return {underlying: prices} if prices else {}


def replay_options(config: Config, s: StrategyConfig, spot: MarketSource, options: Any, start_ms: int, end_ms: int,
                   *, step_ms: int = DAY_MS, offset_ms: int = 10 * HOUR_MS,
                   progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Replay options strategy ``s`` over [start_ms, end_ms] (ticks at ``offset_ms`` past each
    ``step_ms`` boundary)."""
    leg = OptionsLeg(config, s, spot, options, start_ms, end_ms, step_ms=step_ms, offset_ms=offset_ms)
    state = State()
    state.sleeves[s.id] = new_sleeve(s.id, "options", s.capital)
    rules, option_rules = {s.id: leg.rules}, {s.id: leg.option_rules}
    account, limits = engine_rules.account_rules(config), engine_rules.account_option_limits(config)
    for k in range(leg.n):
        got = leg.inputs(k, state)
        now = leg.now(k)
        events = step(state, [], got.marks, rules, {}, now, k + 1, account_rules=account,
                      option_intents=got.option_intents, option_quotes=got.option_quotes,
                      index_prices=got.index_prices, delivery_prices=got.delivery_prices,
                      option_rules=option_rules, account_option_limits=limits)
        leg.take(events, now)
        leg.after(k, state)
        if progress is not None:
            progress(k + 1, leg.n)
    return leg.result(state, notes.alone(config, s))


class OptionsLeg:
    """One options strategy's part of a replay: its daily clock, what each of its ticks gives
    ``engine.step`` (``inputs``: the checker's intent on the chain of then, its quotes, the
    index, delivery prices, the mark of an assigned coin), and what its result is built from
    (``take``: its sleeve's fills and refusals; ``after``: its equity and exposure).
    ``replay_options`` drives one alone, backtest/joint.py several on one clock."""

    def __init__(self, config: Config, s: StrategyConfig, spot: MarketSource, options: Any, start_ms: int,
                 end_ms: int, *, step_ms: int = DAY_MS, offset_ms: int = 10 * HOUR_MS,
                 market: CheckerMarket | None = None) -> None:
        if options is None:
            raise ConfigError([f"{s.id} is an options strategy: the run needs an options source"])
        self.config, self.s, self.spot, self.options, self.step_ms = config, s, spot, options, step_ms
        self.underlying = underlying = options_cycle.underlying_of(s)
        self.symbol = options_cycle.spot_symbol(underlying)
        start_ms, self.data_notes = _clamp_to_data(s, options, underlying, start_ms, end_ms)
        self.t0 = -(-(start_ms - offset_ms) // step_ms) * step_ms + offset_ms
        self.ticks = list(range(self.t0 + step_ms, end_ms + 1, step_ms))
        self.n = len(self.ticks)
        if not self.ticks:
            raise ConfigError([f"the run holds no whole options step of {step_ms // HOUR_MS} h; give a later --end"])
        self.market = market if market is not None else CheckerMarket(spot, options)
        self.rules = engine_rules.sleeve_rules(config, s)
        self.option_rules = engine_rules.option_rules(config, s)
        self.fills: list[dict[str, Any]] = []
        self.equity: list[tuple[int, float]] = [(self.t0, float(s.capital))]
        self.exposure = [0.0]
        self.chained, self.no_chain = 0, ""  # the ticks that had a chain, and why the last one without had none
        self.tally = notes.Tally()

    def now(self, k: int) -> Any:
        return utc_from_ms(self.ticks[k])

    def inputs(self, k: int, state: State) -> StepInputs:
        """Tick ``k`` as one daemon cycle of this strategy: the checker's intent on the chain
        of then (none when the check fails), the quotes of the held and proposed legs, the
        index, the delivery prices of expired legs, and the mark of a held coin."""
        T, s, underlying, market = self.ticks[k], self.s, self.underlying, self.market
        sleeve = state.sleeves[s.id]
        now = utc_from_ms(T)
        signal, failure = _checker_doc(s, underlying, market, sleeve, T, stale_limit(self.config.market))
        self.tally.checked()
        if failure is not None:
            self.tally.check_failed(T, failure)
        intent = options_cycle.intent(s.id, underlying, signal) if signal is not None else None
        got = StepInputs(option_intents=[intent] if intent is not None else [])
        self.chained += self._chain_part(T, state, got)
        price = self.spot.fetch_prices([self.symbol], now_ms=T).get(self.symbol) if sleeve.positions else None
        if price:
            got.marks[self.symbol] = Mark(price, now)
        return got

    def between(self, T: int, state: State) -> StepInputs:
        """A joint replay's tick that is not this leg's: what a daemon cycle then fetches for a
        strategy that is not due but holds option legs (their quotes, the index, delivery
        prices); its coin, if held, is marked with every held symbol (backtest/joint.py)."""
        got = StepInputs()
        if state.sleeves[self.s.id].option_positions:
            self._chain_part(T, state, got, whole=False)
        return got

    def _chain_part(self, T: int, state: State, got: StepInputs, whole: bool = True) -> bool:
        """Into ``got``: the quotes of the legs held (any sleeve's) and of ``got``'s intents from
        the chain at ``T``, its index, and the delivery prices of this sleeve's expired legs;
        whether there was a chain. ``whole=False``: only the quotes are needed (``chain_of``)."""
        underlying, sleeve = self.underlying, state.sleeves[self.s.id]
        chained = False
        wanted = options_cycle.wanted_instruments(state, got.option_intents)
        try:
            chain = self.market.cycle_chain(underlying, T) if whole else self.market.chain_of(underlying, T, wanted)
            got.option_quotes = _marks(chain, wanted)
            if chain.index_price:
                got.index_prices[underlying] = float(chain.index_price)
            chained = True
        except (GoTraderError, ExchangeError) as e:
            self.no_chain = str(e)  # no chain now: the legs keep their last marks
        expiries = sorted({int(p.expiry.timestamp() * 1000) for p in sleeve.option_positions
                           if p.expiry.timestamp() * 1000 <= T})
        got.delivery_prices = _deliveries(self.spot, self.options, underlying, expiries, T) if expiries else {}
        return chained

    def take(self, events: list[Event], now: Any) -> None:
        """A step's events for this leg's sleeve: its fills, and the orders refused."""
        T = int(now.timestamp() * 1000)
        for e in events:
            if e.strategy_id != self.s.id:
                continue
            if e.kind == "fill":
                self.fills.append({"strategy_id": e.strategy_id, "at": e.as_json()["at"], "at_ms": T, **e.data})
            elif e.kind == "rejected":
                self.tally.refusal(T, str(e.data.get("code")), str(e.data.get("detail")))

    def after(self, k: int, state: State) -> None:
        """The sleeve after tick ``k``'s step: its run time, equity and exposure (the legs' marks)."""
        sleeve = state.sleeves[self.s.id]
        sleeve.last_run_at = self.now(k)
        value = sleeve_equity(sleeve)
        self.equity.append((self.ticks[k], value if value is not None else self.equity[-1][1]))
        legs = sum(abs((p.mark_usd or 0.0) * p.quantity) for p in sleeve.option_positions)
        self.exposure.append(legs / self.equity[-1][1] if self.equity[-1][1] > 0 else 0.0)

    def result(self, state: State, run_notes: tuple[str, ...]) -> BacktestResult:
        """The leg's result (DataError when no tick had a chain, or every check failed);
        ``run_notes`` say how it was replayed (alone, or with others)."""
        s, underlying, ticks, fills = self.s, self.underlying, self.ticks, self.fills
        if not self.chained:  # nothing could ever have been decided or traded: say so rather than report a flat run
            raise DataError(f"{s.id}: no {underlying} option chain at any of the {len(ticks)} daily steps from "
                            f"{utc_iso(utc_from_ms(ticks[0]))} to {utc_iso(utc_from_ms(ticks[-1]))} ({self.no_chain}); "
                            "give a --start and --end inside the chains the source holds")
        self.tally.raise_if_nothing_decided(s.id, ticks[0], ticks[-1])
        o = self.config.options
        sleeve = state.sleeves[s.id]
        unsettled = sorted({p.instrument for p in sleeve.option_positions if p.expiry.timestamp() * 1000 <= ticks[-1]})
        settle = () if not unsettled else (
            f"{len(unsettled)} option leg(s) expired with no delivery price in the data and are still open, carried "
            f"at their last mark ({', '.join(unsettled)}): settlement needs the exchange's delivery price or the 1m, "
            "5m or 15m spot candles of the 30 minutes before 08:00 UTC (go-trader download-data --timeframes 1m); "
            "the final equity is not settled",)
        return BacktestResult(
            strategy_id=s.id, kind="options", strategy=s.strategy_name, symbols=(underlying,), timeframe=None,
            bar_ms=self.step_ms, start_ms=self.t0, end_ms=ticks[-1], initial_capital_usd=float(s.capital),
            equity=tuple(self.equity), exposure=tuple(self.exposure), trades=option_round_trips(fills),
            fills=tuple(fills), fees_usd=float(sum(f["fee_usd"] for f in fills)), slippage_usd=slippage_usd(fills),
            params=dict(s.params), costs={"fee_pct": o.fees.trade_pct, "no_side_spread_pct": o.no_side_spread_pct,
                                            "delivery_fee_pct": o.fees.delivery_pct},
            source=f"{self.spot.name}+{getattr(self.options, 'name', type(self.options).__name__)}",
            notes=run_notes + self.data_notes + settle + self.tally.notes() + self._stale_note(),
        )

    def _stale_note(self) -> tuple[str, ...]:
        """Why orders were refused as stale on recorded chains, and what to do about it."""
        from market.files_options import FilesOptions

        if "STALE_QUOTE" not in self.tally.refused or not isinstance(self.options, FilesOptions):
            return ()
        return (f"the recorded chains are one snapshot a day, taken at varying times (03:00 to 17:00 UTC); on a day "
                f"whose snapshot comes after the {utc_from_ms(self.ticks[0]).strftime('%H:%M')} UTC check, the "
                f"check sees the day before's, older than options.max_quote_age_s "
                f"({self.config.options.max_quote_age_s:g} s), and its orders are refused (STALE_QUOTE); to trade "
                "on such chains, raise options.max_quote_age_s in the config (at most 86400: a chain more than a day old is always refused)",)


def _clamp_to_data(s: StrategyConfig, options: Any, underlying: str, start_ms: int, end_ms: int
                   ) -> tuple[int, tuple[str, ...]]:
    """The run's start: ``start_ms``, or the first chain snapshot of the underlying when that is
    later (the days before it could decide nothing: a flat stretch there would skew every
    annualised figure), with a note saying so. (The spot candles of BTC and ETH start years
    before any chain; a day without them is a failed check, counted in the notes.)"""
    from backtest.data_span import chain_span_ms

    chains = chain_span_ms(options, underlying)
    if chains is None or chains[0] <= start_ms:
        return start_ms, ()
    if chains[0] >= end_ms:
        raise DataError(f"{s.id}: the {underlying} option chains run from {notes.when(chains[0])} to "
                        f"{notes.when(chains[1])}, after the end {notes.when(end_ms)} of the run; give a --start and "
                        "--end inside them")
    return chains[0], (f"the {underlying} option chains start at {notes.when(chains[0])}, after the requested start "
                       f"{notes.when(start_ms)}: the run starts there",)


def option_round_trips(fills: list[dict[str, Any]]) -> tuple[ClosedTrade, ...]:
    """Round trips of option legs: the fill that opened a position and those that closed it
    (a buy back, a sale, or the expiry), by position id; P&L net of both fees."""
    opened: dict[str, dict[str, Any]] = {}
    out = []
    for f in fills:
        o = f.get("option")
        if not o:
            continue
        pid = o["position_id"]
        if o["effect"] == "open":
            opened[pid] = f
            continue
        first = opened.get(pid)
        if first is None:
            continue
        share = min(1.0, f["quantity"] / first["quantity"]) if first["quantity"] else 1.0
        out.append(ClosedTrade(
            symbol=f["symbol"], side=o["position_side"], entry_ms=int(first["at_ms"]), exit_ms=int(f["at_ms"]),
            quantity=float(f["quantity"]), entry_price=float(first["fill_price"]), exit_price=float(f["fill_price"]),
            pnl_usd=float(f.get("realized_pnl_usd") or 0.0), fees_usd=float(first["fee_usd"] * share + f["fee_usd"]),
            slippage_usd=0.0, exit_reason=str(f["reason"])))
    return tuple(out)
