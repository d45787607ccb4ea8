"""Each injected fault gives the documented behaviour: retried then right, or a clear
error; never a made-up value. Sleeps are recorded, not slept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from market.ccxt_source import CcxtSource
from scheduler.engine.errors import DataError, PermanentExchangeError, TransientExchangeError
from tests.fake_exchange import FakeExchange
from tests.market.conftest import NOW, Sleeps, make_source

KLINES, TICKER, CHAIN = (
    "/api/v3/klines",
    "/api/v3/ticker/24hr",
    "/api/v2/public/get_book_summary_by_currency",
)

CALLS: dict[str, Callable[[CcxtSource], Any]] = {
    KLINES: lambda s: s.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=24).close.tolist(),
    TICKER: lambda s: s.fetch_prices(["BTC/USDT", "ETH/USDT"], now_ms=NOW),
    CHAIN: lambda s: s.fetch_option_chain("ETH", now_ms=NOW).quotes,
}

# (kind, fault options, least wait the client must take)
RECOVERABLE = [
    pytest.param("status", {"status": 429, "retry_after": "1"}, 1.0, id="429-retry-after"),
    pytest.param("status", {"status": 418, "retry_after": "2"}, 2.0, id="418-retry-after"),
    pytest.param("status", {"status": 500}, 0.0, id="500"),
    pytest.param("status", {"status": 502}, 0.0, id="502"),
    pytest.param("status", {"status": 503}, 0.0, id="503"),
    pytest.param("status", {"status": 504}, 0.0, id="504"),
    pytest.param("truncate", {}, 0.0, id="truncated-json"),
    pytest.param("malformed", {}, 0.0, id="malformed-json"),
    pytest.param("empty", {}, 0.0, id="empty-body"),
    pytest.param("disconnect", {}, 0.0, id="disconnect"),
    pytest.param("delay", {"delay_s": 2.0}, 0.0, id="timeout"),
]


@pytest.fixture
def clean(fx: FakeExchange) -> dict[str, Any]:
    """What each call returns with no fault (from a separate client)."""
    with make_source(fx) as s:
        out = {path: call(s) for path, call in CALLS.items()}
    fx.reset_counts()
    return out


@pytest.mark.parametrize("path", list(CALLS))
@pytest.mark.parametrize(("kind", "options", "least_wait"), RECOVERABLE)
def test_transient_fault_is_retried_then_right(
    fx: FakeExchange,
    clean: dict[str, Any],
    path: str,
    kind: str,
    options: dict[str, Any],
    least_wait: float,
) -> None:
    sleeps = Sleeps()
    with make_source(fx, sleeps, timeout_s=0.4) as s:
        if path == KLINES:
            s.load_markets()
        fx.add_fault(path, kind, count=2, **options)
        assert CALLS[path](s) == clean[path]
    assert fx.requests[path] == 3
    assert len(sleeps) == 2 and all(w >= least_wait for w in sleeps)


@pytest.mark.parametrize("path", list(CALLS))
def test_persistent_outage_gives_up_with_a_clear_error(fx: FakeExchange, path: str) -> None:
    sleeps = Sleeps()
    with make_source(fx, sleeps, max_retries=3) as s:
        s.load_markets()
        fx.add_fault(path, "status", status=503, count=None)
        with pytest.raises(TransientExchangeError, match="gave up after 4 attempts"):
            CALLS[path](s)
    assert fx.requests[path] == 4 and len(sleeps) == 3


def test_retry_after_beyond_the_budget_fails_at_once(fx: FakeExchange) -> None:
    sleeps = Sleeps()
    with make_source(fx, sleeps, retry_budget_s=30) as s:
        s.load_markets()
        fx.add_fault(KLINES, "status", status=429, retry_after="120", count=None)
        with pytest.raises(TransientExchangeError, match="retry budget") as info:
            CALLS[KLINES](s)
    assert info.value.retry_after_s == 120.0
    assert fx.requests[KLINES] == 1 and sleeps == []


@pytest.mark.parametrize("path", list(CALLS))
def test_unknown_symbol_is_permanent_and_not_retried(fx: FakeExchange, path: str) -> None:
    sleeps = Sleeps()
    with make_source(fx, sleeps) as s:
        s.load_markets()
        fx.add_fault(path, "unknown_symbol", count=None)
        with pytest.raises(PermanentExchangeError):
            CALLS[path](s)
    assert fx.requests[path] == 1 and sleeps == []


def test_bad_request_is_permanent(fx: FakeExchange) -> None:
    with make_source(fx) as s:
        s.load_markets()
        fx.add_fault(KLINES, "status", status=400, count=None)
        with pytest.raises(PermanentExchangeError, match="BadSymbol"):
            CALLS[KLINES](s)
    assert fx.requests[KLINES] == 1


def test_failed_markets_load_is_retried(fx: FakeExchange) -> None:
    fx.add_fault("/api/v3/exchangeInfo", "status", status=502, count=1)
    with make_source(fx) as s:
        assert s.fetch_market_rules(["ETH/USDT"])["ETH/USDT"].amount_step == 0.0001
    assert fx.requests["/api/v3/exchangeInfo"] == 2


def test_prices_after_an_outage_raise_and_never_become_zero(fx: FakeExchange) -> None:
    with make_source(fx, max_retries=1) as s:
        s.load_markets()
        fx.add_fault(TICKER, "status", status=503, count=None)
        with pytest.raises(TransientExchangeError):
            s.fetch_prices(["BTC/USDT"], now_ms=NOW)
        fx.clear_faults()
        fx.add_fault(TICKER, "stale", lag=2)
        assert s.fetch_prices(["BTC/USDT"], now_ms=NOW) == {"BTC/USDT": None}


def test_gap_and_stale_candles_are_not_retried_into_data(fx: FakeExchange) -> None:
    with make_source(fx) as s:
        fx.add_fault(KLINES, "stale", lag=10, count=None)
        with pytest.raises(DataError, match="stale"):
            CALLS[KLINES](s)
    assert fx.requests[KLINES] == 1
