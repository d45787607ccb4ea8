"""An exchange that is not there costs one retry budget per process, not one per call:
the breaker of market.ccxt_errors, through the real ccxt client. Sleeps are recorded."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from market.base import SourceUnavailableError
from market.ccxt_errors import Breaker, RetryPolicy
from scheduler.engine.errors import DataError, PermanentExchangeError, TransientExchangeError
from tests.fake_exchange import FakeExchange, fake_exchange
from tests.market.conftest import Sleeps, make_source

HOUR = 3_600_000
START = 1_700_000_000_000 // HOUR * HOUR
NOW = START + 250 * HOUR + 600_000
ROWS = np.array([[START + i * HOUR, 100 + i, 102 + i, 99 + i, 101 + i, 5.0] for i in range(300)], dtype=np.float64)
KLINES = "/api/v3/klines"


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with fake_exchange(None, now_ms=NOW) as server:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            server.set_candles(symbol, "1h", ROWS)
        yield server


class _Closed:
    """Stands in for a FakeExchange whose port is closed (make_source reads ``url``)."""

    url = f"http://127.0.0.1:{closed_port()}"


def test_connection_refused_trips_after_three_requests_and_then_fails_at_once() -> None:
    sleeps = Sleeps()
    with make_source(_Closed(), sleeps, max_retries=10, retry_budget_s=600) as src:  # type: ignore[arg-type]
        with pytest.raises(SourceUnavailableError, match="3 requests in a row got no response"):
            src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)
        assert len(sleeps) == 2  # not 10 retries: the third refusal ends it
        for call in (lambda: src.fetch_candles("ETH/USDT", "1h", now_ms=NOW, limit=10),
                     lambda: src.fetch_prices(["BTC/USDT"], now_ms=NOW),
                     lambda: src.fetch_market_rules(["BTC/USDT"])):
            with pytest.raises(SourceUnavailableError, match="not tried: ccxt:binance at http"):
                call()
        assert len(sleeps) == 2  # nothing more was waited for


def test_503_on_every_request_trips_after_two_calls(fx: FakeExchange) -> None:
    with make_source(fx, Sleeps(), max_retries=2) as src:
        src.load_markets()
        fx.add_fault(KLINES, "status", status=503, count=None)
        with pytest.raises(TransientExchangeError, match="gave up after 3 attempts") as first:
            src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)
        assert not isinstance(first.value, SourceUnavailableError)
        with pytest.raises(SourceUnavailableError, match="2 calls in a row failed after their retries"):
            src.fetch_candles("ETH/USDT", "1h", now_ms=NOW, limit=10)
        assert fx.requests[KLINES] == 6
        with pytest.raises(SourceUnavailableError, match="not tried"):
            src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)
        assert fx.requests[KLINES] == 6


def test_an_exchange_that_recovers_never_trips(fx: FakeExchange) -> None:
    with make_source(fx, Sleeps(), max_retries=4) as src:
        src.load_markets()
        for _ in range(3):  # 2 silent failures, then an answer, three times over: 6 in all
            fx.add_fault(KLINES, "disconnect", count=2)
            assert len(src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)) == 10
        for _ in range(3):  # a call that gives up, then one that works
            fx.add_fault(KLINES, "status", status=503, count=5)
            with pytest.raises(TransientExchangeError):
                src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)
            assert len(src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)) == 10


def test_timeouts_are_slow_not_absent(fx: FakeExchange) -> None:
    """A host that answers late is there: three timeouts in a row do not trip the breaker
    (the retry budget bounds them), and the fourth attempt is made and answered."""
    with make_source(fx, Sleeps(), max_retries=4, timeout_s=1.0) as src:
        src.load_markets()
        fx.add_fault(KLINES, "delay", delay_s=3.0, count=3)
        assert len(src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)) == 10
    assert fx.requests[KLINES] == 4


def test_spot_and_options_exchanges_have_their_own_breakers(fx: FakeExchange) -> None:
    src = make_source(fx, Sleeps(), base_url=_Closed.url)
    with src:
        with pytest.raises(SourceUnavailableError):
            src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)
        # Deribit (still the fake exchange) is asked normally: it answers (with an error,
        # it has no index data here), which is what matters
        with pytest.raises(PermanentExchangeError, match="deribit index price"):
            src.fetch_index_price("BTC")
        assert fx.requests["/api/v2/public/get_index_price"] == 1


def test_breaker_counts() -> None:
    b = Breaker("x", silent_attempts=3, failed_calls=2)
    t = TransientExchangeError("t")
    b.attempt_failed(t, got_response=False, what="w")
    b.attempt_failed(t, got_response=False, what="w")
    b.attempt_failed(t, got_response=True, what="w")  # an answer: the silent count restarts
    b.attempt_failed(t, got_response=False, what="w")
    b.attempt_failed(PermanentExchangeError("p"), got_response=True, what="w")  # answered
    b.attempt_failed(t, got_response=False, what="w")
    b.attempt_failed(t, got_response=False, what="w")
    b.check("w")
    with pytest.raises(SourceUnavailableError, match="w: x is unreachable: 3 requests"):
        b.attempt_failed(t, got_response=False, what="w")
    with pytest.raises(SourceUnavailableError, match="v: not tried: x is unreachable"):
        b.check("v")

    b = Breaker("y", failed_calls=2)
    b.call_gave_up(t, what="w")
    b.answered()
    b.call_gave_up(t, what="w")
    with pytest.raises(SourceUnavailableError, match="y is unavailable: 2 calls"):
        b.call_gave_up(t, what="w")


def test_retry_policy_does_not_retry_an_unavailable_source() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(sleep=sleeps, rng=np.random.default_rng(1))
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise SourceUnavailableError("down")

    with pytest.raises(SourceUnavailableError):
        policy.run(attempt, what="x")
    assert calls == [1] and sleeps == []
    with pytest.raises(DataError):
        policy.run(lambda: (_ for _ in ()).throw(DataError("bad")), what="x")
