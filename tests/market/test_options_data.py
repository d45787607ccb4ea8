"""Pure parsing of Deribit names, expiries, chains and DVOL rows (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.options_data import chain_from_book_summary, dvol_closes, quote_from_deribit
from options.chain import (
    OptionChain,
    expiry_code,
    expiry_ms_from_code,
    format_instrument_name,
    parse_instrument_name,
)

DAY = 86_400_000


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_parse_name_gives_expiry_at_0800_utc() -> None:
    spec = parse_instrument_name("BTC-27MAR26-70000-C")
    assert spec.underlying == "BTC"
    assert spec.expiry_ms == ms(2026, 3, 27, 8)
    assert spec.strike == 70000.0
    assert spec.option_type == "call"


def test_parse_single_digit_day_decimal_strike_and_linear() -> None:
    assert parse_instrument_name("ETH-5JAN26-3200-P").expiry_ms == ms(2026, 1, 5, 8)
    spec = parse_instrument_name("XRP_USDC-30MAY25-2d2-C")
    assert (spec.underlying, spec.strike) == ("XRP_USDC", 2.2)


@pytest.mark.parametrize(
    "bad",
    [
        "BTC-PERPETUAL",
        "BTC-27MAR26",
        "BTC-27XYZ26-70000-C",
        "BTC-31FEB26-1-C",
        "btc-27MAR26-1-C",
        "",
    ],
)
def test_bad_names_are_refused_with_the_expected_shape(bad: str) -> None:
    with pytest.raises(ValueError, match="Deribit"):
        parse_instrument_name(bad)


@given(
    st.dates(min_value=datetime(2020, 1, 1).date(), max_value=datetime(2099, 12, 31).date()),
    st.integers(min_value=1, max_value=10_000_000),
    st.sampled_from(["call", "put"]),
    st.sampled_from(["BTC", "ETH", "SOL_USDC"]),
)
def test_name_round_trip(day, strike, option_type, underlying) -> None:  # type: ignore[no-untyped-def]
    expiry = ms(day.year, day.month, day.day, 8)
    name = format_instrument_name(underlying, expiry, float(strike), option_type)
    spec = parse_instrument_name(name)
    assert (spec.underlying, spec.expiry_ms, spec.strike, spec.option_type) == (
        underlying,
        expiry,
        float(strike),
        option_type,
    )
    assert expiry_ms_from_code(expiry_code(expiry)) == expiry


def _row(name: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "instrument_name": name,
        "mark_price": 0.05,
        "mark_iv": 55.5,
        "bid_price": 0.049,
        "ask_price": 0.051,
        "underlying_price": 70100.0,
        "estimated_delivery_price": 70000.0,
        "open_interest": 12.0,
        "creation_timestamp": 1,
    }
    row.update(kw)
    return row


def test_missing_or_zero_prices_are_none_never_zero() -> None:
    q = quote_from_deribit(_row("BTC-27MAR26-70000-C", bid_price=None, ask_price=0, mark_iv="nan"))
    assert q.bid is None and q.ask is None and q.mark_iv_pct is None
    assert q.mark == 0.05 and q.index_price == 70000.0 and q.underlying_price == 70100.0


def test_ticker_shape_gives_greeks() -> None:
    q = quote_from_deribit(
        {
            "instrument_name": "ETH-27MAR26-2000-P",
            "best_bid_price": 0.01,
            "best_ask_price": 0.012,
            "mark_price": 0.011,
            "mark_iv": 60.1,
            "index_price": 2000.0,
            "greeks": {"delta": -0.4, "gamma": 0.001, "theta": -2.0, "vega": 1.5},
        }
    )
    assert (q.bid, q.ask, q.delta, q.gamma, q.theta, q.vega) == (
        0.01,
        0.012,
        -0.4,
        0.001,
        -2.0,
        1.5,
    )


def test_chain_drops_expired_foreign_and_non_option_rows() -> None:
    now = ms(2026, 3, 27, 8)  # the 27MAR26 options expire exactly now
    rows = [
        _row("BTC-27MAR26-70000-C"),
        _row("BTC-28MAR26-70000-P"),
        _row("BTC-3APR26-60000-C"),
        _row("ETH-3APR26-2000-C"),
        _row("BTC-PERPETUAL"),
    ]
    chain = chain_from_book_summary("BTC", rows, now_ms=now, index_price=None)
    assert isinstance(chain, OptionChain)
    assert [q.instrument for q in chain.quotes] == ["BTC-28MAR26-70000-P", "BTC-3APR26-60000-C"]
    assert chain.index_price == 70000.0
    assert chain.expiries_ms() == (ms(2026, 3, 28, 8), ms(2026, 4, 3, 8))
    assert chain.find("BTC-3APR26-60000-C") is chain.quotes[1]


def test_dvol_keeps_closed_days_only() -> None:
    start = ms(2026, 1, 1)
    rows = [[start + i * DAY, 1, 1, 1, 50.0 + i] for i in range(5)]
    rows.append([start + 2 * DAY, 1, 1, 1, 52.0])  # duplicate
    rows.append([start + 5 * DAY, 1, 1, 1, None])  # no close
    now = start + 4 * DAY + 3_600_000  # day 4 is forming
    assert dvol_closes(rows, start_ms=start, end_ms=now) == [
        (start, 50.0),
        (start + DAY, 51.0),
        (start + 2 * DAY, 52.0),
        (start + 3 * DAY, 53.0),
    ]
