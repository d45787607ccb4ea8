"""Initial margin for short options, and margin in use per sleeve and account. Pure.

Deribit's standard margin for its inverse (coin-settled) options, per contract in coin,
with U the underlying's price and OTM the out-of-the-money amount (max(K - U, 0) for a
call, max(U - K, 0) for a put), as Deribit documents it (quoted in TSLab's "Deribit
Margin Requirements Calculation",
https://doc.tslab.pro/tslab/eng/data-providers/connection-to-broker/deribit-cryptocurrency-exchange/deribit-margin-requirements-calculation):

    short call:  IM = max(0.15 - OTM / U, 0.10) + mark
    short put:   IM = max(max(0.15 - OTM / U, 0.10) + mark, MM),
                 MM = max(0.075, 0.075 x mark) + mark
    long:        IM = 0 (the premium is paid in full)

and in USD ``IM_coin x index``. Standard margin does not offset positions against each
other (https://support.deribit.com/hc/en-us/articles/25944777072669-Isolated-margin-availability),
so neither does this: every short is margined on its own.

Simplifications, stated:
- U is the index (Deribit uses the underlying's mark price, which for options is the
  index or the forward; the difference is the basis, a fraction of a percent).
- Margin is recomputed every cycle from the position's latest mark; it reserves cash for
  entries only: nothing is liquidated when equity falls below it (paper trading).
- A short call's spot-covered part (``covered_quantity``, backed by spot the sleeve
  holds, allocated to short calls oldest first) needs no margin.
- A short put that assigns (the wheel) is cash-secured when
  ``OptionRules.cash_secured_assignment``: it reserves at least strike x quantity, the
  cash its assignment will take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler.engine.models import OptionPosition, Sleeve, State


@dataclass(frozen=True)
class MarginRules:
    base: float = 0.15  # of the underlying, less the OTM fraction
    floor: float = 0.10  # of the underlying, at least
    maintenance: float = 0.075  # the put's maintenance-margin floor


def initial_margin_coin(option_type: str, strike: float, underlying_usd: float, mark_coin: float,
                        rules: MarginRules = MarginRules()) -> float:
    """Deribit's initial margin for one short contract, in coin (formula in the module doc)."""
    otm = max(strike - underlying_usd, 0.0) if option_type == "call" else max(underlying_usd - strike, 0.0)
    base = max(rules.base - otm / underlying_usd, rules.floor)
    if option_type == "call":
        return base + mark_coin
    maintenance = max(rules.maintenance, rules.maintenance * mark_coin) + mark_coin
    return max(base + mark_coin, maintenance)


def short_margin_usd(option_type: str, strike: float, index_usd: float, mark_coin: float, quantity: float,
                     covered_quantity: float, assign: bool, cash_secured: bool,
                     rules: MarginRules = MarginRules()) -> float:
    """Initial margin (USD) for a short of ``quantity`` contracts, ``covered_quantity`` of them
    covered by spot; an assigning put reserves at least its strike x quantity when cash-secured."""
    uncovered = max(quantity - covered_quantity, 0.0)
    im = initial_margin_coin(option_type, strike, index_usd, mark_coin, rules) * index_usd * uncovered
    if assign and cash_secured and option_type == "put":
        im = max(im, strike * quantity)
    return im


def spot_quantity(sleeve: Sleeve, underlying: str, spot_symbol: str) -> float:
    pos = sleeve.positions.get(spot_symbol.format(underlying=underlying))
    return pos.quantity if pos is not None else 0.0


def allocate_cover(sleeve: Sleeve, spot_symbol: str) -> dict[str, float]:
    """Spot-covered quantity per short call id: the sleeve's spot, given to short calls oldest
    first, each up to the cover it asked for; a call whose spot was sold is naked again."""
    left: dict[str, float] = {}
    out: dict[str, float] = {}
    for pos in sorted(sleeve.option_positions, key=lambda p: (p.opened_at, p.id)):
        if pos.side != "short" or pos.option_type != "call" or pos.covered_quantity <= 0:
            continue
        if pos.underlying not in left:
            left[pos.underlying] = spot_quantity(sleeve, pos.underlying, spot_symbol)
        got = min(pos.covered_quantity, left[pos.underlying])
        left[pos.underlying] -= got
        out[pos.id] = got
    return out


def free_spot(sleeve: Sleeve, underlying: str, spot_symbol: str) -> float:
    """Spot of ``underlying`` in the sleeve not yet covering a short call."""
    used = sum(q for pid, q in allocate_cover(sleeve, spot_symbol).items()
               if any(p.id == pid and p.underlying == underlying for p in sleeve.option_positions))
    return max(spot_quantity(sleeve, underlying, spot_symbol) - used, 0.0)


def refresh_margin(sleeve: Sleeve, spot_symbol: str, cash_secured: bool, rules: MarginRules = MarginRules()) -> None:
    """Recompute every short's ``margin_usd`` from its latest mark and the spot now held."""
    cover = allocate_cover(sleeve, spot_symbol)
    for pos in sleeve.option_positions:
        if pos.side == "long":
            pos.margin_usd = 0.0
            continue
        mark_coin = pos.mark_coin if pos.mark_coin is not None else pos.entry_premium_coin
        index = pos.index_usd if pos.index_usd is not None else pos.entry_index_usd
        pos.margin_usd = short_margin_usd(pos.option_type, pos.strike, index, mark_coin, pos.quantity,
                                          cover.get(pos.id, 0.0), pos.assign, cash_secured, rules)


def margin_in_use_usd(positions: Sequence[OptionPosition]) -> float:
    return sum(p.margin_usd for p in positions)


def sleeve_margin_usd(sleeve: Sleeve) -> float:
    """Initial margin reserved by the sleeve's shorts, USD."""
    return margin_in_use_usd(sleeve.option_positions)


def account_margin_usd(state: State, ids: Sequence[str]) -> float:
    return sum(sleeve_margin_usd(state.sleeves[sid]) for sid in ids)


def free_cash_usd(sleeve: Sleeve) -> float:
    """Cash an entry may spend: cash less the margin reserved (may be negative)."""
    return sleeve.cash_usd - sleeve_margin_usd(sleeve)


def margin_by_sleeve(state: State, ids: Sequence[str]) -> Mapping[str, float]:
    return {sid: sleeve_margin_usd(state.sleeves[sid]) for sid in ids}
