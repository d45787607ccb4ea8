"""The daemon on the real ccxt client, against the local fake exchange serving the real
candles of ../shared/data: the 14 spot strategies of the demo deployment run on exactly the
candles the exchange holds, with one fetch per unique (symbol, timeframe), counted at the
exchange."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from scheduler.clock import ManualClock
from scheduler.config import parse_config
from scheduler.daemon import Daemon
from tests.fake_exchange import fake_exchange, iso_ms
from tests.integration.harness import REPO

NOW = iso_ms("2026-03-10T10:20")


def _close_of_last_closed(shared_data: Path, symbol: str, tf: str, now_ms: int) -> float:
    name = f"{symbol.replace('/', '_')}-{tf}.csv" + (".gz" if tf == "1h" else "")
    df = pd.read_csv(shared_data / "ohlcv" / "binance" / name)
    length = 3_600_000 if tf == "1h" else 86_400_000
    return float(df[df.timestamp + length <= now_ms].close.iloc[-1])


def test_demo_deployment_through_ccxt_uses_one_fetch_per_pair(shared_data: Path, tmp_path: Path) -> None:
    doc = json.loads((REPO / "config.demo.json").read_text())
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="full") as fx:
        doc.update(state_file=str(tmp_path / "state.json"), log_dir=str(tmp_path / "logs"),
                   market={"source": "ccxt", "exchange": "binance", "base_url": fx.url,
                           "options_base_url": fx.url, "timeout_s": 5, "enable_rate_limit": False})
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(doc))
        config = parse_config(doc, base_dir=tmp_path)
        clock = ManualClock(datetime.fromtimestamp(NOW / 1000, tz=UTC))
        daemon = Daemon(config, config_path, clock=clock, state_path=tmp_path / "state.json",
                        log_dir=tmp_path / "logs", stdout_logs=False)
        daemon.open()
        try:
            report = daemon.run_cycle(force=True)
            assert report is not None and report.failed == 0 and report.checked == 22
            # 8 unique (symbol, timeframe) pairs (the spot strategies' 6, and the 4h closes of BTC and ETH for
            # momentum_options), one ticker batch, one markets load; per option underlying one chain, one
            # instruments list (the contract rules, cached after) and one DVOL history: not one set per strategy
            assert dict(fx.requests) == {
                "/api/v3/exchangeInfo": 1, "/api/v3/klines": 8, "/api/v3/ticker/24hr": 1,
                "/api/v2/public/get_book_summary_by_currency": 2, "/api/v2/public/get_instruments": 2,
                "/api/v2/public/get_volatility_index_data": 2}
            for s in config.strategies:
                check = daemon.state.sleeves[s.id].last_check
                if s.type == "options":  # the real chain of NOW, through ccxt: every check answers
                    assert check is not None and check.ok, check
                    continue

                assert check is not None and check.ok, check
                assert check.price == _close_of_last_closed(shared_data, s.args[1], s.args[2], NOW)
                assert check.candle_at is not None and check.candle_at.timestamp() * 1000 <= NOW
            assert set(daemon.prices) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
            assert all(p is not None and p > 0 for p in daemon.prices.values())

            fx.reset_counts()
            clock.advance(600)
            fx.now_ms = NOW + 600_000
            assert daemon.run_cycle() is not None  # 10 minutes later every strategy is due again
            # the markets and option contracts loaded in the first cycle are reused
            assert dict(fx.requests) == {
                "/api/v3/klines": 8, "/api/v3/ticker/24hr": 1, "/api/v2/public/get_book_summary_by_currency": 2,
                "/api/v2/public/get_volatility_index_data": 2}
            assert (tmp_path / "state.markets-binance.json").exists()
        finally:
            daemon.close()


def test_exchange_outage_means_no_trade_and_a_transient_reason(shared_data: Path, tmp_path: Path) -> None:
    doc = json.loads((REPO / "config.demo.json").read_text())
    doc["strategies"] = [s for s in doc["strategies"] if s["id"] in ("momentum-btc", "macd-eth")]
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        fx.add_fault("/api/v3/klines", "status", status=503, count=None)
        doc.update(state_file=str(tmp_path / "state.json"), log_dir=str(tmp_path / "logs"),
                   market={"source": "ccxt", "base_url": fx.url, "options_base_url": fx.url, "timeout_s": 2,
                           "retry_budget_s": 0.5, "max_retries": 1, "enable_rate_limit": False},
                   runner={"timeout_s": 20})
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(doc))
        daemon = Daemon(parse_config(doc, base_dir=tmp_path), config_path,
                        clock=ManualClock(datetime.fromtimestamp(NOW / 1000, tz=UTC)),
                        state_path=tmp_path / "state.json", log_dir=tmp_path / "logs", stdout_logs=False)
        daemon.open()
        try:
            report = daemon.run_cycle(force=True)
        finally:
            daemon.close()
    assert report is not None and report.failed == 2 and report.fills == 0
    for sid in ("momentum-btc", "macd-eth"):
        check = daemon.state.sleeves[sid].last_check
        assert check is not None and not check.ok and check.error_class == "transient"
        assert daemon.state.sleeves[sid].cash_usd == 1000
    fetch_log = (tmp_path / "logs" / "scheduler.log").read_text()
    assert "Fetch step: BTC/USDT 1h: TransientExchangeError" in fetch_log


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
