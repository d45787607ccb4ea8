"""Scoring of options proposals (REFERENCE section 7), one term at a time (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.scoring import HeldOption, Score, cap_refusal, net_delta, score_proposal

SPOT = 100_000.0
E1, E2, E3 = 1_770_000_000_000, 1_772_000_000_000, 1_774_000_000_000  # three expiries (ms)


@dataclass(frozen=True)
class L:
    """A proposed leg with only what scoring reads."""

    action: str
    option_type: str
    strike: float
    expiry_ms: int = E2
    quantity: float = 1.0
    premium: float = 0.01
    delta: float = 0.0


def H(option_type: str, strike: float, *, side: str = "long", expiry_ms: int = E1, qty: float = 1.0,
      premium: float = 0.01, delta: float = 0.0, pid: str = "h1") -> HeldOption:
    name = f"BTC-1JAN30-{strike:.0f}-{'C' if option_type == 'call' else 'P'}"
    return HeldOption(pid, name, option_type, strike, expiry_ms, side, qty, premium, delta)  # type: ignore[arg-type]


def term(score: Score, word: str) -> int:
    """The hundredths of the one term whose reason contains ``word``."""
    found = [c for c, why in score.terms if word in why]
    assert len(found) == 1, score.reason
    return found[0]


def test_no_positions_scores_one() -> None:
    s = score_proposal([L("sell", "call", 150_000, delta=0.9)], [], SPOT)
    assert s.value == 1.0 and s.terms == ((100, "no open option positions"),)
    assert s.passes(0.3)


# --- strike distance ---


@pytest.mark.parametrize(("other_strike", "cents"), [
    (111_000, 40),   # 11 % away
    (110_000, 20),   # exactly 10 %: not > 10 %
    (107_000, 20),
    (105_000, -30),  # exactly 5 %: <= 5 %
    (100_000, -30),
    (89_000, 40),    # distance is absolute: 11 % below
])
def test_strike_distance_term(other_strike: float, cents: int) -> None:
    s = score_proposal([L("buy", "call", 100_000)], [H("call", other_strike)], SPOT)
    assert term(s, "strike") == cents


def test_strike_distance_is_to_the_nearest_same_type_position_only() -> None:
    # a put at the same strike does not count against a call; the nearest call is 20 % away
    book = [H("put", 100_000, pid="p"), H("call", 120_000, pid="far"), H("call", 130_000, pid="farther")]
    s = score_proposal([L("buy", "call", 100_000)], book, SPOT)
    assert term(s, "strike") == 40 and "(far)" in s.reason
    # no call held at all: the distance is unbounded
    s = score_proposal([L("buy", "call", 100_000)], [H("put", 100_000)], SPOT)
    assert term(s, "strike") == 40 and "no call held" in s.reason


def test_strike_distance_of_a_multi_leg_proposal_is_its_nearest_leg() -> None:
    book = [H("call", 130_000)]
    far = [L("buy", "call", 95_000), L("sell", "call", 100_000, quantity=2.0), L("buy", "call", 105_000)]
    assert term(score_proposal(far, book, SPOT), "strike") == 40  # 25 % from the nearest leg
    near = [*far[:2], L("buy", "call", 126_000)]
    assert term(score_proposal(near, book, SPOT), "strike") == -30  # one leg 4 % away decides


def test_strike_distance_is_a_fraction_of_spot() -> None:
    # 8k apart: 8 % of a 100k spot, 16 % of a 50k spot
    assert term(score_proposal([L("buy", "put", 90_000)], [H("put", 98_000)], 100_000.0), "strike") == 20
    assert term(score_proposal([L("buy", "put", 90_000)], [H("put", 98_000)], 50_000.0), "strike") == 40


# --- expiry ---


def test_expiry_term() -> None:
    book = [H("put", 50_000, expiry_ms=E1)]
    assert term(score_proposal([L("buy", "call", 100_000, expiry_ms=E2)], book, SPOT), "expiry") == 30
    assert term(score_proposal([L("buy", "call", 100_000, expiry_ms=E1)], book, SPOT), "expiry") == -10
    # any leg on a held expiry makes the proposal's expiry held
    mixed = [L("buy", "call", 100_000, expiry_ms=E2), L("buy", "put", 90_000, expiry_ms=E1)]
    assert term(score_proposal(mixed, book, SPOT), "expiry") == -10
    assert term(score_proposal([L("buy", "call", 1, expiry_ms=E3)], [*book, H("call", 2, expiry_ms=E2)],
                               SPOT), "expiry") == 30


# --- net delta, signed by side and weighted by quantity ---


@pytest.mark.parametrize(("book_delta", "leg", "cents"), [
    (0.4, L("buy", "put", 90_000, delta=-0.3), 20),     # 0.4 -> 0.1: nearer zero
    (0.4, L("buy", "call", 110_000, delta=0.3), -30),   # 0.4 -> 0.7: further and beyond 0.5
    (0.1, L("buy", "call", 110_000, delta=0.3), 0),     # 0.1 -> 0.4: further, within 0.5
    (0.4, L("sell", "call", 110_000, delta=0.3), 20),   # a SOLD call is negative delta: 0.4 -> 0.1
    (-0.4, L("sell", "put", 90_000, delta=-0.3), 20),   # a sold put is positive delta: -0.4 -> -0.1
    (-0.4, L("sell", "call", 110_000, delta=0.3), -30),  # -0.4 -> -0.7
    (0.3, L("sell", "call", 110_000, delta=0.3), 20),   # 0.3 -> 0.0
    (0.3, L("buy", "call", 110_000, delta=0.0), 0),     # unchanged
])
def test_net_delta_term(book_delta: float, leg: L, cents: int) -> None:
    book = [H("put", 50_000, delta=book_delta, pid="d")]  # one position carrying the test's delta
    assert term(score_proposal([leg], book, SPOT), "net delta") == cents


def test_signed_deltas_where_unsigned_would_score_wrong() -> None:
    # held: a short put, per-contract delta -0.3 -> the book is +0.3 (a sold put gains when the coin rises)
    # proposed: sell a call, per-contract delta +0.3 -> -0.3 for the book: net 0, a hedge (+0.2).
    # The original summed unsigned per-contract deltas: 0.3 + 0.3 = 0.6, "further and beyond 0.5" (-0.3).
    book = [H("put", 90_000, side="short", delta=-0.3)]
    s = score_proposal([L("sell", "call", 110_000, delta=0.3)], book, SPOT)
    assert net_delta(book) == pytest.approx(0.3)
    assert term(s, "net delta") == 20 and "+0.3000 -> +0.0000" in s.reason
    # and the whole score: 0.5 + 0.4 (no call held) + 0.3 (new expiry) + 0.2 (hedge) + 0.0 (premium equal)
    assert s.value == 1.4


def test_deltas_are_weighted_by_quantity() -> None:
    # 0.1 BTC of a 0.9-delta call is 0.09 coin of delta: within 0.5, no penalty
    book = [H("call", 150_000, delta=0.3, qty=1.0)]
    assert term(score_proposal([L("buy", "call", 90_000, delta=0.9, quantity=0.1)], book, SPOT),
                "net delta") == 0
    # 1 BTC of it is 0.9: beyond 0.5
    assert term(score_proposal([L("buy", "call", 90_000, delta=0.9, quantity=1.0)], book, SPOT),
                "net delta") == -30
    # held quantity counts too: 5 x 0.1-delta short calls are -0.5 of book delta
    book = [H("call", 150_000, side="short", delta=0.1, qty=5.0)]
    assert net_delta(book) == pytest.approx(-0.5)


def test_the_legs_of_a_proposal_are_netted_together() -> None:
    # a straddle: call +0.55, put -0.45 per contract -> +0.1 together. Alone the call takes
    # a 0.3 book to 0.85 (-0.3); with its put, to 0.4 (further, but within 0.5: 0)
    book = [H("call", 150_000, delta=0.3)]
    call, put = L("buy", "call", 100_000, delta=0.55), L("buy", "put", 100_000, delta=-0.45)
    assert term(score_proposal([call], book, SPOT), "net delta") == -30
    assert term(score_proposal([call, put], book, SPOT), "net delta") == 0
    # a 1:-2:1 butterfly nets to -0.01: the 0.3 book goes nearer zero
    fly = [L("buy", "call", 95_000, delta=0.66), L("sell", "call", 100_000, delta=0.56, quantity=2.0),
           L("buy", "call", 105_000, delta=0.45)]
    assert term(score_proposal(fly, book, SPOT), "net delta") == 20


# --- premium ---


def test_premium_term() -> None:
    sales = [H("put", 80_000, side="short", premium=0.010, pid="s1"),
             H("put", 70_000, side="short", premium=0.020, qty=3.0, pid="s2")]  # weighted mean 0.0175
    assert term(score_proposal([L("sell", "call", 120_000, premium=0.0193)], sales, SPOT), "premium") == 10
    assert term(score_proposal([L("sell", "call", 120_000, premium=0.0192)], sales, SPOT), "premium") == 0
    # a purchase has no premium term; neither has a sale when nothing is sold yet
    assert not [w for _, w in score_proposal([L("buy", "call", 120_000, premium=9.0)], sales, SPOT).terms
                if "premium" in w]
    longs = [H("put", 80_000, premium=0.001)]
    assert not [w for _, w in score_proposal([L("sell", "call", 120_000, premium=9.0)], longs, SPOT).terms
                if "premium" in w]
    # a strangle's two sold legs are averaged: (0.03 + 0.01) / 2 = 0.02 > 1.1 x 0.0175
    strangle = [L("sell", "call", 120_000, premium=0.03), L("sell", "put", 85_000, premium=0.01)]
    assert term(score_proposal(strangle, sales, SPOT), "premium") == 10


# --- the sum and the threshold ---


def test_score_sums_exactly_and_the_threshold_is_inclusive() -> None:
    # 0.5 - 0.3 (strike) - 0.1 (expiry) + 0.2 (delta) = 0.3 exactly: executes
    book = [H("call", 100_000, expiry_ms=E2, delta=0.4)]
    s = score_proposal([L("buy", "put", 100_000, expiry_ms=E2, delta=-0.3)], book, SPOT)
    assert [c for c, _ in s.terms] == [50, 40, -10, 20]  # no put held: +0.4
    s = score_proposal([L("sell", "call", 101_000, expiry_ms=E2, delta=0.3)], book, SPOT)
    assert [c for c, _ in s.terms] == [50, -30, -10, 20] and s.cents == 30
    assert s.value == 0.3 and s.passes(0.3) and not s.passes(0.31)
    assert Score(29, ((29, "x"),)).passes(0.3) is False
    # in float, 0.5 + 0.2 - 0.3 - 0.1 is 0.29999999999999993: hundredths keep it 0.3
    assert 0.5 + 0.2 - 0.3 - 0.1 < 0.3
    assert Score(50 + 20 - 30 - 10, ()).passes(0.3)


def test_reason_names_every_term() -> None:
    book = [H("call", 100_000, side="short", delta=0.4, premium=0.001)]
    s = score_proposal([L("sell", "call", 120_000, delta=0.3, premium=0.01)], book, SPOT)
    for words in ("0.5 start (1 open)", "+0.4 strike 120000 is 20.0% of spot from held call 100000 (h1)",
                  "+0.3 expiry", "-0.3 net delta -0.4000 -> -0.7000", "+0.1 sale premium", "= 1.00"):
        assert words in s.reason, s.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["call", "put"]), st.sampled_from(["long", "short"]),
                          st.floats(1e3, 3e5), st.floats(0.1, 10), st.floats(-1, 1), st.floats(0, 0.5),
                          st.sampled_from([E1, E2])), min_size=0, max_size=6),
       st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from(["call", "put"]),
                          st.floats(1e3, 3e5), st.floats(0.1, 10), st.floats(-1, 1), st.floats(1e-4, 0.5),
                          st.sampled_from([E1, E3])), min_size=1, max_size=3),
       st.floats(1e3, 3e5))
def test_score_is_one_of_the_rules_values(held: list[tuple], legs: list[tuple], spot: float) -> None:
    book = [H(t, k, side=side, qty=q, delta=d, premium=p, expiry_ms=e, pid=f"h{i}")
            for i, (t, side, k, q, d, p, e) in enumerate(held)]
    proposal = [L(a, t, k, e, q, p, d) for a, t, k, q, d, p, e in legs]
    s = score_proposal(proposal, book, spot)
    assert math.isfinite(s.value)
    if not book:
        assert s.cents == 100
    else:
        strike, expiry, delta = (c for c, _ in s.terms[1:4])
        assert s.terms[0][0] == 50 and strike in (40, 20, -30) and expiry in (30, -10)
        assert delta in (20, 0, -30) and len(s.terms) in (4, 5)
        assert s.cents == sum(c for c, _ in s.terms)
        # the order of the legs and of the book never changes the score
        assert score_proposal(proposal[::-1], book[::-1], spot).cents == s.cents


# --- the cap, and the position values ---


def test_cap_counts_the_new_legs() -> None:
    assert cap_refusal(3, 1, 4) is None
    assert cap_refusal(3, 2, 4) == "position cap: 3 open + 2 new leg(s) = 5 > 4 per strategy"
    assert cap_refusal(0, 3, 4) is None and cap_refusal(2, 3, 4) is not None
    assert cap_refusal(4, 1, 4) is not None


@pytest.mark.parametrize(("kw", "words"), [
    ({"side": "buy"}, "side 'buy'"),
    ({"option_type": "C"}, "option_type 'C'"),
    ({"strike": math.nan}, "strike nan"),
    ({"quantity": 0.0}, "quantity 0.0"),
    ({"entry_premium": -0.01}, "entry_premium -0.01"),
    ({"delta": math.nan}, "delta nan"),
    ({"delta": 1.5}, "delta 1.5"),
    ({"expiry_ms": 1.7e12}, "expiry_ms 1700000000000.0"),
])
def test_held_option_refuses_bad_values(kw: dict[str, object], words: str) -> None:
    base: dict[str, object] = dict(id="x", instrument="BTC-1JAN30-100000-C", option_type="call",
                                   strike=100_000.0, expiry_ms=E1, side="long", quantity=0.1,
                                   entry_premium=0.01, delta=0.5)
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        HeldOption(**{**base, **kw})  # type: ignore[arg-type]


def test_score_refuses_a_bad_spot_or_no_legs() -> None:
    with pytest.raises(ValueError, match="spot_usd nan"):
        score_proposal([L("buy", "call", 1.0)], [H("call", 1.0)], math.nan)
    with pytest.raises(ValueError, match="at least one leg"):
        score_proposal([], [], SPOT)
