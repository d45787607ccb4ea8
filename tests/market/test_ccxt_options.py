"""Deribit option chains through real ccxt against the local fake exchange, with the
faults a live chain has: missing bids, a stale quote, a stale chain, 429, 5xx, bad bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from market.ccxt_source import CcxtSource
from scheduler.engine.errors import DataError, TransientExchangeError
from tests.fake_exchange import FakeExchange
from tests.market.conftest import NOW, Sleeps, make_source

BOOK = "/api/v2/public/get_book_summary_by_currency"
INSTRUMENTS = "/api/v2/public/get_instruments"
DVOL = "/api/v2/public/get_volatility_index_data"
DAY = 86_400_000


def test_missing_bids_stay_none_never_zero(src: CcxtSource, fx: FakeExchange) -> None:
    fx.add_fault(BOOK, "no_bids", every=3)  # every 3rd row: null bid, or 0 on every other one
    chain = src.fetch_option_chain("BTC", now_ms=NOW)
    snap = fx.data.chain_snapshot("BTC", NOW)
    names = list(snap["instrument_name"])
    bidless = {names[i] for i in range(0, len(names), 3)}
    got = {q.instrument: q for q in chain.quotes}
    assert bidless & set(got)
    for name in bidless & set(got):
        assert got[name].bid is None  # null and 0 alike: never a price of 0
    assert any(q.bid is not None for q in chain.quotes)


def test_one_stale_quote_is_left_out_the_chain_is_not_stale(src: CcxtSource, fx: FakeExchange) -> None:
    fresh = src.fetch_option_chain("BTC", now_ms=NOW)
    first = fx.data.chain_snapshot("BTC", NOW)["instrument_name"].iloc[0]
    assert fresh.find(first) is not None
    fx.add_fault(BOOK, "stale_quote", lag=3600)  # one quote an hour old, the rest fresh
    chain = src.fetch_option_chain("BTC", now_ms=NOW)
    assert chain.find(first) is None and len(chain.quotes) == len(fresh.quotes) - 1
    assert chain.asof_ms == NOW


def test_stale_chain_is_a_data_error_not_retried(src: CcxtSource, fx: FakeExchange, sleeps: Sleeps) -> None:
    fx.add_fault(BOOK, "stale", lag=901)  # allowed: 900 s
    with pytest.raises(DataError, match=r"stale: newest quote is 901 s old \(allowed 900 s"):
        src.fetch_option_chain("ETH", now_ms=NOW)
    assert fx.requests[BOOK] == 1 and sleeps == []


def test_429_with_retry_after_is_retried(src: CcxtSource, fx: FakeExchange, sleeps: Sleeps) -> None:
    fx.add_fault(BOOK, "status", status=429, retry_after="3", count=2)
    chain = src.fetch_option_chain("ETH", now_ms=NOW)
    assert len(chain.quotes) > 500
    assert fx.requests[BOOK] == 3 and len(sleeps) == 2 and all(s >= 3 for s in sleeps)


@pytest.mark.parametrize("fault", [{"kind": "status", "status": 503}, {"kind": "status", "status": 502},
                                   {"kind": "malformed"}, {"kind": "truncate"}, {"kind": "empty"}])
def test_5xx_and_bad_bodies_are_transient_and_retried(src: CcxtSource, fx: FakeExchange, sleeps: Sleeps,
                                                      fault: dict[str, object]) -> None:
    for path in (BOOK, DVOL):
        fx.add_fault(path, **fault)  # type: ignore[arg-type]
    assert len(src.fetch_option_chain("BTC", now_ms=NOW).quotes) > 500
    assert len(src.fetch_dvol("BTC", start_ms=NOW - 30 * DAY, end_ms=NOW)) == 29
    assert fx.requests[BOOK] == 2 and fx.requests[DVOL] == 2 and len(sleeps) == 2


def test_retries_used_up_is_transient(fx: FakeExchange, sleeps: Sleeps) -> None:
    fx.add_fault(BOOK, "status", status=429, count=None)
    with make_source(fx, sleeps, max_retries=2) as src, pytest.raises(
            TransientExchangeError, match="gave up after 3 attempts"):
        src.fetch_option_chain("BTC", now_ms=NOW)
    assert fx.requests[BOOK] == 3


def test_contract_values_from_instruments_once(fx: FakeExchange, tmp_path: Path) -> None:
    cache = str(tmp_path / "state.markets-binance.json")
    with make_source(fx, markets_cache=cache) as src:
        btc = src.fetch_option_chain("BTC", now_ms=NOW)
        src.fetch_option_chain("BTC", now_ms=NOW + 60_000)
        eth = src.fetch_option_chain("ETH", now_ms=NOW)
    assert btc.contract is not None and eth.contract is not None
    assert (btc.contract.min_trade_amount, btc.contract.contract_size, btc.contract.source) == (0.1, 1.0, "exchange")
    assert eth.contract.min_trade_amount == 1.0 and eth.contract.amount_step == 1.0
    assert fx.requests[INSTRUMENTS] == 2  # once per underlying
    assert (tmp_path / "state.markets-binance.deribit-BTC-options.json").exists()
    with make_source(fx, markets_cache=cache) as again:  # the next cycle's process
        assert again.fetch_option_chain("BTC", now_ms=NOW).contract == btc.contract
    assert fx.requests[INSTRUMENTS] == 2 and fx.requests[BOOK] == 4
