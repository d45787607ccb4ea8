"""The six options strategies on hand-built chains: triggers, legs, guards, pricing (pure)."""

from __future__ import annotations

import dataclasses
import functools
import math
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.chain import OptionChain, OptionQuote, format_instrument_name
from options.pricing import black76_greeks, black76_price, year_fraction
from options.scoring import HeldOption
from options.strategies import (
    PARAMS,
    ButterflyParams,
    CoveredCallsParams,
    MomentumParams,
    Proposal,
    ProtectivePutsParams,
    Skip,
    StrategyInputs,
    VolMeanReversionParams,
    WheelParams,
    propose,
    roc_last_two,
)

DAY_MS = 86_400_000
NOW = int(datetime(2026, 1, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00: whole-day DTEs
SPOT = 100_000.0
STRIKES = tuple(range(60_000, 150_001, 2_500))
DTES = (7, 14, 21, 30, 37, 45, 60)


def exp(dte: float) -> int:
    return NOW + round(dte * DAY_MS)


def quote(dte: float, strike: float, option_type: str, *, vol: float = 0.5, fwd: float = SPOT,
          underlying: str = "BTC", **overrides: object) -> OptionQuote:
    """A self-consistent Deribit-like quote: Black-76 mark (coin = USD / forward) and greeks."""
    e = exp(dte)
    t, call = year_fraction(NOW, e), option_type == "call"
    mark = black76_price(fwd, strike, t, vol, call) / fwd
    g = black76_greeks(fwd, strike, t, vol, call)
    fields: dict[str, object] = dict(
        instrument=format_instrument_name(underlying, e, strike, option_type), underlying=underlying,
        expiry_ms=e, strike=float(strike), option_type=option_type, bid=mark * 0.97,
        ask=mark * 1.03, mark=mark, mark_iv_pct=vol * 100, underlying_price=fwd,
        index_price=fwd, delta=g["delta"], gamma=g["gamma"], theta=g["theta"], vega=g["vega"],
    )
    fields.update(overrides)
    return OptionQuote(**fields)  # type: ignore[arg-type]


def chain(dtes: tuple[float, ...] = DTES, strikes: tuple[float, ...] = STRIKES,
          underlying: str = "BTC", extra: tuple[OptionQuote, ...] = ()) -> OptionChain:
    return OptionChain(underlying, NOW, SPOT, _grid(dtes, strikes, underlying) + extra)


@functools.lru_cache(maxsize=32)
def _grid(dtes: tuple[float, ...], strikes: tuple[float, ...], underlying: str) -> tuple[OptionQuote, ...]:
    """``quote`` for every (dte, strike, type), priced in one vectorised call."""
    rows = [(d, float(k), t) for d in dtes for k in strikes for t in ("call", "put")]
    e = np.array([exp(d) for d, _, _ in rows])
    K = np.array([k for _, k, _ in rows])
    call = np.array([t == "call" for _, _, t in rows])
    t_years = year_fraction(NOW, e)
    marks = black76_price(SPOT, K, t_years, 0.5, call) / SPOT
    g = black76_greeks(SPOT, K, t_years, 0.5, call)
    return tuple(
        OptionQuote(format_instrument_name(underlying, int(e[i]), k, t), underlying, int(e[i]), k,
                    t, bid=marks[i] * 0.97, ask=marks[i] * 1.03, mark=float(marks[i]),  # type: ignore[arg-type]
                    mark_iv_pct=50.0, underlying_price=SPOT, index_price=SPOT,
                    delta=float(g["delta"][i]), gamma=float(g["gamma"][i]),
                    theta=float(g["theta"][i]), vega=float(g["vega"][i]))
        for i, (_, k, t) in enumerate(rows))


def inputs(ch: OptionChain | None = None, **kw: object) -> StrategyInputs:
    return StrategyInputs(ch if ch is not None else chain(), SPOT, NOW, **kw)  # type: ignore[arg-type]


def held(dte: float, strike: float, option_type: str, side: str, *, qty: float = 0.1,
         premium: float = 0.01, delta: float | None = None, pid: str = "p1") -> HeldOption:
    e = exp(dte)
    if delta is None:
        delta = black76_greeks(SPOT, strike, year_fraction(NOW, e), 0.5, option_type == "call")["delta"]
    return HeldOption(pid, format_instrument_name("BTC", e, strike, option_type), option_type,  # type: ignore[arg-type]
                      float(strike), e, side, qty, premium, delta)  # type: ignore[arg-type]


def legs(result: Proposal | Skip) -> list[tuple[str, str, float, float, float]]:
    """(action, type, strike, dte, quantity) of each leg; fails on a Skip."""
    assert isinstance(result, Proposal), result.skip_reason
    return [(a.action, a.option_type, a.strike, a.dte, a.quantity) for a in result.legs]


def skipped(result: Proposal | Skip, code: str) -> Skip:
    assert isinstance(result, Skip), f"expected a {code} skip, got {result.actions()}"
    assert result.code == code, result.skip_reason
    assert result.actions() == []
    return result


# --- leg selection ---


def test_nearest_expiry_and_nearest_strike_are_chosen() -> None:
    # 1.12 x 100k = 112k: listed 110k and 115k (grid 5k) -> 110k; 21 DTE: listed 18 and 26 -> 18
    ch = chain(dtes=(10, 18, 26, 40), strikes=tuple(range(80_000, 130_001, 5_000)))
    assert legs(propose("covered_calls", inputs(ch))) == [("sell", "call", 110_000.0, 18.0, 0.1)]


def test_ties_go_to_the_sooner_expiry_and_the_lower_strike() -> None:
    ch = chain(dtes=(17, 25), strikes=(110_000, 114_000))  # 21 DTE: 4 days each side; 112k: 2k each side
    assert legs(propose("covered_calls", inputs(ch))) == [("sell", "call", 110_000.0, 17.0, 0.1)]


@pytest.mark.parametrize(("dtes", "ok"), [((14, 52), True), ((13.99, 52.01), False), ((60,), False)])
def test_no_expiry_within_7_days_of_the_target_is_a_skip(dtes: tuple[float, ...], ok: bool) -> None:
    # protective puts target 45 DTE: 52 is exactly 7 days off (taken), 52.01 is not
    result = propose("protective_puts", inputs(chain(dtes=dtes)))
    if ok:
        assert legs(result)[0][3] == 52
    else:
        s = skipped(result, "NO_EXPIRY")
        assert "within 7 days of 45 DTE" in s.reason and "nearest" in s.reason


def test_expired_and_other_underlyings_quotes_are_never_chosen() -> None:
    stale = quote(-1, 88_000, "put")  # expired yesterday, would otherwise be nearest to 0.88 x
    eth = quote(45, 88_000, "put", underlying="ETH")
    ch = chain(dtes=(60,), strikes=(90_000,), extra=(stale, eth))
    s = skipped(propose("protective_puts", inputs(ch)), "NO_EXPIRY")
    assert "60.0 DTE" in s.reason


def test_quote_order_does_not_change_the_answer() -> None:
    ch = chain()
    shuffled = OptionChain("BTC", NOW, SPOT, tuple(reversed(ch.quotes)))
    for strategy, kw in (("vol_mean_reversion", {"iv_rank_pct": 10.0}), ("butterfly", {"iv_rank_pct": 50.0})):
        a, b = propose(strategy, inputs(ch, **kw)), propose(strategy, inputs(shuffled, **kw))
        assert a.actions() == b.actions() != []


# --- protective puts, covered calls, wheel ---


def test_protective_put_legs() -> None:
    result = propose("protective_puts", inputs())
    assert legs(result) == [("buy", "put", 87_500.0, 45.0, 0.1)]  # 0.88 x: 87.5k nearest to 88k
    (action,) = result.actions()
    assert action["instrument"] == "BTC-15FEB26-87500-P" and action["expiry"] == "2026-02-15T08:00:00Z"
    assert action["score"] == 1.0 and action["pricing"] == "quote" and action["covered_quantity"] is None


def test_protective_put_is_not_refired_while_one_is_held() -> None:
    first = propose("protective_puts", inputs())
    leg = first.legs[0]  # type: ignore[union-attr]
    book = (held(leg.dte, leg.strike, "put", "long"),)
    s = skipped(propose("protective_puts", inputs(positions=book)), "HELD")
    assert "protective put is held" in s.reason
    # a SHORT put is not a protective put: the strategy may buy one (then scoring decides)
    other = (held(30, 95_000, "put", "short"),)
    assert legs(propose("protective_puts", inputs(positions=other)))[0][:2] == ("buy", "put")


@pytest.mark.parametrize(("spot_held", "covered"), [(0.0, 0.0), (0.04, 0.04), (0.1, 0.1), (3.0, 0.1)])
def test_covered_call_is_covered_only_by_spot_held(spot_held: float, covered: float) -> None:
    result = propose("covered_calls", inputs(spot_held=spot_held))
    assert legs(result) == [("sell", "call", 112_500.0, 21.0, 0.1)]
    assert result.actions()[0]["covered_quantity"] == pytest.approx(covered, abs=1e-15)


def test_covered_call_with_naked_refused_needs_the_spot() -> None:
    p = CoveredCallsParams(allow_naked=False)
    s = skipped(propose("covered_calls", inputs(spot_held=0.05), p), "NOT_ENOUGH_SPOT")
    assert "0.05" in s.reason
    assert legs(propose("covered_calls", inputs(spot_held=0.1), p))[0][0] == "sell"


def test_covered_call_not_refired_while_a_short_call_is_open() -> None:
    book = (held(21, 112_500, "call", "short"),)
    assert "short call is open" in skipped(
        propose("covered_calls", inputs(positions=book, spot_held=0.1)), "HELD").reason
    # a LONG call is not a short call
    book = (held(30, 130_000, "call", "long"),)
    assert legs(propose("covered_calls", inputs(positions=book, spot_held=0.1)))[0][0] == "sell"


def test_spot_covering_an_open_short_call_does_not_cover_a_new_one() -> None:
    # vol_mean_reversion's strangle call, with 0.25 spot of which 0.2 covers an open call
    book = (held(60, 140_000, "call", "short", qty=0.2),)
    result = propose("vol_mean_reversion", inputs(positions=book, spot_held=0.25, iv_rank_pct=90.0))
    calls = [a for a in result.actions() if a["option_type"] == "call"]
    assert calls and calls[0]["covered_quantity"] == pytest.approx(0.05)


def test_wheel_sells_a_put_then_after_assignment_a_call_then_a_put_again() -> None:
    # 1. no spot: sell a put 0.94 x at 37 DTE
    put = propose("wheel", inputs())
    assert legs(put) == [("sell", "put", 95_000.0, 37.0, 0.1)]  # 94k: 92.5k / 95k -> 95k (1k vs 1.5k)
    assert put.indicators["wheel_phase"] == "put"
    # 2. while it is open: no second put
    book = (held(37, 95_000, "put", "short"),)
    assert "short put is open" in skipped(propose("wheel", inputs(positions=book)), "HELD").reason
    # 3. it expired in the money: the engine bought 0.1 coin at the strike, the put is gone
    call = propose("wheel", inputs(spot_held=0.1))
    assert legs(call) == [("sell", "call", 110_000.0, 21.0, 0.1)]
    assert call.actions()[0]["covered_quantity"] == 0.1 and call.indicators["wheel_phase"] == "call"
    # 4. while the call is open: no second call
    book = (held(21, 110_000, "call", "short"),)
    skipped(propose("wheel", inputs(positions=book, spot_held=0.1)), "HELD")
    # 5. called away (spot gone, call expired): back to puts
    assert legs(propose("wheel", inputs(spot_held=0.0)))[0][:2] == ("sell", "put")


def test_wheel_never_sells_a_naked_call() -> None:
    # less spot than one leg: the wheel stays in its put phase (a call would be part naked)
    result = propose("wheel", inputs(spot_held=0.05))
    assert legs(result)[0][:2] == ("sell", "put")
    assert result.indicators["wheel_phase"] == "put"


# --- vol mean reversion, butterfly ---


def test_high_iv_rank_sells_a_strangle() -> None:
    result = propose("vol_mean_reversion", inputs(iv_rank_pct=80.0))
    assert legs(result) == [("sell", "call", 110_000.0, 30.0, 0.1), ("sell", "put", 90_000.0, 30.0, 0.1)]
    assert [a["covered_quantity"] for a in result.actions()] == [0.0, None]  # no spot: naked


def test_low_iv_rank_buys_a_straddle_on_one_strike() -> None:
    assert legs(propose("vol_mean_reversion", inputs(iv_rank_pct=10.0))) == [
        ("buy", "call", 100_000.0, 30.0, 0.1), ("buy", "put", 100_000.0, 30.0, 0.1)]
    # calls at 99k, puts at 101k, both at 97.5k: the straddle takes the shared strike
    ch = chain(dtes=(30,), strikes=(97_500,), extra=(quote(30, 99_000, "call"), quote(30, 101_000, "put")))
    assert [leg[2] for leg in legs(propose("vol_mean_reversion", inputs(ch, iv_rank_pct=10.0)))] == [
        97_500.0, 97_500.0]


def test_strangle_and_straddle_take_one_expiry_listing_calls_and_puts() -> None:
    # 30 DTE lists only calls: both legs go to 28 DTE, which lists both (not call 30 + put 28)
    calls_only = tuple(quote(30, k, "call") for k in STRIKES)
    ch = chain(dtes=(28,), extra=calls_only)
    for rank in (90.0, 10.0):
        assert {leg[3] for leg in legs(propose("vol_mean_reversion", inputs(ch, iv_rank_pct=rank)))} == {28.0}
    only = OptionChain("BTC", NOW, SPOT, calls_only)
    assert "lists call and puts" in skipped(
        propose("vol_mean_reversion", inputs(only, iv_rank_pct=90.0)), "NO_EXPIRY").reason


@pytest.mark.parametrize("rank", [25.0, 50.0, 75.0])
def test_middling_iv_rank_is_no_vol_trade(rank: float) -> None:
    s = skipped(propose("vol_mean_reversion", inputs(iv_rank_pct=rank)), "NO_TRIGGER")
    assert s.indicators["iv_rank_pct"] == rank


def test_missing_iv_rank_is_said() -> None:
    for strategy in ("vol_mean_reversion", "butterfly"):
        s = skipped(propose(strategy, inputs(iv_rank_note="no DVOL for ETH before 2026")), "NO_IV_RANK")
        assert "no DVOL" in s.reason


@pytest.mark.parametrize("rank", [30.0, 50.0, 70.0])
def test_butterfly_legs_and_quantities(rank: float) -> None:
    result = propose("butterfly", inputs(iv_rank_pct=rank))
    assert legs(result) == [("buy", "call", 95_000.0, 30.0, 0.1), ("sell", "call", 100_000.0, 30.0, 0.2),
                            ("buy", "call", 105_000.0, 30.0, 0.1)]
    scores = {a["score"] for a in result.actions()}
    assert scores == {1.0}  # one score for the whole butterfly


@pytest.mark.parametrize("rank", [0.0, 29.99, 70.01, 100.0])
def test_butterfly_outside_its_iv_band_does_nothing(rank: float) -> None:
    skipped(propose("butterfly", inputs(iv_rank_pct=rank)), "NO_TRIGGER")


def test_butterfly_on_a_coarse_grid_is_refused_not_collapsed() -> None:
    ch = chain(dtes=(30,), strikes=(80_000, 100_000, 120_000))  # 0.95/1.00/1.05 x all -> 100k
    s = skipped(propose("butterfly", inputs(ch, iv_rank_pct=50.0)), "NO_STRIKE")
    assert "100000/100000/100000" in s.reason


def test_butterfly_quantity_param() -> None:
    result = propose("butterfly", inputs(iv_rank_pct=50.0), ButterflyParams(quantity=0.3))
    assert [leg[4] for leg in legs(result)] == [0.3, 0.6, 0.3]


# --- momentum ---


@pytest.mark.parametrize(("prev", "now", "expected"), [
    (4.0, 6.0, ("buy", "call", 102_500.0, 37.0, 0.1)),  # 1.02 x: 102.5k (0.5k) over 100k (2k)
    (5.0, 5.1, ("buy", "call", 102_500.0, 37.0, 0.1)),  # x[t-1] <= X counts as below
    (-4.0, -6.0, ("buy", "put", 97_500.0, 37.0, 0.1)),
    (-5.0, -5.1, ("buy", "put", 97_500.0, 37.0, 0.1)),
    (6.0, -6.0, ("buy", "put", 97_500.0, 37.0, 0.1)),  # from above +5 straight through -5
])
def test_momentum_crosses_buy(prev: float, now: float, expected: tuple[object, ...]) -> None:
    assert legs(propose("momentum_options", inputs(roc_pct=now, prev_roc_pct=prev))) == [expected]


@pytest.mark.parametrize(("prev", "now"), [(6.0, 7.0), (4.0, 5.0), (-6.0, -7.0), (-4.0, -5.0), (0.0, 0.0)])
def test_momentum_without_a_cross_does_nothing(prev: float, now: float) -> None:
    skipped(propose("momentum_options", inputs(roc_pct=now, prev_roc_pct=prev)), "NO_TRIGGER")


@pytest.mark.parametrize(("prev", "now"), [(None, 6.0), (4.0, None), (4.0, math.nan), (math.inf, 6.0)])
def test_momentum_without_roc_says_so(prev: float | None, now: float | None) -> None:
    s = skipped(propose("momentum_options", inputs(roc_pct=now, prev_roc_pct=prev)), "NO_DATA")
    assert all(not isinstance(v, float) or math.isfinite(v) for v in s.indicators.values())


def test_roc_last_two_matches_the_spot_indicator() -> None:
    from strategies.indicators import roc

    closes = 100.0 + np.cumsum(np.random.default_rng(7).normal(0.0, 1.0, 60))
    ref = roc(closes, 14)
    assert roc_last_two(closes, 14) == pytest.approx((ref[-1], ref[-2]), rel=1e-12)
    assert roc_last_two(closes[:15], 14) is None  # needs 16 closes for two values
    assert roc_last_two(closes[:16], 14) is not None
    bad = closes.copy()
    bad[-15] = 0.0  # the base of the last ROC
    assert roc_last_two(bad, 14) is None


# --- the cap, held instruments, scoring through propose ---


def test_cap_counts_every_new_leg() -> None:
    book = tuple(held(60, k, "call", "long", pid=f"p{i}") for i, k in enumerate((60_000, 62_500, 65_000)))
    s = skipped(propose("vol_mean_reversion", inputs(positions=book, iv_rank_pct=10.0)), "CAP")
    assert "3 open + 2 new leg(s) = 5 > 4" in s.reason
    # one leg with 3 open fits
    assert isinstance(propose("protective_puts", inputs(positions=book)), Proposal)
    # the butterfly's 3 legs do not fit beside 2 open
    s = skipped(propose("butterfly", inputs(positions=book[:2], iv_rank_pct=50.0)), "CAP")
    assert "2 open + 3 new" in s.reason
    assert isinstance(propose("butterfly", inputs(positions=book[:1], iv_rank_pct=50.0)), Proposal)
    # and the cap is a parameter
    skipped(propose("protective_puts", inputs(positions=book), ProtectivePutsParams(max_positions=3)), "CAP")


def test_the_same_instrument_is_not_stacked_on_the_same_side() -> None:
    first = propose("vol_mean_reversion", inputs(iv_rank_pct=90.0))
    book = tuple(held(leg.dte, leg.strike, leg.option_type, "short", pid=f"s{i}")
                 for i, leg in enumerate(first.legs))  # type: ignore[union-attr]
    s = skipped(propose("vol_mean_reversion", inputs(positions=book, iv_rank_pct=90.0)), "HELD")
    assert "already held short" in s.reason


def test_a_low_score_is_a_skip_with_the_score() -> None:
    # book delta -0.6 + 0.15 = -0.45; buying a put (delta < 0) takes it beyond -0.5 (-0.3);
    # the put is 0.5 % of spot from the held short put (-0.3) of the same expiry (-0.1): -0.2
    book = (held(21, 105_000, "call", "short", qty=1.0, delta=0.6, pid="c"),
            held(45, 88_000, "put", "short", qty=0.5, delta=-0.3, pid="p"))
    s = skipped(propose("protective_puts", inputs(positions=book), ProtectivePutsParams(quantity=1.0)),
                "LOW_SCORE")
    assert s.score is not None and s.score.value == -0.2 and "score -0.20 < 0.3" in s.reason
    # the same trade passes when the bar is lowered
    result = propose("protective_puts", inputs(positions=book),
                     ProtectivePutsParams(quantity=1.0, min_score=-1.0))
    assert isinstance(result, Proposal) and result.actions()[0]["score"] == s.score.value


def test_every_action_carries_score_and_reason() -> None:
    book = (held(60, 130_000, "call", "long"),)
    result = propose("butterfly", inputs(positions=book, iv_rank_pct=50.0))
    actions = result.actions()
    assert len(actions) == 3 and len({a["score_reason"] for a in actions}) == 1
    assert "start (1 open)" in actions[0]["score_reason"] and "net delta" in actions[0]["score_reason"]
    keys = {"action", "option_type", "strike", "expiry", "dte", "premium", "premium_usd", "quantity",
            "greeks", "score", "score_reason", "instrument", "pricing", "expiry_ms", "covered_quantity", "assign"}
    assert all(set(a) == keys for a in actions)


# --- pricing, bad quotes, zero premiums ---


def _one_quote_chain(**overrides: object) -> OptionChain:
    return OptionChain("BTC", NOW, SPOT, (quote(45, 87_500, "put", **overrides),))


def test_quote_without_greeks_gets_model_greeks_at_mark_iv() -> None:
    ch = _one_quote_chain(delta=None, vega=math.nan)
    (a,) = propose("protective_puts", inputs(ch)).actions()
    ref = quote(45, 87_500, "put")
    assert a["pricing"] == "quote mark; greeks model: mark_iv"
    assert a["premium"] == ref.mark
    assert a["greeks"]["delta"] == pytest.approx(ref.delta, rel=1e-12)
    assert a["greeks"]["vega"] == pytest.approx(ref.vega, rel=1e-12)


def test_quote_without_mark_is_priced_by_the_model() -> None:
    ch = _one_quote_chain(mark=None, bid=None, ask=None)
    (a,) = propose("protective_puts", inputs(ch)).actions()
    assert a["pricing"] == "model: mark_iv"
    assert a["premium"] == pytest.approx(quote(45, 87_500, "put").mark, rel=1e-12)


def test_quote_without_mark_or_iv_uses_realized_vol_or_is_refused() -> None:
    ch = _one_quote_chain(mark=None, mark_iv_pct=None)
    skipped(propose("protective_puts", inputs(ch)), "BAD_QUOTE")
    (a,) = propose("protective_puts", inputs(ch, realized_vol=0.6)).actions()
    assert a["pricing"] == "model: realized_vol"
    assert a["premium"] == pytest.approx(quote(45, 87_500, "put", vol=0.6).mark, rel=1e-12)


def test_premium_usd_is_the_coin_premium_at_the_index() -> None:
    ch = _one_quote_chain(index_price=98_000.0)  # index below the forward (contango)
    (a,) = propose("protective_puts", inputs(ch)).actions()
    assert a["premium_usd"] == pytest.approx(a["premium"] * 98_000.0, rel=1e-15)
    ch = _one_quote_chain(index_price=None)  # falls back to the chain's index
    ch = dataclasses.replace(ch, index_price=97_000.0)
    (a,) = propose("protective_puts", inputs(ch)).actions()
    assert a["premium_usd"] == pytest.approx(a["premium"] * 97_000.0, rel=1e-15)


@pytest.mark.parametrize("mark", [0.0, -0.01, math.nan, math.inf])
def test_zero_or_garbage_mark_without_iv_is_never_traded(mark: float) -> None:
    ch = _one_quote_chain(mark=mark, mark_iv_pct=None)
    skipped(propose("protective_puts", inputs(ch)), "BAD_QUOTE")


def test_a_model_premium_below_one_tick_is_never_proposed() -> None:
    # at 1 % vol a 0.88 x put is worth ~1e-300 by the model (no mark to fall back on)
    ch = OptionChain("BTC", NOW, SPOT, (quote(45, 87_500, "put", mark=None, mark_iv_pct=1.0),))
    s = skipped(propose("protective_puts", inputs(ch)), "ZERO_PREMIUM")
    assert "never proposed" in s.reason


_maybe = st.one_of(st.none(), st.just(0.0), st.just(math.nan), st.just(math.inf), st.just(-1.0),
                   st.floats(1e-6, 2.0))


@settings(max_examples=300, deadline=None)
@given(mark=_maybe, iv=st.one_of(_maybe, st.floats(1.0, 300.0)), fwd=st.one_of(st.none(), st.just(math.nan),
       st.floats(1e3, 1e6)), delta=_maybe, gamma=_maybe, index=st.one_of(st.none(), st.floats(1e3, 1e6)),
       rv=st.one_of(st.none(), st.floats(0.01, 3.0)), strategy=st.sampled_from(sorted(PARAMS)))
def test_no_nan_and_no_zero_premium_ever_leaves(
    mark: float | None, iv: float | None, fwd: float | None, delta: float | None, gamma: float | None,
    index: float | None, rv: float | None, strategy: str,
) -> None:
    over = dict(mark=mark, mark_iv_pct=iv, underlying_price=fwd, delta=delta, gamma=gamma,
                index_price=index)
    qs = tuple(quote(30, k, t, **over) for k in (95_000, 100_000, 105_000, 110_000)
               for t in ("call", "put"))
    ch = OptionChain("BTC", NOW, index, qs)
    kw = dict(iv_rank_pct=80.0 if strategy == "vol_mean_reversion" else 50.0, roc_pct=6.0,
              prev_roc_pct=4.0, realized_vol=rv)
    p = PARAMS[strategy](**({"target_dte_days": 30.0} if strategy not in ("wheel",) else
                           {"put_dte_days": 30.0}))
    result = propose(strategy, inputs(ch, **kw), p)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in result.indicators.values())
    for a in result.actions():
        numbers = [a["strike"], a["dte"], a["premium"], a["premium_usd"], a["quantity"], a["score"],
                   *a["greeks"].values()]
        assert all(isinstance(x, float) and math.isfinite(x) for x in numbers), a
        assert a["premium"] >= 0.0001 and a["premium_usd"] > 0


# --- inputs and params ---


@pytest.mark.parametrize(("field", "value"), [("spot_usd", math.nan), ("spot_usd", 0.0), ("spot_held", -1.0),
                                              ("iv_rank_pct", 101.0), ("iv_rank_pct", math.nan),
                                              ("realized_vol", 0.0)])
def test_bad_inputs_are_a_skip_that_says_the_value(field: str, value: float) -> None:
    bad = dataclasses.replace(inputs(iv_rank_pct=50.0), **{field: value})
    s = skipped(propose("butterfly", bad), "BAD_INPUT")
    assert field in s.reason
    assert all(not isinstance(v, float) or math.isfinite(v) for v in s.indicators.values())


def test_a_position_on_another_underlying_is_bad_input() -> None:
    e = exp(30)
    eth = HeldOption("e1", format_instrument_name("ETH", e, 3000, "call"), "call", 3000.0, e, "long",
                     1.0, 0.05, 0.5)
    assert "ETH-" in skipped(propose("protective_puts", inputs(positions=(eth,))), "BAD_INPUT").reason


def test_contract_minimum_by_underlying() -> None:
    eth = OptionChain("ETH", NOW, SPOT, tuple(quote(45, 87_500, "put", underlying="ETH") for _ in (0,)))
    assert legs(propose("protective_puts", inputs(eth)))[0][4] == 1.0
    sol = OptionChain("SOL_USDC", NOW, SPOT, (quote(45, 87_500, "put", underlying="SOL_USDC"),))
    assert "set the strategy's quantity" in skipped(propose("protective_puts", inputs(sol)), "BAD_INPUT").reason
    assert legs(propose("protective_puts", inputs(sol), ProtectivePutsParams(quantity=5.0)))[0][4] == 5.0


@pytest.mark.parametrize(("cls", "kw", "words"), [
    (ProtectivePutsParams, {"put_moneyness": 0.0}, "put_moneyness 0.0"),
    (ProtectivePutsParams, {"target_dte_days": math.nan}, "target_dte_days nan"),
    (ProtectivePutsParams, {"quantity": -0.1}, "quantity -0.1"),
    (ProtectivePutsParams, {"max_positions": 0}, "max_positions 0"),
    (CoveredCallsParams, {"allow_naked": 1}, "allow_naked 1"),
    (VolMeanReversionParams, {"buy_below_rank": 80.0}, "buy_below_rank 80.0"),
    (ButterflyParams, {"lower_moneyness": 1.01}, "must rise"),
    (ButterflyParams, {"max_rank": 120.0}, "max_rank 120.0"),
    (MomentumParams, {"threshold_pct": -1.0}, "threshold_pct"),
    (WheelParams, {"call_dte_days": -21.0}, "call_dte_days -21.0"),
])
def test_bad_params_are_refused_with_the_value(cls: type, kw: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        cls(**kw)


def test_params_must_match_the_strategy() -> None:
    with pytest.raises(ValueError, match="takes WheelParams"):
        propose("wheel", inputs(), ProtectivePutsParams())
    with pytest.raises(ValueError, match="unknown options strategy"):
        propose("iron_condor", inputs())


def test_importing_options_does_not_import_numpy() -> None:
    # the daemon's config validator imports `options` and must stay numpy-free
    code = ("import sys, options; assert 'numpy' not in sys.modules; "
            "assert callable(options.propose); assert 'numpy' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
