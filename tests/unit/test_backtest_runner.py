"""The spot runner: the quiet-tick skipping gives exactly the plain run of ``step`` on every
tick, on configs chosen to make every rule fire (stops, breakers, daily loss, kill switch,
cool-offs, every sizing mode, an interval longer than the bar), on the synthetic market."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest import runner
from backtest.result import BacktestResult
from market.synthetic import ORIGIN_MS, SyntheticSource
from scheduler.config import parse_config

HOUR = 3_600_000
START = ORIGIN_MS + 40 * 24 * HOUR
END = START + 120 * 24 * HOUR  # 2880 one-hour bars


def _config(strategy: dict, **top: object):
    doc = {"market": {"source": "synthetic", "seed": 7},
           "strategies": [{"id": "s1", "type": "spot", "script": "check_strategy.py", "capital": 1000, **strategy}],
           **top}
    return parse_config(doc, base_dir=Path("."))


CASES = {
    "defaults": ({"args": ["sma_crossover", "BTC/USDT", "1h"]}, {}),
    "stops_and_tight_breakers": (
        {"args": ["momentum", "ETH/USDT", "1h"], "params": {"period": 6, "threshold_pct": 1.0},
         "stop_loss_pct": 0.8, "max_drawdown_pct": 2.0, "sizing": {"mode": "fixed_fraction", "fraction": 1.0}},
        {"risk": {"consecutive_losses": 2, "loss_cooldown_minutes": 300, "drawdown_block_hours": 30,
                  "daily_loss_pct": 1.0, "portfolio_kill_pct": 60, "max_position_pct": 100,
                  "max_exposure_pct": 100}}),
    "close_on_drawdown_kill_switch": (
        {"args": ["bollinger_bands", "SOL/USDT", "1h"], "params": {"period": 10, "num_std": 1.0},
         "max_drawdown_pct": 1.5, "close_on_drawdown": True, "sizing": {"mode": "fixed_usd", "usd": 700}},
        {"risk": {"portfolio_kill_pct": 4.0, "daily_loss_pct": 50, "max_position_pct": 100,
                  "max_exposure_pct": 100, "drawdown_block_hours": 5}}),
    "risk_based_interval_4h": (
        {"args": ["mean_reversion", "BTC/USDT", "1h"], "params": {"lookback": 12, "entry_z": 1.0, "exit_z": 0.2},
         "stop_loss_pct": 1.5, "interval_seconds": 4 * 3600,
         "sizing": {"mode": "risk_based", "risk_pct": 2.0, "max_position_pct": 90}},
        {"execution": {"slippage_pct": 0.3}}),
    "ema_per_bar_path": ({"args": ["rsi", "ETH/USDT", "1h"], "params": {"period": 5, "oversold": 40,
                                                                       "overbought": 60}, "stop_loss_pct": 1.0},
                         {"runner": {"candles_limit": 60}}),
}


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(7)


@pytest.mark.parametrize("case", sorted(CASES))
def test_skipping_quiet_ticks_equals_stepping_every_tick(case, source):
    strategy, top = CASES[case]
    config = _config(strategy, **top)
    s = config.strategies[0]
    market = runner.load_spot(source, s, START, END, config.runner.candles_limit)
    fast, fast_state = runner.replay_spot_state(config, s, market, START, END)
    plain, plain_state = runner.replay_spot_state(config, s, market, START, END, reference=True)
    assert fast_state.model_dump() == plain_state.model_dump()  # the quiet ticks' writes too (skip.py)
    assert fast.fills == plain.fills
    assert fast.equity == plain.equity
    assert fast.exposure == plain.exposure
    assert fast.trades == plain.trades
    assert len(fast.fills) >= 4, "the case must trade to prove anything"


def test_rules_fire_in_the_adversarial_cases(source):
    """The cases above exercise what the planner must not miss: stops and breaker closes."""
    reasons, codes = set(), set()
    for case in ("stops_and_tight_breakers", "close_on_drawdown_kill_switch"):
        strategy, top = CASES[case]
        config = _config(strategy, **top)
        s = config.strategies[0]
        events = []
        result = runner.replay_spot(config, s, runner.load_spot(source, s, START, END, 500), START, END,
                                    on_event=events.append)
        reasons |= {f["reason"] for f in result.fills}
        codes |= {e.data["code"] for e in events if e.kind in ("block", "unblock")}
    assert {"stop", "drawdown_close"} <= reasons
    assert {"MAX_DRAWDOWN", "CONSECUTIVE_LOSSES", "DAILY_LOSS", "PORTFOLIO_KILL_SWITCH"} <= codes


def test_result_contract_and_next_open_fills(source):
    config = _config({"args": ["sma_crossover", "BTC/USDT", "1h"], "params": {"fast": 5, "slow": 20}})
    s = config.strategies[0]
    net, gross = runner.run(config, s, source, START, END)
    assert BacktestResult.from_json(net.to_json()) == net
    assert net.equity[0] == (START, 1000.0) and net.bar_ms == HOUR
    assert len(net.equity) == (END - START) // HOUR + 1
    candles = source.fetch_candles("BTC/USDT", "1h", now_ms=END, limit=3000)
    opens = dict(zip(candles.ts_ms.tolist(), candles.open.tolist(), strict=True))
    for f in net.fills:  # the quote is the open of the candle starting at the fill time
        assert f["quote_price"] == opens[f["at_ms"]]
        assert f["fill_price"] == pytest.approx(f["quote_price"] * (1.0005 if f["side"] == "buy" else 0.9995))
    assert net.costs == {"fee_pct": 0.1, "slippage_pct": 0.05}
    assert gross.costs == {"fee_pct": 0.0, "slippage_pct": 0.0} and gross.fees_usd == 0.0
    assert [f["at_ms"] for f in gross.fills] == [f["at_ms"] for f in net.fills]
    assert net.fees_usd == pytest.approx(sum(f["fee_usd"] for f in net.fills))
    assert net.benchmark[0] == (START, 1000.0) and len(net.benchmark) == len(net.equity)
    assert runner.run(config, s, source, START, END, with_gross=False) == (net, None)  # the walk-forward's net only


def test_a_run_without_a_whole_bar_is_refused(source):
    config = _config({"args": ["sma_crossover", "BTC/USDT", "1h"]})
    s = config.strategies[0]
    market = runner.load_spot(source, s, START, END, 500)
    with pytest.raises(Exception, match="holds no whole 1h bar"):
        runner.replay_spot(config, s, market, START, START + 1000)


@pytest.mark.parametrize("tf, days", [("3d", 3), ("1w", 7)])
def test_multi_day_timeframes_tick_on_the_candle_grid_and_trade(tf, days, source):
    """3d candles open on the epoch's 3-day grid and weekly ones on Mondays (as Binance's): the
    synthetic market serves them there, and the backtest ticks on that grid, so orders find the
    candle starting at the tick (before, weekly ticks fell on Thursdays: every order NO_PRICE)."""
    from market.synthetic import ORIGIN_MS
    from scheduler.engine.timeframes import first_open_at_or_after_ms, timeframe_ms

    day = 24 * HOUR
    config = _config({"args": ["sma_crossover", "BTC/USDT", tf], "params": {"fast": 3, "slow": 8},
                      "interval_seconds": days * 86_400})
    s = config.strategies[0]
    start, end = ORIGIN_MS + 400 * day, ORIGIN_MS + 900 * day
    market = runner.load_spot(source, s, start, end, config.runner.candles_limit)
    opens = market.candles.ts_ms
    assert len(opens) > 50
    assert all(first_open_at_or_after_ms(tf, int(t)) == int(t) for t in opens)
    assert set(((opens - first_open_at_or_after_ms(tf, 0)) % timeframe_ms(tf)).tolist()) == {0}
    if tf == "1w":
        from datetime import UTC, datetime
        assert {datetime.fromtimestamp(int(t) / 1000, tz=UTC).weekday() for t in opens} == {0}  # Mondays
    fast, fast_state = runner.replay_spot_state(config, s, market, start, end)
    plain, plain_state = runner.replay_spot_state(config, s, market, start, end, reference=True)
    assert fast.fills == plain.fills and fast_state.model_dump() == plain_state.model_dump()
    assert len(fast.fills) >= 4 and {f["reason"] for f in fast.fills} == {"signal"}
