"""The quiet-tick planner (backtest/skip.py) against the plain replay, on drawn configs.

tests/unit/test_backtest_runner.py pins the fast replay to ``reference=True`` (``step`` on
every tick) on a few hand-picked configs; here hypothesis draws them: a window-free strategy
or a per-bar one (rsi, ema_crossover), short indicator windows so it trades, a timeframe
from 15m to 1d, stops, drawdown limits (with or without the forced close), tiny daily-loss
and kill-switch limits, loss streaks and cool-offs, drawdown blocks from minutes to days,
intervals shorter and longer than the bar (and not a multiple of it), every sizing mode,
fees and slippage 0 or not, an unaligned start, and candle sets with holes cut out (files
data has gaps; the synthetic market has none), on a seeded synthetic market. The two runs
must agree exactly: fills, equity, exposure, trades and the final state's model_dump.

Derandomized and database-free, so every run (and CI) tries the same examples.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from backtest import runner
from backtest.signals import WINDOW_FREE, decisions
from market.base import Candles
from market.synthetic import ORIGIN_MS, SyntheticSource
from scheduler.config import parse_config
from scheduler.engine.timeframes import timeframe_ms

HOUR = 3_600_000
DAY = 24 * HOUR
EARLIEST = ORIGIN_MS + 110 * DAY  # leaves room for the warm-up of a 1d run (candles_limit <= 100)

#: short indicator windows: the strategy trades every few bars, in and out of the breakers
_busy_windows = {
    "sma_crossover": st.integers(2, 5).flatmap(lambda f: st.fixed_dictionaries(
        {"fast": st.just(f), "slow": st.integers(f + 1, f + 12)})),
    "bollinger_bands": st.fixed_dictionaries({"period": st.integers(3, 15),
                                              "num_std": st.sampled_from([0.5, 1.0, 1.5, 2.0])}),
    "mean_reversion": st.fixed_dictionaries({"lookback": st.integers(3, 15),
                                             "entry_z": st.sampled_from([0.5, 1.0, 1.5]),
                                             "exit_z": st.sampled_from([-0.5, 0.0, 0.5])}),
    "momentum": st.fixed_dictionaries({"period": st.integers(2, 10),
                                       "threshold_pct": st.sampled_from([0.2, 0.5, 1.0, 2.0])}),
    "volume_weighted": st.fixed_dictionaries({"period": st.integers(3, 15),
                                              "volume_mult": st.sampled_from([0.8, 1.0, 1.5])}),
    "rsi": st.fixed_dictionaries({"period": st.integers(2, 8), "oversold": st.sampled_from([30, 40, 45]),
                                  "overbought": st.sampled_from([55, 60, 70])}),
    "ema_crossover": st.integers(2, 5).flatmap(lambda f: st.fixed_dictionaries(
        {"fast": st.just(f), "slow": st.integers(f + 1, f + 10)})),
}
#: long windows: positions held for days, so the planner's quiet spans are long (its numpy scan)
_calm_windows = {
    "sma_crossover": st.fixed_dictionaries({"fast": st.integers(5, 10), "slow": st.integers(25, 50)}),
    "bollinger_bands": st.fixed_dictionaries({"period": st.integers(15, 30),
                                              "num_std": st.sampled_from([1.5, 2.0, 2.5])}),
    "mean_reversion": st.fixed_dictionaries({"lookback": st.integers(20, 40),
                                             "entry_z": st.sampled_from([1.0, 1.5, 2.0]),
                                             "exit_z": st.sampled_from([1.0, 1.5, 2.0])}),
    "momentum": st.fixed_dictionaries({"period": st.integers(10, 30),
                                       "threshold_pct": st.sampled_from([2.0, 4.0, 6.0])}),
    "volume_weighted": st.fixed_dictionaries({"period": st.integers(15, 40), "volume_mult": st.just(1.0)}),
    "rsi": st.fixed_dictionaries({"period": st.integers(8, 14), "oversold": st.sampled_from([30, 35]),
                                  "overbought": st.sampled_from([75, 80])}),
    "ema_crossover": st.fixed_dictionaries({"fast": st.integers(5, 10), "slow": st.integers(25, 50)}),
}

_sizing = st.one_of(
    st.fixed_dictionaries({"mode": st.just("fixed_fraction"), "fraction": st.sampled_from([0.3, 0.95, 1.0])}),
    st.fixed_dictionaries({"mode": st.just("fixed_usd"), "usd": st.sampled_from([40.0, 300.0, 900.0, 5000.0])}),
    st.fixed_dictionaries({"mode": st.just("risk_based"), "risk_pct": st.sampled_from([0.5, 2.0, 10.0]),
                           "max_position_pct": st.sampled_from([15.0, 90.0, 100.0])}),
)
_tiny = st.one_of(st.sampled_from([0.01, 0.1, 0.5, 1.0, 3.0]), st.floats(0.01, 10.0))
_loose = st.sampled_from([20.0, 60.0, 100.0])


def _optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A config, a market and a range. Busy: short windows, every limit tight or loose at
    random, a few hundred bars. Calm: long windows and long holds, every limit loose but one
    (the stop, the drawdown, the daily loss or the kill switch, at a random level), up to
    1500 bars, so a limit is crossed somewhere inside a long quiet span."""
    calm = draw(st.booleans())
    name = draw(st.sampled_from(sorted(_busy_windows)))
    tf = draw(st.sampled_from(["15m", "1h", "1h", "4h", "1d"]))
    bar_s = timeframe_ms(tf) // 1000
    strategy: dict[str, Any] = {
        "args": [name, draw(st.sampled_from(["BTC/USDT", "ETH/USDT", "SOL/USDT"])), tf],
        "params": draw((_calm_windows if calm else _busy_windows)[name]),
        "close_on_drawdown": draw(st.booleans()), "sizing": draw(_sizing),
        # 0: the global interval (600 s: every bar); bar - 1 s; 2 bars; 3 bars and change
        "interval_seconds": draw(st.sampled_from([0, 60, bar_s - 1, 2 * bar_s, 3 * bar_s + 17, 86_400]))}
    risk = {"consecutive_losses": draw(st.integers(1, 5)),
            "loss_cooldown_minutes": draw(st.sampled_from([1, 15, 60, 300, 2000])),
            "drawdown_block_hours": draw(st.sampled_from([0.1, 0.5, 1.0, 5.0, 24.0, 72.0])),
            "max_position_pct": draw(st.sampled_from([20.0, 100.0])),
            "max_exposure_pct": draw(st.sampled_from([80.0, 100.0]))}
    if calm:
        tight = draw(st.sampled_from(["stop_loss_pct", "max_drawdown_pct", "daily_loss_pct", "portfolio_kill_pct"]))
        limits = {"stop_loss_pct": draw(_optional(st.sampled_from([10.0, 20.0]))),
                  "max_drawdown_pct": draw(_optional(_loose)), "daily_loss_pct": draw(_loose),
                  "portfolio_kill_pct": draw(_loose), tight: draw(st.floats(0.3, 5.0))}
    else:
        limits = {"stop_loss_pct": draw(_optional(st.sampled_from([0.2, 0.5, 1.0, 2.0, 5.0]))),
                  "max_drawdown_pct": draw(_optional(st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0, 30.0]))),
                  "daily_loss_pct": draw(st.one_of(_tiny, _loose)),
                  "portfolio_kill_pct": draw(st.one_of(_tiny, _loose))}
    strategy.update({k: limits[k] for k in ("stop_loss_pct", "max_drawdown_pct") if limits[k] is not None})
    risk.update({k: limits[k] for k in ("daily_loss_pct", "portfolio_kill_pct")})
    fee = draw(st.sampled_from([0.0, 0.1, 0.5]))
    top = {"risk": risk,
           "execution": {"slippage_pct": draw(st.sampled_from([0.0, 0.05, 0.3])),
                         "fees": {"binance": {"taker_pct": fee, "maker_pct": fee}}},
           "runner": {"candles_limit": draw(st.sampled_from([60, 100] if calm else [50, 60]))}}
    bar = timeframe_ms(tf)
    if tf == "1d":
        bars = draw(st.integers(30, 300 if calm else 120))
    else:
        bars = draw(st.integers(40, 1500 if calm else 400))
    start = EARLIEST + draw(st.integers(0, 120)) * DAY + draw(st.sampled_from([0, 1, 1_234_567, bar // 2]))
    end = start + bars * bar + draw(st.sampled_from([0, 1, bar // 3]))
    # holes cut out of the candles: (bars after the start, how many bars)
    holes = draw(st.lists(st.tuples(st.integers(-5, bars), st.sampled_from([1, 2, 3, 5, 20])), max_size=4))
    return {"strategy": strategy, "top": top, "seed": draw(st.integers(0, 30)), "start": start, "end": end,
            "holes": holes}


@cache
def _source(seed: int) -> SyntheticSource:
    return SyntheticSource(seed)


def _with_holes(c: Candles, start_ms: int, holes: list[tuple[int, int]]) -> Candles:
    """``c`` without the candles of each hole (counted in bars from the first at or after the start)."""
    keep = np.ones(len(c), dtype=bool)
    first = int(np.searchsorted(c.ts_ms, start_ms))
    for at, width in holes:
        keep[max(0, first + at): max(0, first + at + width)] = False
    keep[:2] = keep[-1:] = True  # a candle at both ends: the run still has a market
    i = np.flatnonzero(keep)
    ts = c.ts_ms[i]
    gaps = tuple((int(ts[j]), int(ts[j + 1])) for j in np.flatnonzero(np.diff(ts) > c.tf_ms))
    return Candles(c.symbol, c.timeframe, ts, c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i],
                   c.source, gaps)


def _run_both(case: dict[str, Any]) -> tuple[Any, Any, Any, Any, list[Any]]:
    doc = {"market": {"source": "synthetic", "seed": case["seed"]},
           "strategies": [{"id": "s1", "type": "spot", "script": "check_strategy.py", "capital": 1000,
                           **case["strategy"]}], **case["top"]}
    config = parse_config(doc, base_dir=Path("."))
    s = config.strategies[0]
    start, end = case["start"], case["end"]
    market = runner.load_spot(_source(case["seed"]), s, start, end, config.runner.candles_limit)
    if case["holes"]:
        market = runner.SpotMarket(_with_holes(market.candles, start, case["holes"]), None, market.rules,
                                   market.source)
    first = int(np.searchsorted(market.candles.ts_ms + market.candles.tf_ms, start, side="left"))
    decided = decisions(s.strategy_name, market.candles, s.params, limit=config.runner.candles_limit,
                        first=max(0, first - 1))  # as runner.run: once for both runs
    events: list[Any] = []
    fast, fast_state = runner.replay_spot_state(config, s, market, start, end, decided=decided,
                                                on_event=events.append)
    plain, plain_state = runner.replay_spot_state(config, s, market, start, end, decided=decided, reference=True)
    return fast, fast_state, plain, plain_state, events


def _case(strategy: dict[str, Any], risk: dict[str, Any], seed: int, start_ms: int, span_ms: int, *,
          fee: float = 0.0, slippage: float = 0.0, candles_limit: int = 50,
          holes: tuple[tuple[int, int], ...] = ()) -> dict[str, Any]:
    """A case as ``cases`` draws it; ``start_ms`` counts from the synthetic market's origin."""
    execution = {"slippage_pct": slippage, "fees": {"binance": {"taker_pct": fee, "maker_pct": fee}}}
    return {"strategy": strategy, "seed": seed, "start": ORIGIN_MS + start_ms, "end": ORIGIN_MS + start_ms + span_ms,
            "holes": list(holes),
            "top": {"risk": risk, "runner": {"candles_limit": candles_limit}, "execution": execution}}


_ALL_IN = {"max_position_pct": 100.0, "max_exposure_pct": 100.0}

#: explicit examples, run before the drawn ones. The first two by hand; the others found by a
#: random search with one piece of the planner removed at a time (each is where that removal
#: changes the result), so each pins one piece: the daily-loss trip mid-hold, the kill switch
#: mid-hold, the drawdown trip and its block's lift (the peak rebase), the stop's checked-to
#: bar when the run ends in a gap, and the day-start equity of a day that opens a long quiet span
EXAMPLES = {
    "1d_long_hold_across_gaps": _case(
        {"args": ["sma_crossover", "SOL/USDT", "1d"], "params": {"fast": 2, "slow": 9}, "stop_loss_pct": 15.0,
         "max_drawdown_pct": 12.0, "interval_seconds": 86_400, "close_on_drawdown": True,
         "sizing": {"mode": "fixed_fraction", "fraction": 1.0}},
        {"daily_loss_pct": 3.0, "portfolio_kill_pct": 40.0, "consecutive_losses": 1, "loss_cooldown_minutes": 2000,
         "drawdown_block_hours": 72.0, **_ALL_IN},
        seed=11, start_ms=117 * DAY + 1, span_ms=240 * DAY - 1, holes=((10, 3), (40, 5), (70, 1))),
    "15m_every_limit_a_hair_away": _case(  # the interval 3 bars and change; risk-based sizing
        {"args": ["rsi", "ETH/USDT", "15m"], "params": {"period": 3, "oversold": 40, "overbought": 60},
         "stop_loss_pct": 0.5, "max_drawdown_pct": 0.5, "interval_seconds": 3 * 900 + 17,
         "sizing": {"mode": "risk_based", "risk_pct": 10.0, "max_position_pct": 100.0}},
        {"daily_loss_pct": 0.1, "portfolio_kill_pct": 3.0, "consecutive_losses": 2, "loss_cooldown_minutes": 15,
         "drawdown_block_hours": 0.1, **_ALL_IN},
        seed=11, start_ms=140 * DAY + 450_000, span_ms=4 * DAY - 450_000, fee=0.1, slippage=0.05,
        holes=((30, 2), (200, 20))),
    "daily_loss_mid_hold": _case(
        {"args": ["rsi", "SOL/USDT", "1h"], "params": {"period": 3, "oversold": 40, "overbought": 70},
         "stop_loss_pct": 0.5, "max_drawdown_pct": 2.0, "close_on_drawdown": True,
         "sizing": {"mode": "risk_based", "risk_pct": 0.5, "max_position_pct": 100.0}},
        {"consecutive_losses": 5, "loss_cooldown_minutes": 15, "drawdown_block_hours": 72.0,
         "daily_loss_pct": 0.01, "portfolio_kill_pct": 90.0},
        seed=24, start_ms=269 * DAY, span_ms=1692 * HOUR, candles_limit=100),
    "drawdown_trip_and_lift": _case(
        {"args": ["sma_crossover", "BTC/USDT", "4h"], "params": {"fast": 5, "slow": 9}, "max_drawdown_pct": 0.1,
         "sizing": {"mode": "fixed_fraction", "fraction": 0.3}},
        {"consecutive_losses": 2, "loss_cooldown_minutes": 15, "drawdown_block_hours": 24.0,
         "daily_loss_pct": 50.0, "portfolio_kill_pct": 5.0, "max_position_pct": 100.0},
        seed=21, start_ms=220 * DAY + 1, span_ms=4049 * HOUR + 1_200_000),
    "stop_checked_to_in_a_gap": _case(
        {"args": ["bollinger_bands", "ETH/USDT", "4h"], "params": {"period": 20, "num_std": 2.0},
         "stop_loss_pct": 20.0, "max_drawdown_pct": 100.0, "close_on_drawdown": True, "interval_seconds": 5400,
         "sizing": {"mode": "fixed_usd", "usd": 900.0}},
        {"consecutive_losses": 5, "loss_cooldown_minutes": 60, "drawdown_block_hours": 24.0,
         "daily_loss_pct": 3.0, "portfolio_kill_pct": 10.0, "max_exposure_pct": 100.0},
        seed=15, start_ms=208 * DAY, span_ms=961 * HOUR + 1_200_000, fee=0.5, candles_limit=100,
        holes=((-86, 20), (-12, 1), (236, 4))),
    "kill_switch_mid_hold": _case(
        {"args": ["volume_weighted", "ETH/USDT", "15m"], "params": {"period": 15, "volume_mult": 1.0},
         "stop_loss_pct": 0.5, "max_drawdown_pct": 2.0, "sizing": {"mode": "fixed_usd", "usd": 900.0}},
        {"consecutive_losses": 5, "loss_cooldown_minutes": 2000, "drawdown_block_hours": 24.0,
         "daily_loss_pct": 50.0, "portfolio_kill_pct": 0.05, "max_exposure_pct": 100.0},
        seed=26, start_ms=144 * DAY, span_ms=76 * HOUR + 2_100_000, slippage=0.05, candles_limit=60),
    # only the daily check: the interval a day, each step at 23:45, so a quiet span starts at 00:00
    "day_start_at_a_long_span_start": _case(
        {"args": ["momentum", "ETH/USDT", "15m"], "params": {"period": 11, "threshold_pct": 1.0},
         "max_drawdown_pct": 100.0, "interval_seconds": 86_400, "sizing": {"mode": "fixed_fraction", "fraction": 1.0}},
        {"daily_loss_pct": 2.498, "portfolio_kill_pct": 100.0, **_ALL_IN},
        seed=32, start_ms=201 * DAY + 23 * HOUR + 30 * 60_000, span_ms=352 * HOUR),
}


def _with_examples(test: Any) -> Any:
    for case in reversed(EXAMPLES.values()):
        test = example(case)(test)
    return test


@_with_examples
@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_skipping_quiet_ticks_equals_stepping_every_tick_on_drawn_configs(case: dict[str, Any]) -> None:
    fast, fast_state, plain, plain_state, events = _run_both(case)
    event("fills: none" if not plain.fills else "fills: 1-3" if len(plain.fills) <= 3 else "fills: 4+")
    for e in events:
        if e.kind == "block":
            event(f"block {e.data['code']}")
    for f in plain.fills:
        event(f"fill {f['reason']}")
    assert fast_state.model_dump() == plain_state.model_dump()  # the quiet ticks' writes too (skip.py)
    assert fast.fills == plain.fills
    assert fast.equity == plain.equity
    assert fast.exposure == plain.exposure
    assert fast.trades == plain.trades


def test_the_explicit_examples_exercise_the_rules() -> None:
    """The explicit examples trade, and between them close by every spot exit and trip every
    breaker the planner reasons about, or they prove little."""
    reasons, codes = set(), set()
    for name, case in EXAMPLES.items():
        _, _, plain, _, events = _run_both(case)
        assert plain.fills, f"{name} never trades"
        reasons |= {f["reason"] for f in plain.fills}
        codes |= {e.data["code"] for e in events if e.kind == "block"}
    assert {"signal", "stop", "drawdown_close"} <= reasons, reasons
    assert {"MAX_DRAWDOWN", "DAILY_LOSS", "CONSECUTIVE_LOSSES", "PORTFOLIO_KILL_SWITCH"} <= codes, codes


def test_every_window_free_strategy_is_drawn() -> None:
    assert set(WINDOW_FREE) <= set(_busy_windows) == set(_calm_windows), "give a new one its windows here"
