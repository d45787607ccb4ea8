"""The six options strategies of REFERENCE section 7: trigger, legs, score (pure).

``propose(strategy, inputs, params)`` turns one underlying's chain, the decision time,
IV rank / ROC and the sleeve's open option positions and spot holdings into either a
``Proposal`` (legs to trade, scored together) or a ``Skip`` with a reason code. No I/O,
no clock: the same inputs give the same answer in the daemon and the backtester.

| strategy | trigger | legs (x spot, target DTE) |
|---|---|---|
| momentum_options | ROC(14) of 4h closes crosses above +5 / below -5 (``trigger: level``: is beyond) | buy call 1.02 / buy put 0.98, 37 |
| vol_mean_reversion | IV rank > 75 / < 25 | sell call 1.10 + sell put 0.90 / buy call + put at the money, 30 |
| protective_puts | no long put held | buy put 0.88, 45 |
| covered_calls | no short call held | sell call 1.12, 21 |
| wheel | spot held < quantity: sell put 0.94, 37; spot held >= quantity: sell call 1.10, 21 | |
| butterfly | 30 <= IV rank <= 70 | buy call 0.95, sell 2 calls 1.00, buy call 1.05, 30 |

Leg selection: the listed expiry (after ``now_ms``, listing the legs' option types: a
strangle or straddle takes one expiry with calls and puts) nearest ``now + target DTE``
(a tie goes to the sooner one); none within ``dte_tolerance_days`` (7) of the target:
skip ``NO_EXPIRY``. Then the listed strike of that expiry and type nearest
``moneyness x spot`` (a tie goes to the lower strike); a straddle's call and put share
the strike, chosen among strikes listed for both. Quantity per leg is
``params.quantity`` or the contract minimum (0.1 BTC, 1 ETH); the butterfly's body is
2 x that.

Premium and greeks per contract (1 coin): the quote's mark (coin) and greeks when it
has them (``pricing: "quote"``); else Black-76 on the forward (``underlying_price``,
else the index, else spot) at the quote's mark IV, or at ``inputs.realized_vol`` when
the quote has no IV either (``"model: mark_iv"`` / ``"model: realized_vol"``; a mark
with model greeks reads ``"quote mark; greeks model: mark_iv"``). Greeks are Deribit's
ticker units: delta per coin, gamma per USD, theta USD per day, vega USD per vol point.
``premium_usd`` is the coin premium at the index (the quote's, else the chain's, else
spot). A premium below ``min_premium`` (one 0.0001 tick) is never proposed
(REFERENCE defect 15); nothing non-finite ever leaves.

Guards beyond the table: a leg on an instrument already held on the same side is not
proposed again (``HELD``), because a level trigger (IV rank > 75 for a week) would stack
the same position every cycle; the wheel never opens a second short put (or call) while
one is open and never sells a naked call; a sold call is covered by the sleeve's spot
not already covering an open short call (``covered_quantity``; the rest is naked and
the engine margins it). Then the position cap and the score (options.scoring).

The wheel on cash-settled options: Deribit settles in cash, so "assignment" is the
engine's doing: a short put that expires in the money buys the coin at the strike into
the sleeve (the sleeve then holds spot and the wheel sells calls), a short call that
expires in the money sells the covered spot at the strike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from options.chain import OptionChain, OptionQuote, finite_or_none, positive_or_none
from options.params import (
    CONTRACT_MINIMUM,
    PARAMS,
    ButterflyParams,
    CoveredCallsParams,
    MomentumParams,
    Params,
    ProtectivePutsParams,
    VolMeanReversionParams,
    WheelParams,
    quantity_problem,
)
from options.pricing import black76_greeks, black76_price, year_fraction
from options.scoring import (
    Action,
    HeldOption,
    OptionType,
    Score,
    cap_refusal,
    score_proposal,
)

DAY_MS = 86_400_000


# --- inputs and outputs ---


@dataclass(frozen=True)
class StrategyInputs:
    """Everything one decision reads. ``positions`` are the strategy's open options;
    ``spot_held`` is the sleeve's spot in the underlying (coin), e.g. from assignment.
    ``iv_rank_pct`` 0..100 or None (``iv_rank_note`` says why, or what it is);
    ``roc_pct``/``prev_roc_pct`` the ROC of the last two closed 4h bars (momentum only);
    ``realized_vol`` a decimal, used only to price a quote that has no mark IV."""

    chain: OptionChain
    spot_usd: float
    now_ms: int
    positions: tuple[HeldOption, ...] = ()
    spot_held: float = 0.0
    iv_rank_pct: float | None = None
    iv_rank_note: str = ""
    roc_pct: float | None = None
    prev_roc_pct: float | None = None
    realized_vol: float | None = None


@dataclass(frozen=True)
class Leg:
    """One option to trade. ``premium`` (coin) and ``premium_usd`` and the greeks are
    per contract (1 coin); multiply by ``quantity`` for the leg. ``covered_quantity``:
    for a sold call, how much of it the sleeve's spot covers (the rest is naked); None
    for other legs."""

    action: Action
    option_type: OptionType
    strike: float
    expiry_ms: int
    dte: float
    instrument: str
    quantity: float
    premium: float
    premium_usd: float
    delta: float
    gamma: float
    theta: float
    vega: float
    pricing: str
    covered_quantity: float | None = None
    #: the wheel's legs: an in-the-money expiry buys (put) or sells (call) the coin at the strike
    assign: bool = False

    @property
    def expiry(self) -> str:
        return datetime.fromtimestamp(self.expiry_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")

    def action_dict(self, score: Score) -> dict[str, Any]:
        """REFERENCE section 3's action, plus ``expiry_ms``, ``instrument``, ``pricing``,
        ``covered_quantity`` and ``assign``."""
        return {
            "action": self.action, "option_type": self.option_type, "strike": self.strike,
            "expiry": self.expiry, "expiry_ms": self.expiry_ms, "dte": self.dte,
            "instrument": self.instrument, "quantity": self.quantity,
            "premium": self.premium, "premium_usd": self.premium_usd,
            "greeks": {"delta": self.delta, "gamma": self.gamma, "theta": self.theta,
                       "vega": self.vega},
            "pricing": self.pricing, "covered_quantity": self.covered_quantity, "assign": self.assign,
            "score": score.value, "score_reason": score.reason,
        }


@dataclass(frozen=True)
class Proposal:
    """Legs to open together, and the score that let them through."""

    strategy: str
    legs: tuple[Leg, ...]
    score: Score
    indicators: dict[str, Any] = field(default_factory=dict)

    @property
    def skip_reason(self) -> None:
        return None

    def actions(self) -> list[dict[str, Any]]:
        return [leg.action_dict(self.score) for leg in self.legs]


@dataclass(frozen=True)
class Skip:
    """No trade this time: a reason ``code`` and a readable ``reason``."""

    strategy: str
    code: str
    reason: str
    indicators: dict[str, Any] = field(default_factory=dict)
    score: Score | None = None

    @property
    def skip_reason(self) -> str:
        return f"{self.code}: {self.reason}"

    def actions(self) -> list[dict[str, Any]]:
        return []


class _NoTrade(Exception):
    """Raised inside leg building; ``propose`` turns it into a Skip."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


# --- the entry point ---


def propose(strategy: str, inputs: StrategyInputs, params: Params | None = None) -> Proposal | Skip:
    """Decide one options strategy: a scored Proposal, or a Skip with a reason code
    (NO_TRIGGER, HELD, NO_IV_RANK, NO_DATA, NO_EXPIRY, NO_STRIKE, BAD_QUOTE,
    ZERO_PREMIUM, NOT_ENOUGH_SPOT, CAP, LOW_SCORE, BAD_INPUT)."""
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown options strategy {strategy!r}; expected one of {sorted(_STRATEGIES)}")
    params = params if params is not None else PARAMS[strategy]()
    if type(params) is not PARAMS[strategy]:
        raise ValueError(f"{strategy} takes {PARAMS[strategy].__name__}, got {type(params).__name__}")
    ind: dict[str, Any] = {"spot_usd": inputs.spot_usd, "open_positions": len(inputs.positions)}
    try:
        _check_inputs(inputs)
        quantity = _quantity(inputs.chain.underlying, params)
        legs = _STRATEGIES[strategy](_Ctx(inputs, params, quantity, ind))
        legs = _cover_calls(legs, inputs)
        _refuse_held_instruments(legs, inputs.positions)
        refusal = cap_refusal(len(inputs.positions), len(legs), params.max_positions)
        if refusal:
            raise _NoTrade("CAP", refusal)
    except _NoTrade as e:
        return Skip(strategy, e.code, e.reason, _finite_only(ind))
    ind = _finite_only(ind)
    score = score_proposal(legs, inputs.positions, inputs.spot_usd)
    if not score.passes(params.min_score):
        return Skip(strategy, "LOW_SCORE", f"score {score.value:.2f} < {params.min_score}: "
                    f"{score.reason}", ind, score)
    return Proposal(strategy, tuple(legs), score, ind)


def roc_last_two(closes: Sequence[float] | np.ndarray, period: int = 14) -> tuple[float, float] | None:
    """``(roc_now_pct, roc_prev_pct)``: the rate of change (close[t] / close[t-period] - 1)
    x 100 at the last and the one-before-last close (TA-Lib ``ROC``); None when there
    are fewer than ``period + 2`` closes or a close involved is not finite and > 0."""
    c = np.asarray(closes, dtype=np.float64)
    if c.ndim != 1 or period < 1 or len(c) < period + 2:
        return None
    ends, bases = c[-2:], c[-(period + 2):-period]
    if not (np.all(np.isfinite(ends)) and np.all(np.isfinite(bases)) and np.all(bases > 0)):
        return None
    prev, now = (ends / bases - 1.0) * 100.0
    return float(now), float(prev)


# --- the six strategies ---


@dataclass
class _Ctx:
    inputs: StrategyInputs
    params: Any  # the strategy's own Params subclass
    quantity: float
    ind: dict[str, Any]

    @property
    def spot(self) -> float:
        return self.inputs.spot_usd


def _momentum(c: _Ctx) -> list[Leg]:
    p: MomentumParams = c.params
    now, prev = c.inputs.roc_pct, c.inputs.prev_roc_pct
    c.ind.update(roc_pct=now, prev_roc_pct=prev, threshold_pct=p.threshold_pct)
    if now is None or prev is None or not (math.isfinite(now) and math.isfinite(prev)):
        raise _NoTrade("NO_DATA", f"ROC({p.roc_period}) of the last two closed 4h bars is "
                       f"unavailable (now {now!r}, previous {prev!r})")
    th = p.threshold_pct
    c.ind["trigger"] = p.trigger
    level = p.trigger == "level"
    if now > th and (level or th >= prev):
        return [_leg(c, "buy", "call", p.call_moneyness, p.target_dte_days)]
    if now < -th and (level or -th <= prev):
        return [_leg(c, "buy", "put", p.put_moneyness, p.target_dte_days)]
    if level:
        raise _NoTrade("NO_TRIGGER", f"ROC {now:+.2f} % is within [-{th:g}, +{th:g}]")
    raise _NoTrade("NO_TRIGGER", f"ROC {prev:+.2f} -> {now:+.2f} % crosses neither +{th:g} "
                   f"nor -{th:g}")


def _vol_mean_reversion(c: _Ctx) -> list[Leg]:
    p: VolMeanReversionParams = c.params
    rank = _iv_rank(c, low=p.buy_below_rank, high=p.sell_above_rank)
    if rank > p.sell_above_rank:  # both legs on one expiry that lists calls and puts
        expiry = _expiry(c, p.target_dte_days, ("call", "put"))
        return [_priced(c, "sell", _quote(c, expiry, "call", _nearest_strike(
                    c, expiry, ("call",), p.call_moneyness * c.spot))),
                _priced(c, "sell", _quote(c, expiry, "put", _nearest_strike(
                    c, expiry, ("put",), p.put_moneyness * c.spot)))]
    if rank < p.buy_below_rank:
        expiry = _expiry(c, p.target_dte_days, ("call", "put"))
        strike = _nearest_strike(c, expiry, ("call", "put"), c.spot)
        return [_priced(c, "buy", _quote(c, expiry, "call", strike)),
                _priced(c, "buy", _quote(c, expiry, "put", strike))]
    raise _NoTrade("NO_TRIGGER", f"IV rank {rank:.1f} is within [{p.buy_below_rank:g}, "
                   f"{p.sell_above_rank:g}]: neither rich nor cheap")


def _protective_puts(c: _Ctx) -> list[Leg]:
    p: ProtectivePutsParams = c.params
    held = [h for h in c.inputs.positions if h.option_type == "put" and h.side == "long"]
    if held:
        raise _NoTrade("HELD", f"a protective put is held: {held[0].id} ({held[0].instrument})")
    return [_leg(c, "buy", "put", p.put_moneyness, p.target_dte_days)]


def _covered_calls(c: _Ctx) -> list[Leg]:
    p: CoveredCallsParams = c.params
    _no_open_short(c, "call")
    free = _free_spot(c.inputs)
    c.ind.update(spot_held=c.inputs.spot_held, spot_free=free)
    if not p.allow_naked and free < c.quantity:
        raise _NoTrade("NOT_ENOUGH_SPOT", f"{free:g} {c.inputs.chain.underlying} of spot free "
                       f"to cover a {c.quantity:g} call, and allow_naked is off")
    return [_leg(c, "sell", "call", p.call_moneyness, p.target_dte_days)]


def _wheel(c: _Ctx) -> list[Leg]:
    p: WheelParams = c.params
    held = c.inputs.spot_held
    c.ind.update(spot_held=held)
    if held >= c.quantity:  # coin from an assigned put: sell calls against it
        c.ind["wheel_phase"] = "call"
        _no_open_short(c, "call")  # so all of the held spot is free: the call is covered
        call = _leg(c, "sell", "call", p.call_moneyness, p.call_dte_days)
        return [dataclasses.replace(call, assign=True)]  # in the money at expiry: the coin is sold
    c.ind["wheel_phase"] = "put"  # no (or less than one leg of) spot: sell a put
    _no_open_short(c, "put")
    put = _leg(c, "sell", "put", p.put_moneyness, p.put_dte_days)
    return [dataclasses.replace(put, assign=True)]  # in the money at expiry: the coin is bought


def _butterfly(c: _Ctx) -> list[Leg]:
    p: ButterflyParams = c.params
    rank = _iv_rank(c, low=p.min_rank, high=p.max_rank)
    if not p.min_rank <= rank <= p.max_rank:
        raise _NoTrade("NO_TRIGGER", f"IV rank {rank:.1f} is outside [{p.min_rank:g}, "
                       f"{p.max_rank:g}]")
    expiry = _expiry(c, p.target_dte_days, ("call",))
    strikes = [_nearest_strike(c, expiry, ("call",), m * c.spot)
               for m in (p.lower_moneyness, p.middle_moneyness, p.upper_moneyness)]
    if not strikes[0] < strikes[1] < strikes[2]:
        raise _NoTrade("NO_STRIKE", f"the listed strikes nearest {p.lower_moneyness:g}/"
                       f"{p.middle_moneyness:g}/{p.upper_moneyness:g} x spot are "
                       f"{'/'.join(f'{k:.10g}' for k in strikes)}: not three distinct strikes")
    low, mid, high = (_quote(c, expiry, "call", k) for k in strikes)
    return [_priced(c, "buy", low), _priced(c, "sell", mid, 2 * c.quantity), _priced(c, "buy", high)]


_STRATEGIES: dict[str, Callable[[_Ctx], list[Leg]]] = {
    "momentum_options": _momentum,
    "vol_mean_reversion": _vol_mean_reversion,
    "protective_puts": _protective_puts,
    "covered_calls": _covered_calls,
    "wheel": _wheel,
    "butterfly": _butterfly,
}


# --- guards ---


def _check_inputs(inputs: StrategyInputs) -> None:
    def bad(what: str) -> _NoTrade:
        return _NoTrade("BAD_INPUT", what)

    if positive_or_none(inputs.spot_usd) is None:
        raise bad(f"spot_usd {inputs.spot_usd!r}; expected a finite price > 0")
    if isinstance(inputs.now_ms, bool) or not isinstance(inputs.now_ms, int):
        raise bad(f"now_ms {inputs.now_ms!r}; expected an int (UTC ms)")
    if finite_or_none(inputs.spot_held) is None or inputs.spot_held < 0:
        raise bad(f"spot_held {inputs.spot_held!r}; expected a finite coin amount >= 0")
    rank = inputs.iv_rank_pct
    if rank is not None and (finite_or_none(rank) is None or not 0 <= rank <= 100):
        raise bad(f"iv_rank_pct {rank!r}; expected a number in [0, 100] or None")
    if inputs.realized_vol is not None and positive_or_none(inputs.realized_vol) is None:
        raise bad(f"realized_vol {inputs.realized_vol!r}; expected a decimal vol > 0 or None")
    for h in inputs.positions:
        if h.underlying != inputs.chain.underlying:
            raise bad(f"position {h.id} ({h.instrument}) is not on {inputs.chain.underlying}, "
                      "the chain's underlying")


def _quantity(underlying: str, params: Params) -> float:
    if params.quantity is not None:
        problem = quantity_problem(float(params.quantity), underlying) if underlying in CONTRACT_MINIMUM else None
        if problem:  # the config was checked without its underlying: never trade an amount Deribit refuses
            raise _NoTrade("BAD_INPUT", f"{problem}; fix the strategy's params.quantity")
        return float(params.quantity)
    base = underlying.split("_", 1)[0]
    if underlying != base or base not in CONTRACT_MINIMUM:
        raise _NoTrade("BAD_INPUT", f"no default contract size for {underlying!r} (known: "
                       f"{sorted(CONTRACT_MINIMUM)}); set the strategy's quantity")
    return CONTRACT_MINIMUM[base]


def _iv_rank(c: _Ctx, *, low: float, high: float) -> float:
    rank = c.inputs.iv_rank_pct
    c.ind.update(iv_rank_pct=rank, iv_rank_low=low, iv_rank_high=high)
    if c.inputs.iv_rank_note:
        c.ind["iv_rank_note"] = c.inputs.iv_rank_note
    if rank is None:
        note = f" ({c.inputs.iv_rank_note})" if c.inputs.iv_rank_note else ""
        raise _NoTrade("NO_IV_RANK", f"IV rank unavailable{note}")
    return rank


def _no_open_short(c: _Ctx, option_type: OptionType) -> None:
    open_ = [h for h in c.inputs.positions if h.option_type == option_type and h.side == "short"]
    if open_:
        raise _NoTrade("HELD", f"a short {option_type} is open: {open_[0].id} "
                       f"({open_[0].instrument}); not a second one")


def _free_spot(inputs: StrategyInputs) -> float:
    """Spot not already covering an open short call (coin, >= 0)."""
    committed = math.fsum(h.quantity for h in inputs.positions
                          if h.option_type == "call" and h.side == "short")
    return max(inputs.spot_held - committed, 0.0)


def _cover_calls(legs: list[Leg], inputs: StrategyInputs) -> list[Leg]:
    free = _free_spot(inputs)
    out = []
    for leg in legs:
        if leg.action == "sell" and leg.option_type == "call":
            covered = min(leg.quantity, free)
            free -= covered
            leg = dataclasses.replace(leg, covered_quantity=covered)
        out.append(leg)
    return out


def _refuse_held_instruments(legs: Sequence[Leg], positions: Sequence[HeldOption]) -> None:
    side = {"buy": "long", "sell": "short"}
    for leg in legs:
        for h in positions:
            if h.instrument == leg.instrument and h.side == side[leg.action]:
                raise _NoTrade("HELD", f"{leg.instrument} is already held {h.side} ({h.id})")


# --- leg selection and pricing ---


def _leg(c: _Ctx, action: Action, option_type: OptionType, moneyness: float,
         target_dte_days: float) -> Leg:
    expiry = _expiry(c, target_dte_days, (option_type,))
    strike = _nearest_strike(c, expiry, (option_type,), moneyness * c.spot)
    return _priced(c, action, _quote(c, expiry, option_type, strike))


def _listed(c: _Ctx) -> list[OptionQuote]:
    """The chain's quotes of its underlying that a leg can be chosen from."""
    ch = c.inputs.chain
    return [q for q in ch.quotes
            if q.underlying == ch.underlying and q.expiry_ms > c.inputs.now_ms
            and q.option_type in ("call", "put") and positive_or_none(q.strike) is not None]


def _expiry(c: _Ctx, target_dte_days: float, types: tuple[OptionType, ...]) -> int:
    """The expiry listing every type in ``types`` nearest the target (integer ms, so ties
    are exact: the sooner)."""
    now = c.inputs.now_ms
    target_ms = now + round(target_dte_days * DAY_MS)
    listed = _listed(c)
    expiries = sorted(set.intersection(*({q.expiry_ms for q in listed if q.option_type == t}
                                         for t in types)))
    c.ind["target_dte"] = target_dte_days
    if not expiries:
        raise _NoTrade("NO_EXPIRY", f"no expiry after now lists {' and '.join(types)}s")
    best = min(expiries, key=lambda e: (abs(e - target_ms), e))
    dte = (best - now) / DAY_MS
    if abs(best - target_ms) > c.params.dte_tolerance_days * DAY_MS:
        raise _NoTrade("NO_EXPIRY", f"no expiry within {c.params.dte_tolerance_days:g} days of "
                       f"{target_dte_days:g} DTE: the nearest is {_iso_day(best)} at {dte:.1f} DTE")
    return best


def _nearest_strike(c: _Ctx, expiry_ms: int, types: tuple[OptionType, ...], target: float) -> float:
    """The strike listed at ``expiry_ms`` for every type in ``types`` nearest ``target``
    (a tie goes to the lower strike)."""
    by_type = [{q.strike for q in _listed(c) if q.expiry_ms == expiry_ms and q.option_type == t}
               for t in types]
    strikes = set.intersection(*by_type)
    if not strikes:
        raise _NoTrade("NO_STRIKE", f"no strike listed for {' and '.join(types)} at "
                       f"{_iso_day(expiry_ms)}")
    # distances rounded to 1e-6 USD, so 1.12 x 100000 = 112000.00000000001 ties 110k and 114k
    return min(strikes, key=lambda k: (round(abs(k - target), 6), k))


def _quote(c: _Ctx, expiry_ms: int, option_type: OptionType, strike: float) -> OptionQuote:
    return next(q for q in _listed(c)
                if q.expiry_ms == expiry_ms and q.option_type == option_type and q.strike == strike)


def _priced(c: _Ctx, action: Action, q: OptionQuote, quantity: float | None = None) -> Leg:
    """A leg on quote ``q``, priced as the module docstring says, or _NoTrade."""
    inputs, ch = c.inputs, c.inputs.chain
    index = positive_or_none(q.index_price) or positive_or_none(ch.index_price) or inputs.spot_usd
    forward = positive_or_none(q.underlying_price) or index
    t_years = year_fraction(inputs.now_ms, q.expiry_ms)
    mark = positive_or_none(q.mark)
    iv = positive_or_none(q.mark_iv_pct)
    vol, vol_source = (iv / 100, "mark_iv") if iv is not None else (inputs.realized_vol, "realized_vol")
    quote_greeks = [finite_or_none(g) for g in (q.delta, q.gamma, q.theta, q.vega)]
    greeks_ok = all(g is not None for g in quote_greeks) and abs(quote_greeks[0] or 0.0) <= 1.0
    if mark is not None and greeks_ok:
        premium, greeks, pricing = mark, [float(g or 0.0) for g in quote_greeks], "quote"
    else:
        if vol is None:
            missing = "mark" if mark is None else "greeks"
            raise _NoTrade("BAD_QUOTE", f"{q.instrument} has no {missing}, no mark IV, and no "
                           "realized vol was given to price it")
        call = q.option_type == "call"
        g = black76_greeks(forward, q.strike, t_years, vol, call, c.params.rate)
        greeks = [g["delta"], g["gamma"], g["theta"], g["vega"]]
        if mark is not None:
            premium, pricing = mark, f"quote mark; greeks model: {vol_source}"
        else:
            premium = black76_price(forward, q.strike, t_years, vol, call, c.params.rate) / forward
            pricing = f"model: {vol_source}"
    qty = c.quantity if quantity is None else quantity
    leg = Leg(action=action, option_type=q.option_type, strike=float(q.strike),
              expiry_ms=q.expiry_ms, dte=(q.expiry_ms - inputs.now_ms) / DAY_MS,
              instrument=q.instrument, quantity=qty, premium=float(premium),
              premium_usd=float(premium) * index, delta=greeks[0], gamma=greeks[1],
              theta=greeks[2], vega=greeks[3], pricing=pricing)
    numbers = (leg.premium, leg.premium_usd, leg.delta, leg.gamma, leg.theta, leg.vega, leg.dte)
    if not all(math.isfinite(x) for x in numbers):
        raise _NoTrade("BAD_QUOTE", f"{q.instrument} priced to a non-finite value ({pricing}): "
                       f"premium {leg.premium!r}, greeks {greeks!r}")
    if leg.premium < c.params.min_premium:
        raise _NoTrade("ZERO_PREMIUM", f"{q.instrument} premium {leg.premium:.3g} coin ({pricing}) "
                       f"is below {c.params.min_premium:g}: a zero-premium trade is never proposed")
    return leg


def _finite_only(ind: dict[str, Any]) -> dict[str, Any]:
    """The indicators with every non-finite number (a NaN ROC, an infinite spot) as None."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in ind.items()}


def _iso_day(expiry_ms: int) -> str:
    return datetime.fromtimestamp(expiry_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
