"""Scoring a proposed options trade against the sleeve's open option positions (pure).

The rule is REFERENCE section 7's (the original's, fixed): with no open positions the
score is 1.0; otherwise it starts at 0.5 and adds

- strike distance from the nearest held position of the same type, as a fraction of
  spot: > 10 % +0.4, 5-10 % +0.2, <= 5 % -0.3 (no position of that type held: the
  distance is unbounded, so +0.4);
- expiry: not yet held +0.3, already held -0.1;
- net delta after the trade: further from zero AND beyond 0.5 in absolute value -0.3,
  nearer zero +0.2 (further but within 0.5, or unchanged: 0);
- premium: a sale whose premium beats 1.1 x the mean premium of the open sales +0.1.

A trade executes when the score is >= ``min_score`` (0.3). Deltas are signed by side
(a sold call is negative delta, a sold put positive) and multiplied by quantity; the
original summed unsigned per-contract deltas, which calls a hedge a concentration.

A multi-leg proposal (straddle, strangle, butterfly) is scored ONCE, as a whole, with
the legs' combined effect, because it is opened or refused as one trade:

- strike: the smallest distance over its legs (the leg that overlaps most decides);
- expiry: "not yet held" only when no leg's expiry is held;
- net delta: every leg's signed, quantity-weighted delta added to the book together
  (a straddle's call and put largely cancel);
- premium: the quantity-weighted mean premium per contract of the proposal's sold legs
  against the quantity-weighted mean entry premium of the open sales.

Scores are added in integer hundredths, so 0.5 - 0.3 - 0.1 + 0.2 is exactly 0.3 and the
``>= 0.3`` decision cannot flip on a rounding error.

The position cap (at most ``max_positions`` open per strategy) counts every leg about
to be added: a 2-leg proposal with 3 open is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

OptionType = Literal["call", "put"]
Side = Literal["long", "short"]
Action = Literal["buy", "sell"]

NET_DELTA_LIMIT = 0.5  # coin; REFERENCE section 7
PREMIUM_BEAT_FACTOR = 1.1


@dataclass(frozen=True)
class HeldOption:
    """One open option position of the sleeve, as the strategies see it.

    ``entry_premium`` is coin per contract (1 contract = 1 coin); ``delta`` is the
    option's own delta per contract (a put's is negative), NOT yet signed by side:
    ``signed_delta`` does that. The engine maps its positions to this.
    """

    id: str
    instrument: str
    option_type: OptionType
    strike: float
    expiry_ms: int
    side: Side
    quantity: float
    entry_premium: float
    delta: float

    def __post_init__(self) -> None:
        where = f"option position {self.id!r} ({self.instrument})"
        if self.option_type not in ("call", "put"):
            raise ValueError(f"{where}: option_type {self.option_type!r}; expected 'call' or 'put'")
        if self.side not in ("long", "short"):
            raise ValueError(f"{where}: side {self.side!r}; expected 'long' or 'short'")
        if isinstance(self.expiry_ms, bool) or not isinstance(self.expiry_ms, int):
            raise ValueError(f"{where}: expiry_ms {self.expiry_ms!r}; expected an int (UTC ms)")
        for name, low in (("strike", 0.0), ("quantity", 0.0)):
            value = getattr(self, name)
            if not _finite(value) or value <= low:
                raise ValueError(f"{where}: {name} {value!r}; expected a finite number > 0")
        if not _finite(self.entry_premium) or self.entry_premium < 0:
            raise ValueError(
                f"{where}: entry_premium {self.entry_premium!r}; expected a finite coin "
                "amount >= 0 per contract"
            )
        if not _finite(self.delta) or abs(self.delta) > 1.0 + 1e-9:
            raise ValueError(
                f"{where}: delta {self.delta!r}; expected the per-contract delta in [-1, 1] "
                "(refresh the position's greeks from the chain)"
            )

    @property
    def underlying(self) -> str:
        """The part of the Deribit name before the first '-' ("BTC" of BTC-27MAR26-70000-C)."""
        return self.instrument.split("-", 1)[0]

    @property
    def signed_delta(self) -> float:
        """Delta in coin: per-contract delta x quantity, negated for a short."""
        return (1.0 if self.side == "long" else -1.0) * self.delta * self.quantity


class ProposedLeg(Protocol):
    """What scoring reads of a proposed leg (options.strategies.Leg has it)."""

    @property
    def action(self) -> Action: ...
    @property
    def option_type(self) -> OptionType: ...
    @property
    def strike(self) -> float: ...
    @property
    def expiry_ms(self) -> int: ...
    @property
    def quantity(self) -> float: ...
    @property
    def premium(self) -> float: ...
    @property
    def delta(self) -> float: ...


@dataclass(frozen=True)
class Score:
    """A score and the terms that made it, in order, as ``(hundredths, why)``."""

    cents: int
    terms: tuple[tuple[int, str], ...]

    @property
    def value(self) -> float:
        return self.cents / 100

    @property
    def reason(self) -> str:
        """Readable: ``0.5 start (2 open); +0.4 strike ...; = 0.9``."""
        parts = [f"{_signed(c)} {why}" if i else f"{c / 100:.1f} {why}"
                 for i, (c, why) in enumerate(self.terms)]
        return "; ".join(parts) + f"; = {self.value:.2f}"

    def passes(self, min_score: float) -> bool:
        return self.cents >= round(min_score * 100)


def signed_leg_delta(leg: ProposedLeg) -> float:
    """A proposed leg's delta in coin: per-contract delta x quantity, negated for a sale."""
    return (1.0 if leg.action == "buy" else -1.0) * leg.delta * leg.quantity


def net_delta(positions: Sequence[HeldOption]) -> float:
    """The book's delta in coin: the signed, quantity-weighted sum (0 when empty)."""
    return math.fsum(p.signed_delta for p in positions)


def score_proposal(
    legs: Sequence[ProposedLeg], positions: Sequence[HeldOption], spot_usd: float
) -> Score:
    """Score a proposal (all its legs together) against the open ``positions``.

    ``spot_usd`` must be finite and > 0 (the strike distance is a fraction of it).
    See the module docstring for the rule and how the legs combine.
    """
    if not legs:
        raise ValueError("score_proposal needs at least one leg")
    if not _finite(spot_usd) or spot_usd <= 0:
        raise ValueError(f"spot_usd {spot_usd!r}; expected a finite price > 0")
    if not positions:
        return Score(100, ((100, "no open option positions"),))
    terms: list[tuple[int, str]] = [(50, f"start ({len(positions)} open)")]
    terms.append(_strike_term(legs, positions, spot_usd))
    terms.append(_expiry_term(legs, positions))
    terms.append(_delta_term(legs, positions))
    premium = _premium_term(legs, positions)
    if premium is not None:
        terms.append(premium)
    return Score(sum(c for c, _ in terms), tuple(terms))


def cap_refusal(n_open: int, n_new: int, max_positions: int) -> str | None:
    """Why ``n_new`` more legs would break the cap of ``max_positions`` open positions,
    or None when they fit. Every leg about to be added counts."""
    if n_open + n_new > max_positions:
        return (f"position cap: {n_open} open + {n_new} new leg(s) = {n_open + n_new} "
                f"> {max_positions} per strategy")
    return None


# --- the terms ---


def _strike_term(
    legs: Sequence[ProposedLeg], positions: Sequence[HeldOption], spot_usd: float
) -> tuple[int, str]:
    nearest: tuple[float, ProposedLeg, HeldOption] | None = None
    for leg in legs:
        for p in positions:
            if p.option_type != leg.option_type:
                continue
            d = abs(leg.strike - p.strike)
            if nearest is None or d < nearest[0]:
                nearest = (d, leg, p)
    if nearest is None:
        types = "/".join(sorted({leg.option_type for leg in legs}))
        return 40, f"strike: no {types} held (distance unbounded, > 10 %)"
    d, leg, p = nearest
    frac = d / spot_usd
    what = (f"strike {leg.strike:.10g} is {frac:.1%} of spot from held {p.option_type} "
            f"{p.strike:.10g} ({p.id})")
    # compare distances in USD against fractions of spot (no division at the boundary)
    if d > 0.10 * spot_usd:
        return 40, f"{what}, > 10 %"
    if d > 0.05 * spot_usd:
        return 20, f"{what}, 5-10 %"
    return -30, f"{what}, <= 5 %"


def _expiry_term(legs: Sequence[ProposedLeg], positions: Sequence[HeldOption]) -> tuple[int, str]:
    held = {p.expiry_ms for p in positions}
    mine = sorted({leg.expiry_ms for leg in legs})
    names = ", ".join(_day(e) for e in mine)
    if any(e in held for e in mine):
        return -10, f"expiry {names} already held"
    return 30, f"expiry {names} not yet held"


def _delta_term(legs: Sequence[ProposedLeg], positions: Sequence[HeldOption]) -> tuple[int, str]:
    before = net_delta(positions)
    after = math.fsum([before, *(signed_leg_delta(leg) for leg in legs)])
    what = f"net delta {before:+.4f} -> {after:+.4f}"
    if abs(after) < abs(before):
        return 20, f"{what}, nearer zero"
    if abs(after) > abs(before) and abs(after) > NET_DELTA_LIMIT:
        return -30, f"{what}, further from zero and beyond {NET_DELTA_LIMIT}"
    return 0, f"{what}, not nearer zero (within {NET_DELTA_LIMIT})"


def _premium_term(
    legs: Sequence[ProposedLeg], positions: Sequence[HeldOption]
) -> tuple[int, str] | None:
    sold = [leg for leg in legs if leg.action == "sell"]
    sales = [p for p in positions if p.side == "short"]
    if not sold or not sales:
        return None  # the term is about sales, against sales
    mine = math.fsum(leg.premium * leg.quantity for leg in sold) / math.fsum(
        leg.quantity for leg in sold)
    theirs = math.fsum(p.entry_premium * p.quantity for p in sales) / math.fsum(
        p.quantity for p in sales)
    what = f"sale premium {mine:.6g} vs mean of {len(sales)} open sale(s) {theirs:.6g}"
    if mine > PREMIUM_BEAT_FACTOR * theirs:
        return 10, f"{what}, beats {PREMIUM_BEAT_FACTOR}x"
    return 0, f"{what}, does not beat {PREMIUM_BEAT_FACTOR}x"


def _signed(cents: int) -> str:
    return f"{'+' if cents >= 0 else '-'}{abs(cents) / 100:.1f}"


def _day(expiry_ms: int) -> str:
    return datetime.fromtimestamp(expiry_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
