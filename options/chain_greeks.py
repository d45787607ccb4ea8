"""Greeks for the quotes a chain gives without them (pure).

Deribit's whole-chain call (``public/get_book_summary_by_currency``) carries marks, bid,
ask, mark IV and the forward, but no greeks (only ``public/ticker``, one call per
instrument, has them); the real daily chains in ../shared/data carry delta and vega only.
So that every position's greeks are known every cycle, and the greek limits can count
every leg, each greek a quote lacks is computed by Black-76 on the quote's forward
(``underlying_price``, else its index, else the chain's) at its mark IV, in Deribit's
ticker units (delta per coin, gamma per USD, theta USD per day, vega USD per vol point):
the same model the strategies price with. Greeks the exchange gave are kept as they are.
A quote without a mark IV keeps its missing greeks missing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from options.chain import OptionChain, positive_or_none
from options.pricing import black76_greeks, year_fraction

GREEKS = ("delta", "gamma", "theta", "vega")


def fill_model_greeks(chain: OptionChain, rate: float = 0.0) -> tuple[OptionChain, int]:
    """(the chain with missing greeks filled in, how many quotes were given model greeks)."""
    todo = [i for i, q in enumerate(chain.quotes)
            if any(getattr(q, g) is None for g in GREEKS) and positive_or_none(q.mark_iv_pct) is not None
            and q.expiry_ms > chain.now_ms
            and (positive_or_none(q.underlying_price) or positive_or_none(q.index_price)
                 or positive_or_none(chain.index_price)) is not None]
    if not todo:
        return chain, 0
    quotes = [chain.quotes[i] for i in todo]
    forward = np.array([positive_or_none(q.underlying_price) or positive_or_none(q.index_price)
                        or chain.index_price for q in quotes], dtype=np.float64)
    strike = np.array([q.strike for q in quotes], dtype=np.float64)
    t = np.asarray(year_fraction(chain.now_ms, np.array([q.expiry_ms for q in quotes], dtype=np.float64)))
    vol = np.array([q.mark_iv_pct for q in quotes], dtype=np.float64) / 100.0
    call = np.array([q.option_type == "call" for q in quotes])
    model = black76_greeks(forward, strike, t, vol, call, rate)
    out = list(chain.quotes)
    for j, i in enumerate(todo):
        q = chain.quotes[i]
        filled = {g: float(model[g][j]) for g in GREEKS
                  if getattr(q, g) is None and np.isfinite(model[g][j])}
        out[i] = replace(q, **filled)
    return replace(chain, quotes=tuple(out)), len(todo)
