"""The fetch step as the daemon runs it (``python -m market.prefetch``, a JSON request on
stdin) with option underlyings: real ccxt against the local fake exchange's Deribit
endpoints, and the files source over the real daily chains; what it caches is read back
by CycleCacheSource exactly as the source gives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from market.cache_source import CycleCacheSource
from market.ccxt_source import CcxtSource
from market.files_options import FilesOptions
from options.chain_greeks import fill_model_greeks
from scheduler.engine.errors import DataError
from tests.fake_exchange import FakeExchange, fake_exchange, iso_ms

pytestmark = pytest.mark.shared_data

REPO = Path(__file__).resolve().parents[2]
NOW = iso_ms("2026-03-10T10:20")
DAY = 86_400_000
D = "/api/v2/public/"


def run_prefetch(request: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    cache_dir.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "market.prefetch"], cwd=REPO, timeout=120,
                          input=json.dumps({**request, "cache_dir": str(cache_dir)}).encode(),
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    doc = json.loads(proc.stdout)
    assert doc == json.loads((cache_dir / "manifest.json").read_text())
    return doc


def no_live() -> Any:
    raise AssertionError("the real source was opened")


def ccxt_spec(fx: FakeExchange, **kw: Any) -> dict[str, Any]:
    return {"source": "ccxt", "base_url": fx.url, "options_base_url": fx.url, "timeout_s": 5.0,
            "enable_rate_limit": False, "retry_budget_s": 10.0, **kw}


@pytest.fixture
def fx(shared_data: Path) -> Any:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as server:
        yield server


def test_ccxt_fetch_step_one_book_summary_per_underlying(fx: FakeExchange, tmp_path: Path) -> None:
    fx.add_fault(D + "get_book_summary_by_currency", "status", status=429, retry_after="1",
                 match={"currency": "ETH"})
    fx.add_fault(D + "get_book_summary_by_currency", "no_bids", every=4, match={"currency": "BTC"})
    request = {"market": ccxt_spec(fx), "now_ms": NOW, "pairs": [["BTC/USDT", "4h"], ["ETH/USDT", "4h"]],
               "price_symbols": ["BTC/USDT", "ETH/USDT"], "limit": 60, "option_underlyings": ["BTC", "ETH"]}
    doc = run_prefetch(request, tmp_path / "cycle")
    assert doc["options_source"] == "ccxt:deribit" and doc["options_source_failed"] is None
    assert all(doc["options"][u]["ok"] and doc["options"][u]["dvol"]["ok"] for u in ("BTC", "ETH"))
    assert doc["options"]["BTC"]["dvol"]["days"] == 399 and doc["options"]["ETH"]["dvol"]["days"] == 0
    assert doc["options"]["BTC"]["contract"] == "exchange" and doc["pairs"]["BTC/USDT 4h"]["ok"]
    # cost: one book summary per underlying (+1 for the 429 retried), never a ticker per option
    options_calls = {p: n for p, n in fx.requests.items() if p.startswith(D)}
    assert options_calls == {D + "get_book_summary_by_currency": 3, D + "get_instruments": 2,
                             D + "get_volatility_index_data": 2}

    reader = CycleCacheSource(tmp_path / "cycle", no_live, no_live)
    with CcxtSource.from_spec(ccxt_spec(fx)) as direct:
        for u in ("BTC", "ETH"):
            fx.clear_faults()
            if u == "BTC":
                fx.add_fault(D + "get_book_summary_by_currency", "no_bids", every=4, match={"currency": "BTC"})
            # the book summary has no greeks: the fetch step gives every quote Black-76 ones at its mark IV
            want, modelled = fill_model_greeks(direct.fetch_option_chain(u, now_ms=NOW))
            got = reader.fetch_option_chain(u, now_ms=NOW)
            assert got == want and doc["options"][u]["quotes"] == len(want.quotes) > 500
            assert doc["options"][u]["model_greeks"] == modelled > 0
            assert reader.fetch_index_price(u) == want.index_price
            assert reader.fetch_dvol(u, start_ms=NOW - 365 * DAY, end_ms=NOW) == direct.fetch_dvol(
                u, start_ms=NOW - 365 * DAY, end_ms=NOW)
    btc = reader.fetch_option_chain("BTC", now_ms=NOW)
    assert sum(q.bid is None for q in btc.quotes) >= len(btc.quotes) // 4  # null or 0 bids: None


def test_ccxt_fetch_step_records_a_stale_chain_and_a_down_exchange(fx: FakeExchange, tmp_path: Path) -> None:
    fx.add_fault(D + "get_book_summary_by_currency", "stale", lag=3600, match={"currency": "ETH"})
    request = {"market": ccxt_spec(fx), "now_ms": NOW, "pairs": [], "price_symbols": [],
               "option_underlyings": ["BTC", "ETH"]}
    doc = run_prefetch(request, tmp_path / "c1")
    assert doc["options"]["BTC"]["ok"] and doc["options"]["ETH"]["error_type"] == "DataError"
    with pytest.raises(DataError, match="fetch step of this cycle failed to get the option chain of ETH .*stale"):
        CycleCacheSource(tmp_path / "c1", no_live, no_live).fetch_option_chain("ETH", now_ms=NOW)

    # Deribit not there at all (nothing listens on the port): recorded once, the spot part goes on
    dead = ccxt_spec(fx, options_base_url="http://127.0.0.1:9", retry_budget_s=1.0, max_retries=1)
    doc = run_prefetch({**request, "market": dead, "pairs": [["BTC/USDT", "1d"]]}, tmp_path / "c2")
    assert doc["options_source_failed"]["error_type"] == "SourceUnavailableError"
    assert doc["options"]["ETH"]["error_type"] == "SourceUnavailableError" and doc["pairs"]["BTC/USDT 1d"]["ok"]


def test_files_fetch_step_over_the_real_daily_chains(shared_data: Path, tmp_path: Path) -> None:
    spec = {"source": "files", "root": str(shared_data / "ohlcv"), "options_root": ".."}
    request = {"market": spec, "now_ms": NOW, "pairs": [["BTC/USDT", "1h"]], "price_symbols": [],
               "option_underlyings": ["BTC", "ETH"]}
    doc = run_prefetch(request, tmp_path / "cycle")
    assert doc["options_source"] == "files:deribit"
    files = FilesOptions(shared_data)
    reader = CycleCacheSource(tmp_path / "cycle", no_live, no_live)
    for u in ("BTC", "ETH"):
        want, modelled = fill_model_greeks(files.fetch_option_chain(u, now_ms=NOW))  # the files have delta, vega
        assert reader.fetch_option_chain(u, now_ms=NOW) == want and want.asof_ms is not None
        assert doc["options"][u]["model_greeks"] == modelled > 0
        assert doc["options"][u]["asof_ms"] == want.asof_ms <= NOW
    assert reader.fetch_dvol("BTC", start_ms=NOW - 365 * DAY, end_ms=NOW) == files.fetch_dvol(
        "BTC", start_ms=NOW - 365 * DAY, end_ms=NOW)
    assert doc["options"]["ETH"]["dvol"] == {"ok": True, "days": 0, "last_ms": None}  # no ETH DVOL on file


def test_synthetic_fetch_step(tmp_path: Path) -> None:
    request = {"market": {"source": "synthetic", "seed": 7}, "now_ms": NOW, "pairs": [], "price_symbols": [],
               "option_underlyings": ["ETH"]}
    doc = run_prefetch(request, tmp_path / "cycle")
    from market.synthetic_options import SyntheticOptions

    want = SyntheticOptions(7).fetch_option_chain("ETH", now_ms=NOW)
    assert doc["options"]["ETH"]["quotes"] == len(want.quotes)
    assert CycleCacheSource(tmp_path / "cycle", no_live, no_live).fetch_option_chain("ETH", now_ms=NOW) == want
