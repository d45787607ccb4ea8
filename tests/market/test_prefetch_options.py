"""The fetch step's options part: chains, index and DVOL per underlying into the cycle
cache, read back by CycleCacheSource exactly; failures recorded and raised again without
asking the source. No network: the synthetic chain and a scripted options source."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from market.base import SourceUnavailableError
from market.cache_source import CycleCacheSource
from market.manifest import write_fetch_failed
from market.options_cache import read_option_chain
from market.prefetch import DVOL_DAYS, prefetch
from market.synthetic import SyntheticSource
from market.synthetic_options import SyntheticOptions
from options.chain import OptionChain
from scheduler.engine.errors import DataError, PermanentExchangeError, TransientExchangeError

NOW = 1_773_138_000_000  # 2026-03-10T10:20Z
DAY = 86_400_000
ERROR_KEYS = {"error", "error_class", "error_type", "transient"}


class Scripted:
    """An OptionsSource over the synthetic chain that fails as told and counts calls."""

    name = "scripted-options"

    def __init__(self, fail: dict[str, Exception] | None = None, no_index: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail or {}
        self.no_index = no_index
        self.synthetic = SyntheticOptions(42)

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        if call in self.fail:
            raise self.fail[call]

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> OptionChain:
        self._maybe_fail(f"chain {underlying}")
        chain = self.synthetic.fetch_option_chain(underlying, now_ms=now_ms)
        return replace(chain, index_price=None) if self.no_index else chain

    def fetch_index_price(self, underlying: str) -> float | None:
        self._maybe_fail(f"index {underlying}")
        return self.synthetic.fetch_index_price(underlying)

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        self._maybe_fail(f"dvol {underlying}")
        return self.synthetic.fetch_dvol(underlying, start_ms=start_ms, end_ms=end_ms)

    def close(self) -> None:
        pass


def no_live() -> Any:
    raise AssertionError("the real source was opened")


def cached(cache_dir: Path) -> CycleCacheSource:
    return CycleCacheSource(cache_dir, no_live, no_live)


def test_chains_index_and_dvol_round_trip_exactly(tmp_path: Path) -> None:
    opts = SyntheticOptions(42)
    doc = prefetch(SyntheticSource(42), [("BTC/USDT", "4h"), ("ETH/USDT", "4h")], ["BTC/USDT"], NOW, tmp_path,
                   limit=50, options_source=opts, option_underlyings=["BTC", "ETH", "BTC"])
    assert doc["options_source"] == "synthetic" and doc["options_source_failed"] is None
    assert list(doc["options"]) == ["BTC", "ETH"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == doc
    reader = cached(tmp_path)
    for u in ("BTC", "ETH"):
        want = SyntheticOptions(42).fetch_option_chain(u, now_ms=NOW)
        entry = doc["options"][u]
        dvol = SyntheticOptions(42).fetch_dvol(u, start_ms=NOW - DVOL_DAYS * DAY, end_ms=NOW)
        assert entry == {"ok": True, "quotes": len(want.quotes), "expiries": len(want.expiries_ms()),
                         "index_price": want.index_price, "asof_ms": NOW, "contract": "deribit default",
                         "dvol": {"ok": True, "days": len(dvol), "last_ms": dvol[-1][0]}, "model_greeks": 0}
        assert reader.fetch_option_chain(u, now_ms=NOW) == want  # every field, every quote
        assert read_option_chain(tmp_path, u) == want  # the daemon's reader
        assert reader.fetch_index_price(u) == want.index_price
        year = SyntheticOptions(42).fetch_dvol(u, start_ms=NOW - 365 * DAY, end_ms=NOW)
        assert reader.fetch_dvol(u, start_ms=NOW - 365 * DAY, end_ms=NOW) == year and len(year) == 364
    # the 4h candles an options strategy needs (momentum_options) come as ordinary pairs
    assert doc["pairs"]["BTC/USDT 4h"]["ok"] and len(reader.fetch_candles("BTC/USDT", "4h", now_ms=NOW, limit=50)) == 50


def test_a_later_reader_drops_what_expired(tmp_path: Path) -> None:
    prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=SyntheticOptions(42),
             option_underlyings=["BTC"])
    chain = cached(tmp_path).fetch_option_chain("BTC", now_ms=NOW)
    first = chain.expiries_ms()[0]
    later = cached(tmp_path).fetch_option_chain("BTC", now_ms=first)
    assert later.now_ms == first and first not in later.expiries_ms()
    assert len(later.quotes) == len([q for q in chain.quotes if q.expiry_ms > first])


@pytest.mark.parametrize("error", [DataError("stale: newest quote is 1000 s old"),
                                   PermanentExchangeError("Invalid params"),
                                   TransientExchangeError("gave up after 5 attempts")])
def test_a_failed_chain_is_recorded_and_raised_again_without_asking(tmp_path: Path, error: Exception) -> None:
    src = Scripted({"chain ETH": error})
    doc = prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=src, option_underlyings=["BTC", "ETH"])
    assert src.calls == ["chain BTC", "dvol BTC", "chain ETH"]  # no DVOL for a failed chain
    eth = doc["options"]["ETH"]
    assert set(eth) == {"ok"} | ERROR_KEYS and eth["ok"] is False
    assert eth["error_type"] == type(error).__name__ and eth["error"] == f"{type(error).__name__}: {error}"
    assert eth["error_class"] == ("transient" if isinstance(error, TransientExchangeError) else "permanent")
    assert doc["options"]["BTC"]["ok"] and not (tmp_path / "options-ETH.json").exists()
    reader = cached(tmp_path)
    for call in (lambda: reader.fetch_option_chain("ETH", now_ms=NOW), lambda: reader.fetch_index_price("ETH"),
                 lambda: reader.fetch_dvol("ETH", start_ms=NOW - DAY * 30, end_ms=NOW)):
        with pytest.raises(type(error), match=f"fetch step of this cycle failed .* scripted-options.*{error}") as got:
            call()
        assert type(got.value) is type(error)
    assert len(reader.fetch_option_chain("BTC", now_ms=NOW).quotes) > 100


def test_a_failed_dvol_beside_a_good_chain(tmp_path: Path) -> None:
    src = Scripted({"dvol BTC": TransientExchangeError("DVOL: 503")})
    doc = prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=src, option_underlyings=["BTC"])
    entry = doc["options"]["BTC"]
    assert entry["ok"] and entry["dvol"]["ok"] is False and entry["dvol"]["error_type"] == "TransientExchangeError"
    reader = cached(tmp_path)
    assert len(reader.fetch_option_chain("BTC", now_ms=NOW).quotes) > 100
    with pytest.raises(TransientExchangeError, match="failed to get the DVOL of BTC .*503"):
        reader.fetch_dvol("BTC", start_ms=NOW - 365 * DAY, end_ms=NOW)


def test_options_source_down_stops_the_options_part_only(tmp_path: Path) -> None:
    src = Scripted({"chain BTC": SourceUnavailableError("deribit is unreachable")})
    doc = prefetch(SyntheticSource(42), [("BTC/USDT", "1h")], ["BTC/USDT"], NOW, tmp_path, limit=20,
                   options_source=src, option_underlyings=["BTC", "ETH"])
    assert src.calls == ["chain BTC"]  # nothing else asked of a source that gave up
    assert doc["options_source_failed"] == {"what": "option chain BTC",
                                            "error": "SourceUnavailableError: deribit is unreachable",
                                            "error_class": "transient", "error_type": "SourceUnavailableError",
                                            "transient": True}
    assert doc["options"]["ETH"] == {"ok": False, **{k: v for k, v in doc["options_source_failed"].items()
                                                     if k != "what"}}
    assert doc["source_failed"] is None and doc["pairs"]["BTC/USDT 1h"]["ok"] and doc["prices"]["BTC/USDT"] > 0
    reader = cached(tmp_path)
    for u in ("BTC", "ETH", "SOL"):  # SOL was never asked: the source is down all the same
        with pytest.raises(SourceUnavailableError, match="unreachable"):
            reader.fetch_option_chain(u, now_ms=NOW)
    assert len(reader.fetch_candles("BTC/USDT", "1h", now_ms=NOW, limit=20)) == 20


def test_index_asked_only_when_the_chain_has_none(tmp_path: Path) -> None:
    src = Scripted(no_index=True)
    doc = prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=src, option_underlyings=["ETH"])
    assert src.calls == ["chain ETH", "index ETH", "dvol ETH"]
    assert doc["options"]["ETH"]["index_price"] == SyntheticOptions(42).fetch_index_price("ETH", now_ms=NOW)
    src = Scripted()
    prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=src, option_underlyings=["ETH"])
    assert src.calls == ["chain ETH", "dvol ETH"]


def test_a_bad_underlying_is_recorded_not_fetched(tmp_path: Path) -> None:
    src = Scripted()
    doc = prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=src,
                   option_underlyings=["../BTC", "BTC"])
    assert doc["options"]["../BTC"]["error_type"] == "PermanentExchangeError" and doc["options"]["BTC"]["ok"]
    assert src.calls == ["chain BTC", "dvol BTC"]
    with pytest.raises(ValueError, match="without an options_source"):
        prefetch(SyntheticSource(42), [], [], NOW, tmp_path, option_underlyings=["BTC"])


def test_the_whole_fetch_step_failed_options_fail_at_once(tmp_path: Path) -> None:
    write_fetch_failed(tmp_path, "the fetch step failed (exit status 1)")
    with pytest.raises(TransientExchangeError, match="exit status 1"):
        cached(tmp_path).fetch_option_chain("BTC", now_ms=NOW)


def test_never_asked_or_no_manifest_goes_to_the_real_source(tmp_path: Path) -> None:
    prefetch(SyntheticSource(42), [], [], NOW, tmp_path, options_source=Scripted(), option_underlyings=["BTC"])
    live = Scripted()
    reader = CycleCacheSource(tmp_path, no_live, lambda: live)
    assert reader.fetch_option_chain("ETH", now_ms=NOW).underlying == "ETH"  # never asked
    assert reader.fetch_dvol("BTC", start_ms=NOW - 1000 * DAY, end_ms=NOW)  # beyond the cached 400 days
    assert live.calls == ["chain ETH", "dvol BTC"]
    empty = tmp_path / "no-manifest"  # a checker run by hand
    empty.mkdir()
    live.calls.clear()
    by_hand = CycleCacheSource(empty, no_live, lambda: live)
    by_hand.fetch_option_chain("BTC", now_ms=NOW)
    by_hand.fetch_index_price("BTC")
    assert live.calls == ["chain BTC", "index BTC"]
    # without an options opener, a market source that serves options is used
    market = CycleCacheSource(empty, lambda: live)  # type: ignore[arg-type, return-value]
    market.fetch_dvol("ETH", start_ms=NOW - DAY * 10, end_ms=NOW)
    assert live.calls[-1] == "dvol ETH"
    with pytest.raises(PermanentExchangeError, match="has no option chains"):
        CycleCacheSource(empty, lambda: SyntheticSource(42)).fetch_option_chain("BTC", now_ms=NOW)
