"""Offline, the fetch step fails fast and once, and the checkers of that cycle do not
ask the exchange again: they fail at once with the fetch step's recorded error.

Two kinds of "offline": a closed local port (connection refused, as with no network),
and the local fake exchange failing every request (counted at the exchange, so the
checkers' zero requests are proved, not timed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from market.prefetch import prefetch
from tests.fake_exchange import FakeExchange, fake_exchange
from tests.integration.harness import REPO
from tests.market.conftest import Sleeps, make_source

HOUR = 3_600_000
START = 1_700_000_000_000 // HOUR * HOUR
NOW = START + 250 * HOUR + 600_000  # 10 minutes into a candle
ROWS = np.array([[START + i * HOUR, 100 + i, 102 + i, 99 + i, 101 + i, 5.0] for i in range(300)], dtype=np.float64)
PAIRS = [("BTC/USDT", "1h"), ("ETH/USDT", "1h"), ("SOL/USDT", "1h")]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
LIMIT = 100
BINANCE_PATHS = ("/api/v3/exchangeInfo", "/api/v3/klines", "/api/v3/ticker/24hr")


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def market(base_url: str) -> dict[str, Any]:
    return {"source": "ccxt", "base_url": base_url, "timeout_s": 2.0, "retry_budget_s": 3.0,
            "max_retries": 4, "enable_rate_limit": False}


def run_checker(script: str, *args: str, market_spec: dict[str, Any], cache_dir: Path | None
                ) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "GO_TRADER_NOW_MS": str(NOW), "GO_TRADER_MARKET": json.dumps(market_spec),
           "GO_TRADER_CANDLES_LIMIT": str(LIMIT)}
    env.pop("GO_TRADER_CACHE_DIR", None)
    if cache_dir is not None:
        env["GO_TRADER_CACHE_DIR"] = str(cache_dir)
    p = subprocess.run([sys.executable, f"checkers/{script}", *args], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, json.loads(p.stdout)


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with fake_exchange(None, now_ms=NOW) as server:
        for symbol in SYMBOLS:
            server.set_candles(symbol, "1h", ROWS)
        yield server


def assert_fails_from_the_record(rc: int, doc: dict[str, Any], error_class: str) -> None:
    assert rc == (75 if error_class == "transient" else 1), doc
    assert doc["error_class"] == error_class
    assert "the fetch step of this cycle failed" in doc["error"]


def test_fetch_step_on_a_closed_port_records_the_failure_and_checkers_do_not_retry(tmp_path: Path) -> None:
    spec = market(f"http://127.0.0.1:{closed_port()}")
    request = {"market": spec, "now_ms": NOW, "pairs": PAIRS, "price_symbols": SYMBOLS,
               "cache_dir": str(tmp_path), "limit": LIMIT}
    p = subprocess.run([sys.executable, "-m", "market.prefetch"], cwd=REPO, input=json.dumps(request),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc == json.loads((tmp_path / "manifest.json").read_text())
    failed = doc["source_failed"]
    assert failed["what"] == "market rules" and failed["error_class"] == "transient"
    assert failed["error_type"] == "SourceUnavailableError"
    assert "3 requests in a row got no response" in failed["error"]
    # everything after the failure was not tried: the same error, recorded at once
    assert {k: v["error"] for k, v in doc["pairs"].items()} == {f"{s} {tf}": failed["error"] for s, tf in PAIRS}
    assert all(not v["ok"] and v["error_class"] == "transient" for v in doc["pairs"].values())
    assert doc["prices"] == dict.fromkeys(SYMBOLS) and doc["errors"][-1]["what"] == "prices"

    for args in (("sma_crossover", "BTC/USDT", "1h"), ("sma_crossover", "DOGE/USDT", "4h"),
                 ("pairs_spread", "BTC/USDT", "1h", "ETH/USDT")):
        rc, out = run_checker("check_strategy.py", *args, market_spec=spec, cache_dir=tmp_path)
        assert_fails_from_the_record(rc, out, "transient")
        assert "unreachable" in out["error"]
    rc, out = run_checker("check_price.py", "BTC/USDT", "DOGE/USDT", market_spec=spec, cache_dir=tmp_path)
    assert_fails_from_the_record(rc, out, "transient")
    assert out["BTC/USDT"] is None and out["DOGE/USDT"] is None


@pytest.mark.parametrize(("kind", "options", "requests"), [
    # no answer at all: 3 requests in a row trip the breaker within the first call
    pytest.param("disconnect", {}, 3, id="disconnect"),
    # answers, but only 503: two calls (markets, then markets again for the first pair) of
    # 1 + max_retries requests each use up their retries, then nothing more is asked
    pytest.param("status", {"status": 503}, 2 * (1 + 2), id="503"),
])
def test_exchange_failing_every_request(fx: FakeExchange, tmp_path: Path, kind: str, options: dict[str, Any],
                                        requests: int) -> None:
    for path in BINANCE_PATHS:
        fx.add_fault(path, kind, count=None, **options)
    sleeps = Sleeps()
    with make_source(fx, sleeps, max_retries=2) as source:
        doc = prefetch(source, PAIRS, SYMBOLS, NOW, tmp_path, limit=LIMIT)
    assert fx.total_requests == requests  # one retry budget for the whole step, not one per pair
    assert doc["source_failed"]["error_type"] == "SourceUnavailableError"
    assert all(not v["ok"] for v in doc["pairs"].values()) and doc["prices"] == dict.fromkeys(SYMBOLS)

    spec = market(fx.url)
    for args in (("sma_crossover", "BTC/USDT", "1h"), ("rsi", "SOL/USDT", "1d")):
        rc, out = run_checker("check_strategy.py", *args, market_spec=spec, cache_dir=tmp_path)
        assert_fails_from_the_record(rc, out, "transient")
    rc, out = run_checker("check_price.py", "ETH/USDT", market_spec=spec, cache_dir=tmp_path)
    assert_fails_from_the_record(rc, out, "transient")
    assert fx.total_requests == requests  # the checkers asked the exchange nothing


@pytest.mark.parametrize(("kind", "options", "error_class"), [
    pytest.param("unknown_symbol", {}, "permanent", id="unknown-symbol"),
    pytest.param("status", {"status": 503}, "transient", id="503"),
])
def test_one_failed_pair_is_not_fetched_again(fx: FakeExchange, tmp_path: Path, kind: str,
                                              options: dict[str, Any], error_class: str) -> None:
    fx.add_fault("/api/v3/klines", kind, count=None, match={"symbol": "ETHUSDT"}, **options)
    with make_source(fx, Sleeps(), max_retries=1) as source:
        doc = prefetch(source, PAIRS, SYMBOLS, NOW, tmp_path, limit=LIMIT)
    assert doc["source_failed"] is None
    assert doc["pairs"]["BTC/USDT 1h"]["ok"] and doc["pairs"]["SOL/USDT 1h"]["ok"]
    assert doc["pairs"]["ETH/USDT 1h"]["error_class"] == error_class
    before = fx.total_requests

    spec = market(fx.url)
    rc, out = run_checker("check_strategy.py", "sma_crossover", "ETH/USDT", "1h", market_spec=spec,
                          cache_dir=tmp_path)
    assert_fails_from_the_record(rc, out, error_class)
    rc, out = run_checker("check_strategy.py", "sma_crossover", "BTC/USDT", "1h", market_spec=spec,
                          cache_dir=tmp_path)
    assert rc == 0 and "error" not in out and out["bars"] == LIMIT
    rc, out = run_checker("check_price.py", "BTC/USDT", "ETH/USDT", market_spec=spec, cache_dir=tmp_path)
    assert rc == 0 and out == {"BTC/USDT": doc["prices"]["BTC/USDT"], "ETH/USDT": doc["prices"]["ETH/USDT"]}
    assert fx.total_requests == before  # all of it from the cycle's cache and its records

    # control: with no cache (a checker run by hand) it does go to the exchange itself
    rc, out = run_checker("check_strategy.py", "sma_crossover", "ETH/USDT", "1h", market_spec=spec,
                          cache_dir=None)
    assert rc != 0 and "fetch step" not in out["error"] and fx.total_requests > before
