"""What the fetch step records when things fail, and how a checker reading the cycle's
cache (market.cache_source) turns the records back into errors without asking again.
No network: a scripted source and the synthetic market."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from market.base import Candles, SourceUnavailableError
from market.cache_source import CycleCacheSource
from market.prefetch import prefetch
from market.synthetic import SyntheticSource
from scheduler.engine.errors import DataError, PermanentExchangeError, TransientExchangeError
from scheduler.engine.market_rules import MarketRules

NOW = 1_773_138_000_000  # 2026-03-10T10:20Z


class Scripted:
    """A MarketSource that fails as told and counts every call."""

    name = "scripted"

    def __init__(self, rules_error: Exception | None = None, candle_errors: dict[str, Exception] | None = None
                 ) -> None:
        self.calls: list[str] = []
        self.rules_error = rules_error
        self.candle_errors = candle_errors or {}
        self.synthetic = SyntheticSource(42)

    def fetch_market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        self.calls.append("rules")
        if self.rules_error:
            raise self.rules_error
        return self.synthetic.fetch_market_rules(symbols)

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        self.calls.append(f"candles {symbol}")
        if symbol in self.candle_errors:
            raise self.candle_errors[symbol]
        return self.synthetic.fetch_candles(symbol, timeframe, now_ms=now_ms, limit=limit)

    def fetch_prices(self, symbols: Sequence[str], *, now_ms: int) -> dict[str, float | None]:
        self.calls.append("prices")
        return self.synthetic.fetch_prices(symbols, now_ms=now_ms)

    def close(self) -> None:
        pass


class NoLive:
    """The opener of the real source: a checker must not need it here."""

    def __call__(self) -> Scripted:
        raise AssertionError("the real source was opened")


PAIRS = [("BTC/USDT", "1h"), ("ETH/USDT", "1h"), ("SOL/USDT", "4h")]


def test_source_failure_stops_the_fetch_step_and_is_recorded(tmp_path: Path) -> None:
    src = Scripted(rules_error=SourceUnavailableError("binance is unreachable"))
    doc = prefetch(src, PAIRS, ["BTC/USDT"], NOW, tmp_path, limit=50)
    assert src.calls == ["rules"]  # nothing else asked of a source that is down
    assert doc["source_failed"] == {
        "what": "market rules", "error": "SourceUnavailableError: binance is unreachable",
        "error_class": "transient", "error_type": "SourceUnavailableError", "transient": True,
    }
    assert all(p == {"ok": False, **{k: v for k, v in doc["source_failed"].items() if k != "what"}}
               for p in doc["pairs"].values())
    assert json.loads((tmp_path / "manifest.json").read_text()) == doc

    cached = CycleCacheSource(tmp_path, NoLive())
    for call in (lambda: cached.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=50),
                 lambda: cached.fetch_candles("DOGE/USDT", "1d", now_ms=NOW, limit=50),  # never asked
                 lambda: cached.fetch_prices(["BTC/USDT", "XRP/USDT"], now_ms=NOW),
                 lambda: cached.fetch_market_rules(["BTC/USDT"])):
        with pytest.raises(SourceUnavailableError, match="fetch step of this cycle failed .* unreachable"):
            call()


@pytest.mark.parametrize("error", [PermanentExchangeError("no such market"), DataError("stale data"),
                                   TransientExchangeError("gave up after 5 attempts")])
def test_one_failed_pair_keeps_its_error_type(tmp_path: Path, error: Exception) -> None:
    src = Scripted(candle_errors={"ETH/USDT": error})
    doc = prefetch(src, PAIRS, ["BTC/USDT", "ETH/USDT"], NOW, tmp_path, limit=50)
    assert doc["source_failed"] is None and doc["pairs"]["BTC/USDT 1h"]["ok"]
    assert doc["pairs"]["ETH/USDT 1h"]["error_type"] == type(error).__name__
    cached = CycleCacheSource(tmp_path, NoLive())
    with pytest.raises(type(error), match=f"failed to get candles ETH/USDT 1h from scripted.*{error}") as got:
        cached.fetch_candles("ETH/USDT", "1h", now_ms=NOW, limit=50)
    assert type(got.value) is type(error)
    assert len(cached.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=50)) == 50
    assert cached.fetch_prices(["BTC/USDT", "ETH/USDT"], now_ms=NOW) == {
        s: doc["prices"][s] for s in ("BTC/USDT", "ETH/USDT")}
    assert cached.fetch_market_rules(["SOL/USDT"])["SOL/USDT"].amount_step == 1e-3


def test_what_the_fetch_step_never_asked_goes_to_the_real_source(tmp_path: Path) -> None:
    prefetch(Scripted(), [("BTC/USDT", "1h")], ["BTC/USDT"], NOW, tmp_path, limit=50)
    live = Scripted()
    cached = CycleCacheSource(tmp_path, lambda: live)
    assert len(cached.fetch_candles("ETH/USDT", "1d", now_ms=NOW, limit=20)) == 20
    prices = cached.fetch_prices(["BTC/USDT", "SOL/USDT"], now_ms=NOW)
    assert live.calls == ["candles ETH/USDT", "prices"] and all(prices.values())

    empty = tmp_path / "no-manifest"  # a fetch step that wrote nothing: fetch as before
    empty.mkdir()
    live.calls.clear()
    assert len(CycleCacheSource(empty, lambda: live).fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=5)) == 5
    assert live.calls == ["candles BTC/USDT"]


def test_a_symbol_the_synthetic_market_lacks_does_not_unprice_the_others(tmp_path: Path) -> None:
    doc = prefetch(SyntheticSource(42), [("BTC/USDT", "1h"), ("BTC/USDX", "1h")], ["ETH/USDT"], NOW, tmp_path)
    assert doc["prices"]["BTC/USDT"] > 0 and doc["prices"]["ETH/USDT"] > 0 and doc["prices"]["BTC/USDX"] is None
    assert doc["price_errors"]["BTC/USDX"]["error_class"] == "permanent"
    assert doc["pairs"]["BTC/USDX 1h"]["error_type"] == "PermanentExchangeError"
    cached = CycleCacheSource(tmp_path, NoLive())
    with pytest.raises(PermanentExchangeError, match="models only BTC/USDT, ETH/USDT, SOL/USDT"):
        cached.fetch_prices(["BTC/USDX"], now_ms=NOW)
    with pytest.raises(PermanentExchangeError, match="models only BTC/USDT, ETH/USDT, SOL/USDT"):
        cached.fetch_candles("BTC/USDX", "1h", now_ms=NOW, limit=5)
    assert cached.fetch_prices(["ETH/USDT"], now_ms=NOW) == {"ETH/USDT": doc["prices"]["ETH/USDT"]}


def test_a_manifest_holding_only_source_failed_fails_everything_at_once(tmp_path: Path) -> None:
    """The smallest record a scheduler can write itself when its fetch step died (killed on
    timeout, crashed): every checker of the cycle then fails at once, asking nothing."""
    (tmp_path / "manifest.json").write_text(json.dumps({"source_failed": {
        "what": "fetch step", "error": "fetch step timed out after 80 s", "error_class": "transient"}}))
    cached = CycleCacheSource(tmp_path, NoLive())
    with pytest.raises(TransientExchangeError, match="fetch step timed out after 80 s"):
        cached.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=5)
    with pytest.raises(TransientExchangeError, match="the price of BTC/USDT, ETH/USDT .* timed out"):
        cached.fetch_prices(["BTC/USDT", "ETH/USDT"], now_ms=NOW)
    with pytest.raises(TransientExchangeError, match="market rules of BTC/USDT"):
        cached.fetch_market_rules(["BTC/USDT"])
