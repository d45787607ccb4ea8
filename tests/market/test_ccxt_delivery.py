"""Delivery prices through real ccxt against the local fake exchange (no ../shared/data):
Deribit's ``public/get_delivery_prices`` first (paged, bounded), and in the fetch step the
Binance 1m candles of the 30 minutes before expiry (``fetch_ohlcv_range``) when Deribit
has no record or cannot be had."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from market.prefetch import prefetch
from scheduler.engine.errors import PermanentExchangeError
from tests.fake_exchange import FakeExchange, fake_exchange, iso_ms, resample
from tests.market.conftest import Sleeps, make_source

REPO = Path(__file__).resolve().parents[2]
MIN = 60_000
DAY = 86_400_000
NOW = iso_ms("2026-03-27T09:10")
EXPIRY = iso_ms("2026-03-27T08:00")
PRICES = "/api/v2/public/get_delivery_prices"
KLINES = "/api/v3/klines"
HOLE = "2026-02-14"  # a date Deribit has no record of


def deribit_prices(newest: date, days: int) -> dict[str, float]:
    """One record a day back from ``newest``, except HOLE; price 60000 + days before newest."""
    out = {}
    for i in range(days):
        d = (newest - timedelta(days=i)).isoformat()
        if d != HOLE:
            out[d] = 60_000.0 + i + 0.25
    return out


def one_minute_rows(start_ms: int, end_ms: int, seed: int, base: float) -> np.ndarray:
    n = (end_ms - start_ms) // MIN
    closes = base + np.random.default_rng(seed).normal(0, 20, n).cumsum()
    ts = start_ms + np.arange(n) * MIN
    return np.column_stack([ts, closes - 2, closes + 6, closes - 6, closes, np.full(n, 3.0)])


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with fake_exchange(None, now_ms=NOW) as server:
        server.set_delivery_prices("btc_usd", deribit_prices(date(2026, 3, 27), 700))
        server.set_delivery_prices("eth_usd", {"2026-03-26": 2_050.5})  # today's not published
        for symbol, seed, base in (("BTC/USDT", 1, 70_000.0), ("ETH/USDT", 2, 2_000.0)):
            server.set_candles(symbol, "1m", one_minute_rows(EXPIRY - 2 * 3_600_000, NOW + MIN, seed, base))
        yield server


def spot_mean(fx: FakeExchange, symbol: str, expiry_ms: int) -> float:
    rows = fx.data.candles(symbol.replace("/", ""), "1m")
    assert rows is not None
    return statistics.fmean(float(r[4]) for r in rows if expiry_ms - 30 * MIN <= r[0] < expiry_ms)


def asked(fx: FakeExchange) -> list[tuple[int, int]]:
    return [(int(q["offset"]), int(q["count"])) for p, q in fx.log if p == PRICES]


# --- CcxtSource.fetch_delivery_price ---------------------------------------------


def test_a_recent_expiry_is_one_call(fx: FakeExchange) -> None:
    with make_source(fx) as src:
        assert src.fetch_delivery_price("BTC", EXPIRY) == 60_000.25
        assert src.fetch_delivery_price("btc", EXPIRY - 3 * DAY) == 60_003.25  # from the records seen
    assert asked(fx) == [(0, 10)]
    assert [q["index_name"] for p, q in fx.log if p == PRICES] == ["btc_usd"]


def test_an_older_expiry_is_one_more_call_of_exactly_the_records_between(fx: FakeExchange) -> None:
    with make_source(fx) as src:
        assert src.fetch_delivery_price("BTC", EXPIRY - 400 * DAY) == 60_400.25
    # the first page ends 9 days back; 391 more days hold the date if it is listed at all,
    # and the hole (one record fewer) moves it one place up, still inside that page
    assert asked(fx) == [(0, 10), (10, 391)]


@pytest.mark.parametrize(("expiry", "calls"), [
    (iso_ms(f"{HOLE}T08:00"), 2),  # no record of that date: passed it
    (EXPIRY - 2000 * DAY, 2),  # older than every record: the list ends first
    (iso_ms("2026-03-28T08:00"), 1),  # not yet published (newest is older)
])
def test_a_date_not_listed_is_none(fx: FakeExchange, expiry: int, calls: int) -> None:
    with make_source(fx) as src:
        assert src.fetch_delivery_price("BTC", expiry) is None
    assert len(asked(fx)) == calls


def test_today_not_published_yet_is_none(fx: FakeExchange) -> None:
    with make_source(fx) as src:
        assert src.fetch_delivery_price("ETH", EXPIRY) is None
        assert src.fetch_delivery_price("ETH", EXPIRY - DAY) == 2_050.5
    assert asked(fx) == [(0, 10)]  # the second from the records already seen


def test_429_is_retried_and_a_bad_body_is_a_data_error(fx: FakeExchange) -> None:
    sleeps = Sleeps()
    fx.add_fault(PRICES, "status", status=429, retry_after="2", count=2)
    with make_source(fx, sleeps) as src:
        assert src.fetch_delivery_price("BTC", EXPIRY) == 60_000.25
    assert len(asked(fx)) == 3 and len(sleeps) == 2 and all(s >= 2 for s in sleeps)


def test_an_unknown_index_is_permanent(fx: FakeExchange) -> None:
    with make_source(fx) as src, pytest.raises(PermanentExchangeError):
        src.fetch_delivery_price("DOGE", EXPIRY)


def test_unusable_records_are_left_out(fx: FakeExchange) -> None:
    fx.set_delivery_prices("btc_usd", {"2026-03-27": 0.0, "2026-03-26": -5.0})
    with make_source(fx) as src:
        assert src.fetch_delivery_price("BTC", EXPIRY) is None
        assert src.fetch_delivery_price("BTC", EXPIRY - 2 * DAY) == 60_002.25


# --- the fetch step over ccxt --------------------------------------------------------


def run(fx: FakeExchange, tmp_path: Path, deliveries: dict[str, list[int]], sleeps: Sleeps | None = None,
        **spec: Any) -> dict[str, Any]:
    tmp_path.mkdir(exist_ok=True)
    with make_source(fx, sleeps, **spec) as src:
        return prefetch(src, [], [], NOW, tmp_path, options_source=src, deliveries=deliveries)


def test_deribit_price_used_without_candles(fx: FakeExchange, tmp_path: Path) -> None:
    doc = run(fx, tmp_path, {"BTC": [EXPIRY, EXPIRY - 7 * DAY]})
    assert doc["deliveries"]["BTC"] == {
        str(EXPIRY): {"ok": True, "price": 60_000.25, "method": "ccxt:deribit delivery price of BTC on 2026-03-27 "
                      "(the exchange's own: its index averaged over 07:30-08:00 UTC)"},
        str(EXPIRY - 7 * DAY): {"ok": True, "price": 60_007.25, "method": "ccxt:deribit delivery price of BTC on "
                                "2026-03-20 (the exchange's own: its index averaged over 07:30-08:00 UTC)"}}
    assert fx.requests[PRICES] == 1 and fx.requests[KLINES] == 0


def test_a_date_not_listed_falls_back_to_binance_1m_of_that_window(fx: FakeExchange, tmp_path: Path) -> None:
    doc = run(fx, tmp_path, {"ETH": [EXPIRY]})
    entry = doc["deliveries"]["ETH"][str(EXPIRY)]
    assert entry == {"ok": True, "price": spot_mean(fx, "ETH/USDT", EXPIRY),
                     "method": "average of 30 1m closes of ETH/USDT from ccxt:binance (spot, not Deribit's index) "
                               "07:30-08:00 UTC; ccxt:deribit delivery price: no record for 2026-03-27"}
    klines = [q for p, q in fx.log if p == KLINES]
    assert len(klines) == 1 and klines[0]["interval"] == "1m"
    assert int(klines[0]["startTime"]) == EXPIRY - 30 * MIN  # the window, not the latest candles


def test_5xx_on_every_call_falls_back_then_the_breaker_stops_asking(fx: FakeExchange, tmp_path: Path) -> None:
    fx.add_fault(PRICES, "status", status=503, count=None)
    expiries = [EXPIRY, EXPIRY - DAY, EXPIRY - 2 * DAY]
    doc = run(fx, tmp_path, {"BTC": expiries}, Sleeps(), max_retries=1)
    # 2 calls that used up their retries trip Deribit's breaker: the third expiry does not ask
    assert fx.requests[PRICES] == 4
    failed = doc["options_source_failed"]
    assert failed["what"] == "delivery price BTC 2026-03-26" and failed["error_type"] == "SourceUnavailableError"
    rows = fx.data.candles("BTCUSDT", "1m")
    assert rows is not None
    for e in expiries[:1]:
        entry = doc["deliveries"]["BTC"][str(e)]
        assert entry["ok"] and entry["price"] == spot_mean(fx, "BTC/USDT", e)
        assert "ccxt:deribit delivery price: TransientExchangeError:" in entry["method"]
    # the candles of the days before are not served: an error that says what was tried, transient
    for e in expiries[1:]:
        entry = doc["deliveries"]["BTC"][str(e)]
        assert entry["ok"] is False and entry["error_class"] == "transient"
        assert "ccxt:deribit delivery price: SourceUnavailableError:" in entry["error"]
        assert "1m candles of BTC/USDT: 0 of the 30 bars opening 07:30-08:00 UTC" in entry["error"]


def test_429_then_an_answer_uses_deribit(fx: FakeExchange, tmp_path: Path) -> None:
    fx.add_fault(PRICES, "status", status=429, retry_after="1", count=1)
    doc = run(fx, tmp_path, {"BTC": [EXPIRY]})
    assert doc["deliveries"]["BTC"][str(EXPIRY)]["price"] == 60_000.25 and fx.requests[KLINES] == 0


def test_a_hole_in_binance_1m_moves_to_5m_and_never_averages_the_wrong_bars(fx: FakeExchange, tmp_path: Path) -> None:
    rows = fx.data.candles("ETHUSDT", "1m")
    assert rows is not None
    fives = resample(rows, "5m")
    fx.set_candles("ETH/USDT", "1m", rows[rows[:, 0] != EXPIRY - 7 * MIN])  # 07:53 missing
    fx.set_candles("ETH/USDT", "5m", fives)
    entry = run(fx, tmp_path / "a", {"ETH": [EXPIRY]})["deliveries"]["ETH"][str(EXPIRY)]
    want = statistics.fmean(float(r[4]) for r in fives if EXPIRY - 30 * MIN <= r[0] < EXPIRY)
    assert entry["ok"] and entry["price"] == want
    assert entry["method"].startswith("average of 6 5m closes of ETH/USDT from ccxt:binance")
    assert [q["interval"] for p, q in fx.log if p == KLINES] == ["1m", "5m"]
    # no 5m or 15m candles either (Binance: "Invalid symbol" for those): an error naming each
    fx.set_candles("ETH/USDT", "5m", np.empty((0, 6)))
    entry = run(fx, tmp_path / "b", {"ETH": [EXPIRY]})["deliveries"]["ETH"][str(EXPIRY)]
    assert entry["ok"] is False and entry["error_type"] == "DataError"
    assert "1m candles of ETH/USDT: 29 of the 30 bars opening 07:30-08:00 UTC on 2026-03-27" in entry["error"]
    assert "'07:52', '07:54'" in entry["error"]
    assert "; 5m candles of ETH/USDT: 0 of the 6 bars" in entry["error"]
    assert "; 15m candles of ETH/USDT: PermanentExchangeError:" in entry["error"]


def test_the_fetch_step_process_over_ccxt(fx: FakeExchange, tmp_path: Path) -> None:
    spec = {"source": "ccxt", "base_url": fx.url, "options_base_url": fx.url, "timeout_s": 5.0,
            "enable_rate_limit": False}
    request = {"market": spec, "now_ms": NOW, "pairs": [], "price_symbols": [], "cache_dir": str(tmp_path),
               "deliveries": {"BTC": [EXPIRY], "ETH": [EXPIRY]}}
    proc = subprocess.run([sys.executable, "-m", "market.prefetch"], cwd=REPO, input=json.dumps(request).encode(),
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["deliveries"]["BTC"][str(EXPIRY)]["price"] == 60_000.25
    assert doc["deliveries"]["ETH"][str(EXPIRY)]["price"] == spot_mean(fx, "ETH/USDT", EXPIRY)
