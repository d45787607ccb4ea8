"""The synthetic option chain: Deribit-shaped, self-consistent, deterministic."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from market.options_data import OptionsSource
from market.synthetic import SyntheticSource
from market.synthetic_options import SyntheticOptions
from options.chain import OptionChain, parse_instrument_name
from options.pricing import black76_price, year_fraction
from scheduler.engine.errors import DataError, PermanentExchangeError

DAY_MS = 86_400_000
NOW_MS = [
    int(datetime(2026, 1, 1, 9, 0, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2025, 6, 27, 7, 59, tzinfo=UTC).timestamp() * 1000),  # a quarterly expiry day, before 08:00
    int(datetime(2025, 6, 27, 8, 0, tzinfo=UTC).timestamp() * 1000),  # ... at 08:00
    int(datetime(2024, 12, 31, 23, 55, tzinfo=UTC).timestamp() * 1000),
]


@pytest.fixture(scope="module")
def source() -> SyntheticOptions:
    return SyntheticOptions(seed=42)


@pytest.fixture(scope="module", params=[(u, n) for u in ("BTC", "ETH") for n in NOW_MS])
def chain(request: pytest.FixtureRequest, source: SyntheticOptions) -> OptionChain:
    underlying, now_ms = request.param
    return source.fetch_option_chain(underlying, now_ms=now_ms)


def test_is_an_options_source_labelled_synthetic(source: SyntheticOptions) -> None:
    src: OptionsSource = source  # structural typing: the protocol's three methods
    assert callable(src.fetch_option_chain) and callable(src.fetch_index_price)
    assert callable(src.fetch_dvol)
    assert source.source == "synthetic" and "SYNTHETIC" in (SyntheticOptions.__doc__ or "")


def test_index_is_the_synthetic_spot(chain: OptionChain) -> None:
    spot = SyntheticSource(42).fetch_prices([f"{chain.underlying}/USDT"], now_ms=chain.now_ms)
    assert chain.index_price == spot[f"{chain.underlying}/USDT"]
    assert all(q.index_price == chain.index_price == q.underlying_price for q in chain.quotes)


def test_names_parse_back(chain: OptionChain) -> None:
    assert len({q.instrument for q in chain.quotes}) == len(chain.quotes)
    for q in chain.quotes:
        spec = parse_instrument_name(q.instrument)
        assert (spec.underlying, spec.expiry_ms, spec.strike, spec.option_type) == (
            q.underlying, q.expiry_ms, q.strike, q.option_type
        )


def test_expiries_are_future_fridays_at_0800_with_deribit_cycles(chain: OptionChain) -> None:
    expiries = chain.expiries_ms()
    for e in expiries:
        dt = datetime.fromtimestamp(e / 1000, tz=UTC)
        assert dt.weekday() == 4 and (dt.hour, dt.minute, dt.second) == (8, 0, 0)
        assert e > chain.now_ms
    dts = [datetime.fromtimestamp(e / 1000, tz=UTC) for e in expiries]
    now = datetime.fromtimestamp(chain.now_ms / 1000, tz=UTC)
    assert expiries[0] > chain.now_ms + 3_600_000  # delisted in the last hour
    weeklies = [d for d in dts if (d - now).days <= 28]
    month_ends = [d for d in dts if _is_last_friday(d)]
    quarterlies = [d for d in month_ends if d.month % 3 == 0]
    assert len(weeklies) >= 4
    assert len(month_ends) >= 3
    assert len([d for d in quarterlies if (d - now).days > 95]) >= 2
    assert (dts[-1] - now).days > 250


def _is_last_friday(d: datetime) -> bool:
    return (d.day + 7) > _days_in_month(d.year, d.month)


def _days_in_month(year: int, month: int) -> int:
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return (nxt - datetime(year, month, 1, tzinfo=UTC)).days


def test_strikes_on_a_round_grid_around_spot(chain: OptionChain) -> None:
    spot = chain.index_price
    assert spot is not None
    for e in chain.expiries_ms():
        strikes = sorted({q.strike for q in chain.at_expiry(e)})
        steps = np.diff(strikes)
        assert 4 <= len(strikes) <= 81 and (steps == steps[0]).all()
        assert strikes[1] < spot < strikes[-2]  # at least 2 strikes each side
        mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
        assert mantissa in (1.0, 2.0, 2.5, 5.0)
        if e - chain.now_ms >= 14 * DAY_MS:  # REFERENCE's targets 0.88x .. 1.12x are listed
            assert strikes[0] <= 0.87 * spot and strikes[-1] >= 1.13 * spot


def test_marks_reprice_from_mark_iv_and_keep_parity(chain: OptionChain) -> None:
    q = chain.quotes
    F = np.array([x.underlying_price for x in q])
    K = np.array([x.strike for x in q])
    t = year_fraction(chain.now_ms, np.array([x.expiry_ms for x in q]))
    call = np.array([x.option_type == "call" for x in q])
    vol = np.array([x.mark_iv_pct for x in q]) / 100.0
    mark = np.array([x.mark for x in q])
    np.testing.assert_allclose(black76_price(F, K, t, vol, call) / F, mark, rtol=1e-9, atol=0)
    assert np.isfinite(mark).all() and (mark > 0).all()
    by_key = {(x.expiry_ms, x.strike, x.option_type): x for x in q}
    for (e, k, kind), c in by_key.items():
        if kind == "call":
            p = by_key[(e, k, "put")]
            # coin marks: (C - P) = (F - K) / F at rate 0
            assert c.mark - p.mark == pytest.approx((c.underlying_price - k) / c.underlying_price, abs=1e-12)
            assert c.mark_iv_pct == p.mark_iv_pct


def test_bid_ask_around_the_mark_on_the_tick(chain: OptionChain) -> None:
    for q in chain.quotes:
        assert q.ask is not None and q.mark is not None and q.ask > q.mark
        assert round(q.ask / 1e-4) == pytest.approx(q.ask / 1e-4, abs=1e-6)
        if q.bid is not None:
            assert 0 < q.bid < q.mark
            assert round(q.bid / 1e-4) == pytest.approx(q.bid / 1e-4, abs=1e-6)


def test_greek_signs(chain: OptionChain) -> None:
    for q in chain.quotes:
        assert q.delta is not None and q.gamma is not None and q.vega is not None and q.theta is not None
        if q.option_type == "call":
            assert 0 < q.delta < 1
        else:
            assert -1 < q.delta < 0
        assert q.gamma > 0 and q.vega > 0 and q.theta < 0


def test_no_static_arbitrage_across_strikes(chain: OptionChain) -> None:
    for e in chain.expiries_ms():
        calls = [q for q in chain.at_expiry(e) if q.option_type == "call"]
        usd = np.array([q.mark * q.underlying_price for q in calls])  # type: ignore[operator]
        K = np.array([q.strike for q in calls])
        assert (np.diff(usd) < 0).all()  # calls cheaper as the strike rises
        slopes = np.diff(usd) / np.diff(K)
        assert (slopes > -1).all() and (np.diff(slopes) > -1e-12).all()  # convex in strike


def test_smile_and_term_structure_shape(source: SyntheticOptions) -> None:
    chain = source.fetch_option_chain("BTC", now_ms=NOW_MS[0])
    e = chain.expiries_ms()[5]
    puts = [q for q in chain.at_expiry(e) if q.option_type == "put"]
    ivs = [q.mark_iv_pct for q in puts]
    atm_i = min(range(len(puts)), key=lambda i: abs(puts[i].strike - chain.index_price))  # type: ignore[operator]
    assert ivs[0] > ivs[atm_i] and ivs[-1] > ivs[atm_i]  # a smile


def test_deterministic_per_seed_and_time(source: SyntheticOptions) -> None:
    a = source.fetch_option_chain("BTC", now_ms=NOW_MS[0])
    b = SyntheticOptions(seed=42).fetch_option_chain("BTC", now_ms=NOW_MS[0])
    c = SyntheticOptions(seed=7).fetch_option_chain("BTC", now_ms=NOW_MS[0])
    assert a == b
    assert a.quotes != c.quotes


def test_fetch_quote_prices_off_grid_instruments(source: SyntheticOptions) -> None:
    chain = source.fetch_option_chain("BTC", now_ms=NOW_MS[0])
    q = chain.quotes[10]
    assert source.fetch_quote(q.instrument, now_ms=NOW_MS[0]) == q
    name = q.instrument.replace(f"-{q.strike:.0f}-", "-123457-")
    off = source.fetch_quote(name, now_ms=NOW_MS[0])
    assert off is not None and off.strike == 123457.0 and off.mark is not None and off.mark > 0
    assert source.fetch_quote(q.instrument, now_ms=q.expiry_ms) is None


def test_index_price_without_a_time_uses_the_last_chain() -> None:
    src = SyntheticOptions(seed=42)
    assert src.fetch_index_price("BTC") is None
    chain = src.fetch_option_chain("BTC", now_ms=NOW_MS[0])
    assert src.fetch_index_price("BTC") == chain.index_price
    assert src.fetch_index_price("BTC", now_ms=NOW_MS[3]) != chain.index_price
    assert src.fetch_index_price("BTC", now_ms=0) is None


def test_dvol_daily_closed_days_and_matches_chain_level(source: SyntheticOptions) -> None:
    end = NOW_MS[0]
    dvol = source.fetch_dvol("BTC", start_ms=end - 400 * DAY_MS, end_ms=end)
    ts = [d for d, _ in dvol]
    assert ts == sorted(ts) and all(b - a == DAY_MS for a, b in zip(ts, ts[1:], strict=False))
    assert ts[-1] + DAY_MS <= end and ts[-1] + 2 * DAY_MS > end
    assert len(dvol) >= 365 and all(15 <= v <= 200 for _, v in dvol)
    assert len({v for _, v in dvol}) > 100  # it moves
    assert source.fetch_dvol("BTC", start_ms=end - 400 * DAY_MS, end_ms=end) == dvol
    # the chain's 30-day ATM vol today is yesterday's DVOL close
    level = source._level_today("BTC", end)  # noqa: SLF001
    assert round(level * 100, 2) == dvol[-1][1]
    assert source.fetch_dvol("BTC", start_ms=0, end_ms=1_704_067_200_000) == []


def test_errors_follow_the_project_policy(source: SyntheticOptions) -> None:
    with pytest.raises(PermanentExchangeError, match="expected one of"):
        source.fetch_option_chain("DOGE", now_ms=NOW_MS[0])
    with pytest.raises(DataError):
        source.fetch_option_chain("BTC", now_ms=1_000)
