"""Real ccxt against the local fake exchange serving the real data of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.ccxt_source import CcxtSource
from scheduler.engine.errors import ConfigError, DataError, PermanentExchangeError
from scheduler.engine.timeframes import last_closed_open_ms
from tests.fake_exchange import FakeExchange, iso_ms
from tests.market.conftest import NOW, make_source, real_rows

HOUR = 3_600_000
DAY = 86_400_000


def test_candles_are_the_real_closed_candles(
    src: CcxtSource, fx: FakeExchange, shared_data: Path
) -> None:
    c = src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=50)
    real = real_rows(shared_data, "BTC/USDT", "1h")
    assert len(c) == 50 and c.source == "ccxt:binance" and c.gaps == ()
    assert int(c.ts_ms[-1]) == last_closed_open_ms("1h", NOW) == iso_ms("2026-03-10T09:00")
    expected = real.loc[c.ts_ms.tolist()]
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(c, col), expected[col].to_numpy())
    assert fx.requests["/api/v3/klines"] == 1 and fx.requests["/api/v3/exchangeInfo"] == 1


@pytest.mark.parametrize("offset_ms", [0, 1, 59 * 60_000, HOUR - 1])
def test_forming_candle_is_never_returned(
    src: CcxtSource, fx: FakeExchange, offset_ms: int
) -> None:
    now = iso_ms("2026-03-10T10:00") + offset_ms
    fx.now_ms = now
    c = src.fetch_candles("ETH/USDT", "1h", now_ms=now, limit=10)
    assert int(c.ts_ms[-1]) == iso_ms("2026-03-10T09:00")  # the 10:00 candle is forming
    assert all(int(t) + HOUR <= now for t in c.ts_ms)


def test_daily_and_derived_4h_candles(src: CcxtSource, shared_data: Path) -> None:
    d = src.fetch_candles("SOL/USDT", "1d", now_ms=NOW, limit=30)
    assert int(d.ts_ms[-1]) == iso_ms("2026-03-09")
    real = real_rows(shared_data, "SOL/USDT", "1d")
    np.testing.assert_array_equal(d.close, real.loc[d.ts_ms.tolist(), "close"].to_numpy())
    h4 = src.fetch_candles("BTC/USDT", "4h", now_ms=NOW, limit=6)
    assert int(h4.ts_ms[-1]) == iso_ms("2026-03-10T04:00")  # 08:00-12:00 is forming at 10:20
    hourly = real_rows(shared_data, "BTC/USDT", "1h")
    block = hourly.loc[iso_ms("2026-03-10T04:00") : iso_ms("2026-03-10T07:00")]
    assert h4.close[-1] == block["close"].iloc[-1] and h4.high[-1] == block["high"].max()


def test_real_gap_is_reported_not_filled(src: CcxtSource, fx: FakeExchange) -> None:
    now = iso_ms("2023-03-24T20:30")  # Binance published no 13:00 candle that day
    fx.now_ms = now
    c = src.fetch_candles("BTC/USDT", "1h", now_ms=now, limit=12)
    assert c.gaps == ((iso_ms("2023-03-24T12:00"), iso_ms("2023-03-24T14:00")),)
    assert iso_ms("2023-03-24T13:00") not in c.ts_ms.tolist()


def test_injected_gap_is_reported(src: CcxtSource, fx: FakeExchange) -> None:
    fx.add_fault("/api/v3/klines", "gap", drop=(2, 3))
    c = src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)
    assert c.gaps == ((iso_ms("2026-03-10T06:00"), iso_ms("2026-03-10T09:00")),)


def test_stale_candles_are_an_error(src: CcxtSource, fx: FakeExchange) -> None:
    fx.add_fault("/api/v3/klines", "stale", lag=5)
    with pytest.raises(DataError, match="stale"):
        src.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=10)


def test_prices_one_batch_unknown_is_none(
    src: CcxtSource, fx: FakeExchange, shared_data: Path
) -> None:
    prices = src.fetch_prices(["BTC/USDT", "ETH/USDT", "SOL/USDT", "FOO/USDT"], now_ms=NOW)
    forming = iso_ms("2026-03-10T10:00")
    for sym in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        assert prices[sym] == real_rows(shared_data, sym, "1h").loc[forming, "open"]
    assert prices["FOO/USDT"] is None
    assert fx.requests["/api/v3/ticker/24hr"] == 1


def test_stale_ticker_is_no_price_never_zero(src: CcxtSource, fx: FakeExchange) -> None:
    fx.add_fault("/api/v3/ticker/24hr", "stale", lag=3)
    assert src.fetch_prices(["BTC/USDT"], now_ms=NOW) == {"BTC/USDT": None}


def test_market_rules_from_exchange_info(src: CcxtSource) -> None:
    rules = src.fetch_market_rules(["BTC/USDT", "SOL/USDT"])
    assert rules["BTC/USDT"].amount_step == 1e-05 and rules["BTC/USDT"].min_notional_usd == 5.0
    assert rules["SOL/USDT"].amount_step == 0.001
    with pytest.raises(PermanentExchangeError, match="did you mean BTC/USDT"):
        src.fetch_market_rules(["BTC/USDTT"])


def test_unknown_symbol_is_permanent_without_a_request(src: CcxtSource, fx: FakeExchange) -> None:
    with pytest.raises(PermanentExchangeError, match="unknown symbol 'DOGE/USDT'"):
        src.fetch_candles("DOGE/USDT", "1h", now_ms=NOW, limit=5)
    assert fx.requests["/api/v3/klines"] == 0


def test_option_chain_is_the_real_snapshot(
    src: CcxtSource, fx: FakeExchange, shared_data: Path
) -> None:
    chain = src.fetch_option_chain("BTC", now_ms=NOW)
    snap = fx.data.chain_snapshot("BTC", NOW)
    live = snap[snap["expiry_ms"] > NOW]
    assert len(chain.quotes) == len(live) > 500
    assert chain.index_price == pytest.approx(float(snap["index_price"].median()))
    row = live.iloc[len(live) // 2]
    q = chain.find(row["instrument_name"])
    assert q is not None
    assert (
        q.mark == row["mark_price"]
        and q.strike == row["strike"]
        and q.option_type == row["option_type"]
    )
    assert q.mark_iv_pct == pytest.approx(row["implied_volatility"] * 100)
    assert q.underlying_price == row["underlying"]
    assert q.bid == (
        None if pd.isna(row["bid_price"]) or row["bid_price"] <= 0 else row["bid_price"]
    )
    assert all(q.expiry_ms > NOW for q in chain.quotes)
    assert fx.requests["/api/v2/public/get_book_summary_by_currency"] == 1


def test_options_greeks_index_and_instruments(src: CcxtSource, fx: FakeExchange) -> None:
    snap = fx.data.chain_snapshot("ETH", NOW)
    row = snap.iloc[0]
    q = src.fetch_option_greeks(row["instrument_name"])
    assert q.delta == row["delta"] and q.vega == row["vega"] and q.gamma is None
    assert src.fetch_index_price("ETH") == pytest.approx(float(snap["index_price"].median()))
    instruments = src.fetch_option_instruments("ETH")
    assert len(instruments) == len(snap) and instruments[0]["min_trade_amount"] == 1.0
    with pytest.raises(PermanentExchangeError):
        src.fetch_option_greeks("ETH-1JAN20-1000-C")


def test_stale_chain_is_an_error(src: CcxtSource, fx: FakeExchange) -> None:
    fx.add_fault("/api/v2/public/get_book_summary_by_currency", "stale", lag=3600)
    with pytest.raises(DataError, match="stale"):
        src.fetch_option_chain("BTC", now_ms=NOW)


def test_dvol_real_closes_forming_day_dropped(
    src: CcxtSource, fx: FakeExchange, shared_data: Path
) -> None:
    real = pd.read_csv(shared_data / "deribit" / "BTC_DVOL-1d.csv").set_index("timestamp")["close"]
    got = src.fetch_dvol("BTC", start_ms=NOW - 365 * DAY, end_ms=NOW)
    assert (
        got[-1][0] == iso_ms("2026-03-09") and got[0][0] == iso_ms("2025-03-11") and len(got) == 364
    )
    assert all(real[t] == v for t, v in got)
    # the whole history needs two pages (continuation)
    everything = src.fetch_dvol("BTC", start_ms=iso_ms("2021-01-01"), end_ms=NOW)
    assert [t for t, _ in everything] == [t for t in real.index if t + DAY <= NOW]
    assert fx.requests["/api/v2/public/get_volatility_index_data"] == 3
    assert src.fetch_dvol("ETH", start_ms=NOW - 30 * DAY, end_ms=NOW) == []  # no ETH DVOL on file


def test_spec_is_strict() -> None:
    with pytest.raises(ConfigError, match="market.exchnage"):
        CcxtSource.from_spec({"exchnage": "binance"})
    with pytest.raises(ConfigError, match="market.exchange"):
        CcxtSource.from_spec({"exchange": "kraken"})
    s = CcxtSource.from_spec({"source": "ccxt"})
    assert s.spec.timeout_s == 10 and s.spec.retry_budget_s == 30 and s.spec.max_retries == 4
    s.close()


def test_binanceus_is_rewritten_too(fx: FakeExchange) -> None:
    with make_source(fx, exchange="binanceus") as s:
        assert s.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=3).source == "ccxt:binanceus"
        assert all(v.startswith(fx.url) for v in s.spot.urls["api"].values())
