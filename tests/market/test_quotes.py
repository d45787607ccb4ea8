"""Quotes: what an order fills at (README "Paper execution").

A replayed market (synthetic, files) quotes the OPEN of the candle starting at the clock
time, bid = ask = last, as of that open: the price a backtest fills at (the next candle's
open), so a replayed daemon and the backtest agree. ccxt quotes the ticker's bid and ask.
The fetch step records them (``quotes``) beside the marks (``prices``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from market.ccxt_source import CcxtSource
from market.files_source import FilesSource
from market.prefetch import prefetch
from market.quotes import Quote
from market.synthetic import BASE_MS, ORIGIN_MS, SyntheticSource
from tests.fake_exchange import FakeExchange, iso_ms
from tests.market.conftest import NOW, real_rows

HOUR = 3_600_000
DAY = 86_400_000


# --- the value ---------------------------------------------------------------------------

def test_an_order_takes_its_side_of_the_book_else_the_last() -> None:
    q = Quote(bid=99.0, ask=101.0, last=100.0, at_ms=5)
    assert (q.order_price(1), q.order_price(-1)) == (101.0, 99.0)
    assert Quote(None, None, 100.0, 5).order_price(1) == Quote(None, None, 100.0, 5).order_price(-1) == 100.0
    assert Quote(99.0, None, None, 5).order_price(1) is None  # a buy never takes the bid
    with pytest.raises(ValueError, match="buy .1. or a sell"):
        q.order_price(0)
    assert Quote.flat(7.5, 3) == Quote(7.5, 7.5, 7.5, 3) and Quote.flat(None, 3) is None
    assert Quote.flat(float("nan"), 3) is None and Quote.flat(0.0, 3) is None


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True])
def test_a_quote_refuses_a_price_that_is_not_one(bad: float) -> None:
    with pytest.raises(ValueError, match="finite positive price"):
        Quote(bad, 1.0, 1.0, 0)


def test_the_manifest_record_round_trips_and_bad_records_are_no_quote() -> None:
    q = Quote(99.0, 101.0, 100.0, 1_700_000_000_000)
    assert Quote.from_json(q.as_json()) == q
    for bad in (None, [], "x", {"bid": 1.0}, {"bid": None, "ask": None, "last": None, "at_ms": 1},
                {"bid": 1.0, "ask": 1.0, "last": 1.0, "at_ms": 1.5}, {"last": 1.0, "at_ms": True}):
        assert Quote.from_json(bad) is None, bad
    # a bad side is dropped, not trusted: the order then takes the last price
    assert Quote.from_json({"bid": 0, "ask": "x", "last": 5.0, "at_ms": 1}) == Quote(None, None, 5.0, 1)


# --- synthetic ---------------------------------------------------------------------------

@pytest.mark.parametrize("now_ms", [
    ORIGIN_MS,  # the first candle
    ORIGIN_MS + 7 * BASE_MS,  # on a boundary: the candle that just started
    ORIGIN_MS + 7 * BASE_MS + 1,
    ORIGIN_MS + 8 * BASE_MS - 1,  # the last ms of that candle
    ORIGIN_MS + 8192 * BASE_MS,  # the first candle of the second noise block
    NOW,
])
def test_synthetic_quotes_the_open_of_the_candle_starting_at_the_clock(now_ms: int) -> None:
    src = SyntheticSource(42)
    start = ORIGIN_MS + (now_ms - ORIGIN_MS) // BASE_MS * BASE_MS
    # that candle, read once it has closed
    candle = src.fetch_candles("ETH/USDT", "5m", now_ms=start + BASE_MS, limit=1)
    assert int(candle.ts_ms[-1]) == start
    opened = float(candle.open[-1])
    assert src.fetch_quotes(["ETH/USDT"], now_ms=now_ms) == {"ETH/USDT": Quote(opened, opened, opened, start)}
    assert src.fetch_prices(["ETH/USDT"], now_ms=now_ms) == {"ETH/USDT": opened}
    # higher timeframes aggregate the same path: an hour starting now opens at that price too
    if now_ms == start and (start - ORIGIN_MS) % HOUR == 0:
        assert float(src.fetch_candles("ETH/USDT", "1h", now_ms=start + HOUR, limit=1).open[-1]) == opened


def test_synthetic_has_no_quote_before_its_first_candle() -> None:
    assert SyntheticSource(42).fetch_quotes(["BTC/USDT"], now_ms=ORIGIN_MS - 1) == {"BTC/USDT": None}
    assert SyntheticSource(42).fetch_prices(["BTC/USDT"], now_ms=ORIGIN_MS - 1) == {"BTC/USDT": None}


# --- files -------------------------------------------------------------------------------

@pytest.fixture
def files(shared_data: Path) -> FilesSource:
    return FilesSource(shared_data / "ohlcv", "binance")


@pytest.mark.parametrize(("hour", "offset_ms"), [
    ("2026-05-16T12:00", 0),  # on the boundary: the candle that just started
    ("2026-05-16T12:00", 1),
    ("2026-05-16T12:00", HOUR - 1),  # its last ms
    ("2026-05-16T16:00", 37 * 60_000),
])
def test_files_quote_the_open_of_the_finest_candle_starting_at_the_clock(files: FilesSource, shared_data: Path,
                                                                          hour: str, offset_ms: int) -> None:
    start = iso_ms(hour)
    now_ms = start + offset_ms
    rows = real_rows(shared_data, "BTC/USDT", "1h")
    opened = float(rows.loc[start, "open"])
    assert files.fetch_quotes(["BTC/USDT"], now_ms=now_ms) == {"BTC/USDT": Quote(opened, opened, opened, start)}
    assert files.fetch_prices(["BTC/USDT"], now_ms=now_ms) == {"BTC/USDT": opened}
    # here not the close of the last closed candle (what the ticker used to say; they often agree)
    assert opened != float(rows.loc[start - HOUR, "close"])


def test_files_quote_the_last_close_in_an_outage_of_the_data(files: FilesSource, shared_data: Path) -> None:
    # BTC/USDT 1h has no 07:00 or 08:00 candle on 2021-09-29 (an exchange outage): through it
    # the last price known is the 06:00 candle's close, as of 07:00; at 09:00 trading is back
    rows = real_rows(shared_data, "BTC/USDT", "1h")
    assert iso_ms("2021-09-29T07:00") not in rows.index and iso_ms("2021-09-29T08:00") not in rows.index
    closed = float(rows.loc[iso_ms("2021-09-29T06:00"), "close"])
    assert closed != float(rows.loc[iso_ms("2021-09-29T06:00"), "open"])
    for now_ms in (iso_ms("2021-09-29T07:00"), iso_ms("2021-09-29T08:40")):
        assert files.fetch_quotes(["BTC/USDT"], now_ms=now_ms) == {
            "BTC/USDT": Quote(closed, closed, closed, iso_ms("2021-09-29T07:00"))}
    reopened = float(rows.loc[iso_ms("2021-09-29T09:00"), "open"])
    assert files.fetch_prices(["BTC/USDT"], now_ms=iso_ms("2021-09-29T09:00")) == {"BTC/USDT": reopened}


def _copy(shared_data: Path, dest: Path, names: Sequence[str]) -> FilesSource:
    (dest / "binance").mkdir(parents=True)
    for name in names:
        shutil.copy(shared_data / "ohlcv" / "binance" / name, dest / "binance" / name)
    return FilesSource(dest, "binance")


def test_files_fall_back_to_a_coarser_timeframe_and_refuse_a_stale_one(shared_data: Path, tmp_path: Path) -> None:
    daily_only = _copy(shared_data, tmp_path / "d", ["BTC_USDT-1d.csv"])
    now_ms = iso_ms("2024-02-01T10:30")
    opened = float(real_rows(shared_data, "BTC/USDT", "1d").loc[iso_ms("2024-02-01T00:00"), "open"])
    assert daily_only.fetch_quotes(["BTC/USDT"], now_ms=now_ms) == {
        "BTC/USDT": Quote(opened, opened, opened, iso_ms("2024-02-01T00:00"))}

    # an hourly file that stops early is stale at the clock time: the daily file answers
    hourly = real_rows(shared_data, "BTC/USDT", "1h")
    cut = hourly[hourly.index < iso_ms("2024-02-01T05:00")]
    both = _copy(shared_data, tmp_path / "both", ["BTC_USDT-1d.csv"])
    cut.reset_index().to_csv(tmp_path / "both" / "binance" / "BTC_USDT-1h.csv", index=False)
    assert both.fetch_quotes(["BTC/USDT"], now_ms=now_ms)["BTC/USDT"] == Quote(opened, opened, opened,
                                                                                iso_ms("2024-02-01T00:00"))
    # ... and 2 hours of lag (max_stale_candles) is still fresh: the last price known is the
    # close of the last candle, as of its close (not its open, which is older than that close)
    at_six = iso_ms("2024-02-01T06:59")
    last_close = float(cut["close"].iloc[-1])
    assert both.fetch_quotes(["BTC/USDT"], now_ms=at_six)["BTC/USDT"] == Quote(
        last_close, last_close, last_close, iso_ms("2024-02-01T05:00"))

    first = int(hourly.index[0])
    assert _copy(shared_data, tmp_path / "h", ["BTC_USDT-1h.csv.gz"]).fetch_quotes(
        ["BTC/USDT", "DOGE/USDT"], now_ms=first - 1) == {"BTC/USDT": None, "DOGE/USDT": None}


# --- ccxt --------------------------------------------------------------------------------

def test_ccxt_quotes_the_tickers_bid_and_ask(fx: FakeExchange, src: CcxtSource) -> None:
    fx.set_book("BTC/USDT", bid=60_000.5, ask=60_001.25)
    quotes = src.fetch_quotes(["BTC/USDT", "ETH/USDT", "FOO/USDT"], now_ms=NOW)
    last = src.fetch_prices(["BTC/USDT"], now_ms=NOW)["BTC/USDT"]
    assert quotes["BTC/USDT"] is not None and quotes["FOO/USDT"] is None
    assert (quotes["BTC/USDT"].bid, quotes["BTC/USDT"].ask, quotes["BTC/USDT"].last) == (60_000.5, 60_001.25, last)
    assert quotes["BTC/USDT"].at_ms == NOW  # the fake's as-of time for a candle forming now
    eth = quotes["ETH/USDT"]
    assert eth is not None and eth.bid == eth.ask == eth.last  # its default book: no spread


def test_ccxt_has_no_quote_from_a_stale_ticker(fx: FakeExchange, src: CcxtSource) -> None:
    fx.add_fault("/api/v3/ticker/24hr", "stale", count=None, lag=5)
    assert src.fetch_quotes(["BTC/USDT"], now_ms=NOW) == {"BTC/USDT": None}


# --- the fetch step ----------------------------------------------------------------------

def test_the_fetch_step_records_quotes_beside_the_marks(tmp_path: Path) -> None:
    doc = prefetch(SyntheticSource(42), [("BTC/USDT", "1h")], ["ETH/USDT"], NOW, tmp_path)
    start = NOW // BASE_MS * BASE_MS
    for sym in ("BTC/USDT", "ETH/USDT"):
        q = SyntheticSource(42).fetch_quotes([sym], now_ms=NOW)[sym]
        assert doc["quotes"][sym] == {"bid": q.bid, "ask": q.ask, "last": q.last, "at_ms": start}
        assert doc["prices"][sym] == q.last


class PricesOnly:
    """A source without fetch_quotes: its last price is the quote, with no bid or ask."""

    name = "prices-only"

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict:
        return SyntheticSource(42).fetch_market_rules(symbols)

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int):  # noqa: ANN201
        return SyntheticSource(42).fetch_candles(symbol, timeframe, now_ms=now_ms, limit=limit)

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        return {s: (123.5 if s == "BTC/USDT" else float("nan")) for s in symbols}

    def close(self) -> None:
        pass


def test_a_source_with_prices_only_quotes_its_last(tmp_path: Path) -> None:
    doc = prefetch(PricesOnly(), [], ["BTC/USDT", "ETH/USDT"], NOW, tmp_path)
    assert doc["quotes"] == {"BTC/USDT": {"bid": None, "ask": None, "last": 123.5, "at_ms": NOW}, "ETH/USDT": None}
    assert doc["prices"] == {"BTC/USDT": 123.5, "ETH/USDT": None}
    assert np.isfinite(doc["prices"]["BTC/USDT"])
