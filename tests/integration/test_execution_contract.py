"""The execution contract (README "Paper execution"), on the real daemon, real checker
processes and real ccxt against the local fake exchange serving the real candles of
../shared/data: a 1d strategy decides on the last closed daily candle, but its order fills
at the ticker when it is placed (the ask for a buy, the bid for a sell, plus the slippage),
not at that candle's close; with no quote it is rejected NO_QUOTE. Manual trades alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from scheduler.clock import ManualClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from tests.fake_exchange import FakeExchange, fake_exchange, iso_ms
from tests.integration.harness import write_config

DAY_MS = 86_400_000
SLIPPAGE = 0.0005  # the default execution.slippage_pct 0.05 %


def _decision_times() -> tuple[int, int]:
    """Two decision times a day apart at 10:20 UTC: check_alternate (period one day) buys at
    the first (an even day number) and sells at the second."""
    t = iso_ms("2026-03-10T10:20")
    if (t // DAY_MS) % 2:
        t -= DAY_MS
    return t, t + DAY_MS


def _daily_close(shared_data: Path, now_ms: int) -> float:
    df = pd.read_csv(shared_data / "ohlcv" / "binance" / "BTC_USDT-1d.csv")
    return float(df[df.timestamp + DAY_MS <= now_ms].close.iloc[-1])


def _daemon(tmp_path: Path, fx: FakeExchange, now_ms: int) -> tuple[Daemon, ManualClock]:
    config = write_config(
        tmp_path, [{"id": "daily", "type": "spot", "script": "check_alternate.py",
                    "args": ["sma_crossover", "BTC/USDT", "1d"], "capital": 1000, "interval_seconds": 86400}],
)
    doc = json.loads(config.read_text())
    doc["market"] = {"source": "ccxt", "exchange": "binance", "base_url": fx.url, "timeout_s": 5,
                     "enable_rate_limit": False, "retry_budget_s": 1}
    config.write_text(json.dumps(doc))
    clock = ManualClock(datetime.fromtimestamp(now_ms / 1000, tz=UTC))
    daemon = Daemon(load_config(config), config, clock=clock, state_path=tmp_path / "state.json",
                    log_dir=tmp_path / "logs", stdout_logs=False)
    daemon.open()
    return daemon, clock


@pytest.fixture
def alternate_daily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTERNATE_PERIOD_S", "86400")
    monkeypatch.setenv("GO_TRADER_CHECKER_ENV", "ALTERNATE_PERIOD_S")


@pytest.mark.usefixtures("alternate_daily")
def test_a_daily_strategy_buys_at_the_ask_and_sells_at_the_bid_not_at_the_candle_close(
        shared_data: Path, tmp_path: Path) -> None:
    buy_at, sell_at = _decision_times()
    close = _daily_close(shared_data, buy_at)
    with fake_exchange(shared_data, now_ms=buy_at) as fx:
        # a ticker far from the daily close the signal was decided on (8 % and 9 % below it)
        bid, ask = round(close * 0.91, 2), round(close * 0.92, 2)
        fx.set_book("BTC/USDT", bid=bid, ask=ask)
        daemon, clock = _daemon(tmp_path, fx, buy_at)
        try:
            report = daemon.run_cycle(force=True)
            assert report is not None and report.failed == 0 and report.fills == 1, report
            check = daemon.state.sleeves["daily"].last_check
            assert check is not None and check.signal == 1 and check.price == pytest.approx(close)  # decided on the close
            trade = daemon.state.sleeves["daily"].trades[-1]
            assert trade.side == "buy" and trade.quote_price == ask
            assert trade.fill_price == pytest.approx(ask * (1 + SLIPPAGE), rel=1e-12)
            assert abs(trade.fill_price - close) > 0.07 * close
            pos = daemon.state.sleeves["daily"].positions["BTC/USDT"]
            assert pos.entry_price == trade.fill_price

            sell_bid, sell_ask = round(close * 1.05, 2), round(close * 1.06, 2)
            fx.now_ms = sell_at
            fx.set_book("BTC/USDT", bid=sell_bid, ask=sell_ask)
            clock.advance(DAY_MS / 1000)
            report = daemon.run_cycle(force=True)
            assert report is not None and report.fills == 1, report
            trade = daemon.state.sleeves["daily"].trades[-1]
            assert trade.side == "sell" and trade.quote_price == sell_bid
            assert trade.fill_price == pytest.approx(sell_bid * (1 - SLIPPAGE), rel=1e-12)
            assert daemon.state.sleeves["daily"].positions == {}
        finally:
            daemon.close()


@pytest.mark.usefixtures("alternate_daily")
def test_no_quote_is_rejected_never_filled_at_the_candle(shared_data: Path, tmp_path: Path) -> None:
    buy_at, _ = _decision_times()
    with fake_exchange(shared_data, now_ms=buy_at) as fx:
        # the ticker looks five hours old: older than max_price_age_s, so no quote at all
        fx.add_fault("/api/v3/ticker/24hr", "stale", count=None, lag=5)
        daemon, _ = _daemon(tmp_path, fx, buy_at)
        try:
            report = daemon.run_cycle(force=True)
            assert report is not None and report.failed == 0 and report.fills == 0, report
            rejected = [e for e in report.events if e.kind == "rejected"]
            assert [e.data["code"] for e in rejected] == ["NO_QUOTE"], rejected
            assert "never at a candle's close" in rejected[0].data["detail"]
            sleeve = daemon.state.sleeves["daily"]
            assert sleeve.positions == {} and sleeve.trades == [] and sleeve.cash_usd == 1000
            assert sleeve.last_check is not None and "rejected NO_QUOTE" in (sleeve.last_check.outcome or "")
        finally:
            daemon.close()


def test_a_manual_trade_fills_at_the_quote_and_is_refused_without_one(shared_data: Path, tmp_path: Path) -> None:
    now = iso_ms("2026-03-10T10:20")
    close = _daily_close(shared_data, now)
    with fake_exchange(shared_data, now_ms=now) as fx:
        bid, ask = round(close * 1.10, 2), round(close * 1.11, 2)
        fx.set_book("BTC/USDT", bid=bid, ask=ask)
        daemon, _ = _daemon(tmp_path, fx, now)
        try:
            doc = daemon.execute("trade", {"strategy": "daily", "action": "enter"}, "test")
            assert doc["ok"] is True, doc
            fill = next(e for e in doc["events"] if e["kind"] == "fill")
            assert fill["quote_price"] == ask and fill["fill_price"] == pytest.approx(ask * (1 + SLIPPAGE))
            doc = daemon.execute("trade", {"strategy": "daily", "action": "close"}, "test")
            fill = next(e for e in doc["events"] if e["kind"] == "fill")
            assert doc["ok"] is True and fill["side"] == "sell" and fill["quote_price"] == bid

            fx.add_fault("/api/v3/ticker/24hr", "stale", count=None, lag=5)
            doc = daemon.execute("trade", {"strategy": "daily", "action": "enter"}, "test")
            assert doc["ok"] is False and doc["detail"].startswith("no ask or last price for BTC/USDT"), doc
            assert [e["code"] for e in doc["events"] if e["kind"] == "rejected"] == ["NO_QUOTE"]
            assert daemon.state.sleeves["daily"].positions == {}
        finally:
            daemon.close()
