"""The synthetic market has three symbols and refuses every other one, instead of
inventing prices for it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.synthetic import _PROFILES, SYMBOLS, SyntheticSource
from scheduler.engine.errors import PermanentExchangeError

NOW = 1_773_138_000_000
LISTED = "models only BTC/USDT, ETH/USDT, SOL/USDT"

CALLS = {
    "candles": lambda src, s: src.fetch_candles(s, "1h", now_ms=NOW, limit=5),
    "prices": lambda src, s: src.fetch_prices([s], now_ms=NOW),
    "rules": lambda src, s: src.fetch_market_rules([s]),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("symbol", ["BTC/USDX", "BTCUSDT", "btc/usdt", "DOGE/USDT", "BTC/USD", "", "BTC/USDT "])
def test_unmodelled_symbols_are_refused(call: str, symbol: str) -> None:
    with pytest.raises(PermanentExchangeError, match=LISTED) as e:
        CALLS[call](SyntheticSource(42), symbol)
    assert repr(symbol) in str(e.value)


def test_the_hint_names_the_nearest_symbol() -> None:
    with pytest.raises(PermanentExchangeError, match=r"'BTCUSDT' \(did you mean BTC/USDT\?\)"):
        SyntheticSource(42).fetch_prices(["ETH/USDT", "BTCUSDT"], now_ms=NOW)


@settings(max_examples=60, deadline=None)
@given(symbol=st.text(max_size=12).filter(lambda s: s not in SYMBOLS))
def test_no_other_symbol_gets_a_price(symbol: str) -> None:
    with pytest.raises(PermanentExchangeError, match=LISTED):
        SyntheticSource(7).fetch_prices([symbol], now_ms=NOW)


def test_the_modelled_symbols_still_trade() -> None:
    assert tuple(_PROFILES) == SYMBOLS  # the numpy-free list in market.specs matches the model
    src = SyntheticSource(42)
    prices = src.fetch_prices(list(SYMBOLS), now_ms=NOW)
    assert set(prices) == set(SYMBOLS) and all(p is not None and p > 0 for p in prices.values())
    assert src.fetch_market_rules(["SOL/USDT"])["SOL/USDT"].amount_step == 1e-3
    assert len(src.fetch_candles("ETH/USDT", "1d", now_ms=NOW, limit=30)) == 30
