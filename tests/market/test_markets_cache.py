"""Markets kept on disk between fetch-step processes: reused while fresh, reloaded otherwise."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.fake_exchange import FakeExchange
from tests.market.conftest import make_source


def _load(fx: FakeExchange, cache: Path) -> int:
    """Markets loaded by a fresh source; returns the exchangeInfo calls it made."""
    fx.reset_counts()
    with make_source(fx, markets_cache=str(cache)) as src:
        assert "BTC/USDT" in src.load_markets()
    return fx.requests["/api/v3/exchangeInfo"]


def test_markets_cache_reuse_and_every_reason_to_reload(fx: FakeExchange, tmp_path: Path) -> None:
    cache = tmp_path / "markets.json"
    assert _load(fx, cache) == 1 and json.loads(cache.read_text())["exchange"] == "binance"
    assert _load(fx, cache) == 0  # a fresh process reuses the file
    old = time.time() - 7 * 3600
    os.utime(cache, (old, old))
    assert _load(fx, cache) == 1  # older than markets_max_age_s (6 h): reloaded and rewritten
    assert _load(fx, cache) == 0
    cache.write_text("{not json")
    assert _load(fx, cache) == 1  # unreadable: reloaded, never an error
    cache.write_text(json.dumps({"exchange": "binanceus", "markets": {"BTC/USDT": {}}}))
    assert _load(fx, cache) == 1  # another exchange's markets are not used
