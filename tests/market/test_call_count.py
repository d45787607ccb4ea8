"""API calls of one fetch step for the 22-strategy deployment, counted at the exchange:
unique (symbol, timeframe) pairs + one ticker batch + (markets load) + options calls,
not one set per strategy."""

from __future__ import annotations

from pathlib import Path

from tests.fake_exchange import fake_exchange
from tests.fake_exchange.cycle import (
    deployment_22,
    expected_calls,
    fetch_baseline,
    fetch_cycle,
    plan,
)
from tests.market.conftest import NOW, make_source


def test_cycle_calls_equal_the_target(shared_data: Path, tmp_path: Path) -> None:
    strategies = deployment_22()
    pairs, prices, unders = plan(strategies)
    assert (
        len(strategies) == 22 and len(pairs) == 8 and len(prices) == 3 and unders == ["BTC", "ETH"]
    )
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="full") as fx, make_source(fx) as src:
        fetch_cycle(src, strategies, now_ms=NOW, cache_dir=tmp_path / "c1")
        first = dict(fx.requests)
        assert sum(first.values()) == expected_calls(strategies, markets_loaded=False) == 16
        assert first == {  # one book summary per underlying, never a ticker per instrument
            "/api/v3/exchangeInfo": 1,
            "/api/v3/klines": 8,
            "/api/v3/ticker/24hr": 1,
            "/api/v2/public/get_book_summary_by_currency": 2,
            "/api/v2/public/get_instruments": 2,
            "/api/v2/public/get_volatility_index_data": 2,
        }
        assert sorted((tmp_path / "c1").glob("options-*.json")) == [
            tmp_path / "c1" / "options-BTC.json", tmp_path / "c1" / "options-ETH.json"]
        fx.reset_counts()
        fx.now_ms = NOW + 600_000  # the next cycle, 10 minutes later
        fetch_cycle(src, strategies, now_ms=NOW + 600_000, cache_dir=tmp_path / "c2")
        assert fx.total_requests == expected_calls(strategies, markets_loaded=True) == 13


def test_baseline_costs_more(shared_data: Path) -> None:
    strategies = deployment_22()
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        fetch_baseline(lambda: make_source(fx), strategies, now_ms=NOW)
        # 14 spot checkers: markets + own candles (pairs: 2) + own ticker; 8 options
        # checkers: chain + contract values + DVOL, momentum_options also markets + 4h candles
        assert fx.requests["/api/v3/klines"] == 14 + 3 + 2
        assert fx.requests["/api/v3/exchangeInfo"] == 14 + 2
        assert fx.total_requests == (14 * 3 + 3) + (8 * 3 + 2 * 2) == 73
