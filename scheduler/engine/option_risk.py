"""Options risk (issue 9 item 7): portfolio greeks, premium at risk, entry limits. Pure.

Per-contract greeks are the exchange's (Deribit's ticker convention: delta per coin,
gamma per USD of the underlying, theta USD per day, vega USD per vol point). A book's
greeks are sums over its option positions (options only; spot held is not counted) of
the signed quantity (long +, short -) times those, in USD so that BTC and ETH add up:

    delta_usd = sum(s q delta index)           USD of underlying-equivalent exposure
    gamma_usd = sum(s q gamma index^2 / 100)   change of delta_usd for a 1 % move
    vega_usd  = sum(s q vega)                  USD per vol point
    theta_usd = sum(s q theta)                 USD per day
    delta_coin[underlying] = sum(s q delta)    coin, per underlying

Limits (``OptionLimits``) block entries only, counting the legs about to be added: an
entry is refused when a |greek| after it would exceed its limit AND the entry makes that
|greek| larger (a risk-reducing entry is never blocked). Premium at risk: the premium
paid for open long options (entry premium x quantity) as a percent of equity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler.engine import margin
from scheduler.engine.fills import Rejected
from scheduler.engine.models import OptionPosition, Sleeve, State


@dataclass(frozen=True)
class GreekLeg:
    """One signed holding's inputs to the portfolio greeks."""

    underlying: str
    signed_quantity: float
    greeks: dict[str, float]
    index_usd: float | None


@dataclass(frozen=True)
class PortfolioGreeks:
    delta_usd: float = 0.0
    gamma_usd: float = 0.0
    vega_usd: float = 0.0
    theta_usd: float = 0.0
    delta_coin: dict[str, float] = field(default_factory=dict)
    #: positions left out because their greeks or index are unknown
    unpriced: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"delta_usd": self.delta_usd, "gamma_usd_per_1pct": self.gamma_usd, "vega_usd_per_vol_pt": self.vega_usd,
                "theta_usd_per_day": self.theta_usd, "delta_coin": dict(self.delta_coin), "unpriced": self.unpriced}


def leg_of(pos: OptionPosition) -> GreekLeg:
    sign = 1.0 if pos.side == "long" else -1.0
    return GreekLeg(pos.underlying, sign * pos.quantity, pos.greeks, pos.index_usd)


def portfolio_greeks(legs: Iterable[GreekLeg]) -> PortfolioGreeks:
    """Sum of signed quantity x per-contract greeks (units in the module doc)."""
    d = g = v = t = 0.0
    coin: dict[str, float] = {}
    unpriced = 0
    for leg in legs:
        gk, s = leg.greeks, leg.index_usd
        if s is None or not all(k in gk for k in ("delta", "gamma", "vega", "theta")):
            unpriced += 1
            continue
        q = leg.signed_quantity
        d += q * gk["delta"] * s
        g += q * gk["gamma"] * s * s / 100.0
        v += q * gk["vega"]
        t += q * gk["theta"]
        coin[leg.underlying] = coin.get(leg.underlying, 0.0) + q * gk["delta"]
    return PortfolioGreeks(d, g, v, t, coin, unpriced)


def positions_greeks(positions: Iterable[OptionPosition]) -> PortfolioGreeks:
    return portfolio_greeks(leg_of(p) for p in positions)


def premium_at_risk_usd(positions: Iterable[OptionPosition]) -> float:
    """Premium paid for open long options: entry premium x quantity (fees not included)."""
    return sum(p.entry_premium_usd * p.quantity for p in positions if p.side == "long")


def check_limits(scope: str, held: Sequence[GreekLeg], adding: Sequence[GreekLeg], limits: Any,
                 premium_held_usd: float, premium_adding_usd: float, equity_usd: float | None) -> Rejected | None:
    """The first limit of ``limits`` (an OptionLimits) the entry breaks for ``scope``, or None."""
    checks = (("OPTIONS_DELTA_LIMIT", "delta_usd", limits.max_abs_delta_usd, "dollar delta"),
              ("OPTIONS_GAMMA_LIMIT", "gamma_usd", limits.max_abs_gamma_usd, "dollar gamma per 1 % move"),
              ("OPTIONS_VEGA_LIMIT", "vega_usd", limits.max_abs_vega_usd, "vega, USD per vol point"))
    if any(limit is not None for _, _, limit, _ in checks):
        new = portfolio_greeks(adding)
        if new.unpriced:
            return Rejected("NO_GREEKS", f"{scope}: a leg's quote has no greeks (or no index), so the options "
                            "greek limits cannot be checked")
        before, after = portfolio_greeks(held), portfolio_greeks([*held, *adding])
        for code, name, limit, words in checks:
            if limit is None:
                continue
            b, a = abs(getattr(before, name)), abs(getattr(after, name))
            if a > limit and a > b:
                unknown = f" ({before.unpriced} held position(s) without greeks left out)" if before.unpriced else ""
                return Rejected(code, f"{scope}: {words} would be {getattr(after, name):.2f} USD after this entry "
                                f"(now {getattr(before, name):.2f}), beyond the limit +/-{limit:g}{unknown}")
    cap = limits.max_premium_at_risk_pct
    if cap is not None and premium_adding_usd > 0:
        if equity_usd is None or equity_usd <= 0:
            return Rejected("PREMIUM_AT_RISK", f"{scope}: equity is {'unknown' if equity_usd is None else equity_usd}"
                            ", so the premium-at-risk limit cannot be checked")
        pct = (premium_held_usd + premium_adding_usd) / equity_usd * 100.0
        if pct > cap:
            return Rejected("PREMIUM_AT_RISK", f"{scope}: premium paid for long options would be "
                            f"{premium_held_usd + premium_adding_usd:.2f} USD, {pct:.2f}% of equity "
                            f"{equity_usd:.2f} USD (limit {cap:g}%)")
    return None


def sleeve_summary(sleeve: Sleeve) -> dict[str, Any]:
    """What /status shows for one sleeve's options book."""
    return {"greeks": positions_greeks(sleeve.option_positions).as_json(),
            "margin_in_use_usd": margin.sleeve_margin_usd(sleeve),
            "free_cash_usd": margin.free_cash_usd(sleeve),
            "premium_at_risk_usd": premium_at_risk_usd(sleeve.option_positions),
            "open_option_positions": len(sleeve.option_positions)}


def account_summary(state: State, ids: Sequence[str]) -> dict[str, Any]:
    """The account's options book: every configured sleeve together."""
    positions = [p for sid in ids for p in state.sleeves[sid].option_positions]
    return {"greeks": positions_greeks(positions).as_json(),
            "margin_in_use_usd": margin.account_margin_usd(state, ids),
            "premium_at_risk_usd": premium_at_risk_usd(positions),
            "open_option_positions": len(positions)}
