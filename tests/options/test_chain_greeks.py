"""Model greeks for chain quotes that come without them (options.chain_greeks)."""

from __future__ import annotations

import math

import pytest

from options.chain import OptionChain, OptionQuote
from options.chain_greeks import fill_model_greeks
from options.pricing import black76_greeks, year_fraction

NOW = 1_773_138_000_000
EXPIRY = NOW + 30 * 86_400_000


def quote(**kw: object) -> OptionQuote:
    base = dict(instrument="BTC-9APR26-70000-C", underlying="BTC", expiry_ms=EXPIRY, strike=70_000.0,
                option_type="call", mark=0.05, mark_iv_pct=55.0, underlying_price=71_000.0, index_price=70_500.0)
    base.update(kw)
    return OptionQuote(**base)  # type: ignore[arg-type]


def test_missing_greeks_are_black76_at_mark_iv_on_the_forward() -> None:
    chain = OptionChain("BTC", NOW, 70_500.0, (quote(), quote(instrument="BTC-9APR26-70000-P", option_type="put")))
    filled, n = fill_model_greeks(chain)
    assert n == 2
    t = year_fraction(NOW, EXPIRY)
    for q in filled.quotes:
        want = black76_greeks(71_000.0, 70_000.0, t, 0.55, q.option_type == "call")
        for g in ("delta", "gamma", "theta", "vega"):
            assert math.isclose(getattr(q, g), float(want[g]), rel_tol=1e-12)
    assert filled.quotes[0].delta > 0 > filled.quotes[1].delta


def test_greeks_the_exchange_gave_are_kept_and_only_the_rest_filled() -> None:
    chain = OptionChain("BTC", NOW, 70_500.0, (quote(delta=0.61, vega=80.0),))
    filled, n = fill_model_greeks(chain)
    (q,) = filled.quotes
    assert (q.delta, q.vega) == (0.61, 80.0) and q.gamma is not None and q.theta is not None and n == 1


@pytest.mark.parametrize("change", [{"mark_iv_pct": None}, {"expiry_ms": NOW},
                                    {"underlying_price": None, "index_price": None}])
def test_a_quote_that_cannot_be_modelled_stays_without_greeks(change: dict) -> None:
    chain = OptionChain("BTC", NOW, None, (quote(**change),))
    filled, n = fill_model_greeks(chain)
    assert n == 0 and filled.quotes[0].delta is None


def test_a_complete_chain_is_returned_as_it_is() -> None:
    chain = OptionChain("BTC", NOW, 70_500.0, (quote(delta=0.6, gamma=1e-5, theta=-30.0, vega=80.0),))
    assert fill_model_greeks(chain) == (chain, 0)
