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

from options.chain import OptionChain, OptionQuote, positive_or_none
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


def model_delta(quote: OptionQuote, now_ms: int, index_usd: float | None = None, rate: float = 0.0
                ) -> tuple[float, str] | None:
    """(Black-76 delta per coin, how it was had) for a quote that carries no delta: at its mark
    IV (``"model: mark_iv"``), else at the volatility its mark implies (``"model: implied from
    mark"``: the coin mark x the forward is the USD price Black-76 inverts, as the strategies
    price). None when neither gives one (no forward, no mark, or a mark outside the
    no-arbitrage bounds). An expired option's delta is its intrinsic one: 1 (call) or -1 (put)
    in the money at the forward, else 0."""
    from options.iv import implied_vol

    forward = positive_or_none(quote.underlying_price) or positive_or_none(quote.index_price) \
        or positive_or_none(index_usd)
    if forward is None:
        return None
    call = quote.option_type == "call"
    if quote.expiry_ms <= now_ms:
        itm = forward > quote.strike if call else forward < quote.strike
        return (1.0 if call else -1.0) if itm else 0.0, "intrinsic (expired)"
    t_years = float(year_fraction(now_ms, quote.expiry_ms))
    iv = positive_or_none(quote.mark_iv_pct)
    if iv is not None:
        vol, how = iv / 100.0, "model: mark_iv"
    else:
        mark = positive_or_none(quote.mark)
        if mark is None:
            return None
        vol = positive_or_none(float(implied_vol(mark * forward, forward, quote.strike, t_years, quote.option_type,
                                                 rate)))
        if vol is None:
            return None
        how = "model: implied from mark"
    delta = float(black76_greeks(forward, quote.strike, t_years, vol, call, rate)["delta"])
    return (delta, how) if np.isfinite(delta) and abs(delta) <= 1.0 else None
