"""The fetch step's delivery prices (request ``deliveries``, manifest ``deliveries``): the
options exchange's own when it has one, else the mean of the spot closes of the 30 minutes
before expiry (1m, 5m, 15m), else an error saying what was tried. No network here: the
synthetic market, files written by the test, and scripted sources."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from market.base import Candles, SourceUnavailableError
from market.files_source import FilesSource
from market.prefetch import prefetch
from market.synthetic import SyntheticSource
from market.synthetic_options import SyntheticOptions
from scheduler.engine.errors import (
    DataError,
    ExchangeError,
    PermanentExchangeError,
    TransientExchangeError,
)

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400_000
MIN = 60_000
NOW = 1_773_138_000_000  # 2026-03-10T10:20Z
EXPIRY = 1_773_129_600_000  # 2026-03-10T08:00Z
ERROR_KEYS = {"ok", "error", "error_class", "error_type", "transient"}


def synthetic_mean(symbol: str, expiry_ms: int) -> float:
    """Independently: the 5m closes of SyntheticSource opening 07:30-07:55 of the expiry day."""
    candles = SyntheticSource(42).fetch_candles(symbol, "5m", now_ms=expiry_ms + 3 * 3_600_000, limit=100)
    closes = [float(c) for t, c in zip(candles.ts_ms, candles.close, strict=True)
              if expiry_ms - 30 * MIN <= t < expiry_ms]
    assert len(closes) == 6
    return statistics.fmean(closes)


class Counting(SyntheticSource):
    """The synthetic market, counting candle calls and failing as told."""

    def __init__(self, fail: ExchangeError | None = None) -> None:
        super().__init__(42)
        self.calls: list[tuple[str, str, int, int]] = []
        self.fail = fail

    def fetch_candles(self, symbol: str, timeframe: str, *, now_ms: int, limit: int) -> Candles:
        self.calls.append((symbol, timeframe, now_ms, limit))
        if self.fail is not None:
            raise self.fail
        return super().fetch_candles(symbol, timeframe, now_ms=now_ms, limit=limit)


class ExchangePrices:
    """An options source with exchange delivery prices, scripted: a price, None, or an error."""

    name = "scripted-deribit"

    def __init__(self, answers: dict[int, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def fetch_delivery_price(self, underlying: str, expiry_ms: int) -> float | None:
        self.calls.append((underlying, expiry_ms))
        answer = self.answers.get(expiry_ms)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        pass


def run(tmp_path: Path, deliveries: Any, source: Any = None, options: Any = None, now_ms: int = NOW) -> dict:
    doc = prefetch(source or SyntheticSource(42), [], [], now_ms, tmp_path, options_source=options,
                   deliveries=deliveries)
    assert json.loads((tmp_path / "manifest.json").read_text()) == doc
    return doc


def test_synthetic_delivery_is_the_mean_of_its_5m_closes(tmp_path: Path) -> None:
    earlier = EXPIRY - 17 * DAY
    doc = run(tmp_path, {"BTC": [EXPIRY, earlier, EXPIRY], "ETH": [EXPIRY]}, options=SyntheticOptions(42))
    assert set(doc["deliveries"]) == {"BTC", "ETH"} and set(doc["deliveries"]["BTC"]) == {str(EXPIRY), str(earlier)}
    for u, expiry in (("BTC", EXPIRY), ("BTC", earlier), ("ETH", EXPIRY)):
        entry = doc["deliveries"][u][str(expiry)]
        assert set(entry) == {"ok", "price", "method"} and entry["ok"] is True
        assert entry["price"] == synthetic_mean(f"{u}/USDT", expiry)
        assert entry["method"] == (f"average of 6 5m closes of {u}/USDT from synthetic (spot, not Deribit's "
                                   "index) 07:30-08:00 UTC")


def test_nothing_asked_is_an_empty_record(tmp_path: Path) -> None:
    assert run(tmp_path, None)["deliveries"] == {}
    assert run(tmp_path, {})["deliveries"] == {}
    assert run(tmp_path, {"BTC": []})["deliveries"] == {}


def test_the_synthetic_market_asks_1m_then_5m_and_stops_there(tmp_path: Path) -> None:
    src = Counting()
    doc = run(tmp_path, {"BTC": [EXPIRY]}, source=src)
    assert doc["deliveries"]["BTC"][str(EXPIRY)]["ok"]
    # 1m is refused (the synthetic market's finest is 5m); 5m covers the window
    assert src.calls == [("BTC/USDT", "1m", EXPIRY, 30), ("BTC/USDT", "5m", EXPIRY, 6)]


def test_expiry_exactly_now_is_settled(tmp_path: Path) -> None:
    doc = run(tmp_path, {"BTC": [EXPIRY]}, now_ms=EXPIRY)
    assert doc["deliveries"]["BTC"][str(EXPIRY)]["price"] == synthetic_mean("BTC/USDT", EXPIRY)


def test_bad_entries_are_recorded_one_by_one(tmp_path: Path) -> None:
    deliveries = {"BTC": [EXPIRY + DAY, EXPIRY + 1, EXPIRY - 3_600_000, "soon", 1.5, True, float(EXPIRY)],
                  "btc": [EXPIRY], "XRP": [EXPIRY]}
    got = run(tmp_path, deliveries)["deliveries"]
    btc = got["BTC"]
    assert set(btc) == {str(EXPIRY + DAY), str(EXPIRY + 1), str(EXPIRY - 3_600_000), "soon", "1.5", "True",
                        str(EXPIRY)}
    assert btc[str(EXPIRY)]["ok"]  # an integral JSON float is that integer
    assert "is after now" in btc[str(EXPIRY + DAY)]["error"] and "has not expired" in btc[str(EXPIRY + DAY)]["error"]
    for key in (str(EXPIRY + 1), str(EXPIRY - 3_600_000), "soon", "1.5", "True"):
        assert set(btc[key]) == ERROR_KEYS and btc[key]["error_type"] == "PermanentExchangeError"
        assert "is not an expiry: expected integer ms at 08:00 UTC" in btc[key]["error"]
    assert "'btc' is not a coin code such as 'BTC'" in got["btc"][str(EXPIRY)]["error"]
    xrp = got["XRP"][str(EXPIRY)]
    assert xrp["ok"] is False and xrp["error_type"] == "DataError" and xrp["error_class"] == "permanent"
    # one reason, said once for every timeframe it stopped
    assert "1m, 5m, 15m candles of XRP/USDT: PermanentExchangeError: the synthetic market has no symbol" in xrp["error"]
    assert xrp["error"].count("has no symbol") == 1


@pytest.mark.parametrize("bad", [[EXPIRY], "BTC", {"BTC": EXPIRY}, {"BTC": "1773129600000"}])
def test_a_request_of_the_wrong_shape_is_refused_with_what_was_expected(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="request 'deliveries'.* must be"):
        prefetch(SyntheticSource(42), [], [], NOW, tmp_path, deliveries=bad)


def test_the_exchange_price_comes_first_and_no_candles_are_asked(tmp_path: Path) -> None:
    src, opts = Counting(), ExchangePrices({EXPIRY: 70_123.4})
    doc = run(tmp_path, {"BTC": [EXPIRY]}, source=src, options=opts)
    assert doc["deliveries"]["BTC"][str(EXPIRY)] == {
        "ok": True, "price": 70_123.4,
        "method": "scripted-deribit delivery price of BTC on 2026-03-10 (the exchange's own: its index averaged "
                  "over 07:30-08:00 UTC)"}
    assert opts.calls == [("BTC", EXPIRY)] and src.calls == []


@pytest.mark.parametrize("answer", [None, 0.0, float("nan"), -5.0, TransientExchangeError("gave up after 5 attempts"),
                                    PermanentExchangeError("Invalid params"), DataError("result has no 'data' list")])
def test_no_exchange_price_falls_back_to_candles_and_says_why(tmp_path: Path, answer: Any) -> None:
    opts = ExchangePrices({EXPIRY: answer})
    doc = run(tmp_path, {"BTC": [EXPIRY]}, options=opts)
    entry = doc["deliveries"]["BTC"][str(EXPIRY)]
    assert entry["ok"] and entry["price"] == synthetic_mean("BTC/USDT", EXPIRY)
    assert entry["method"].startswith("average of 6 5m closes of BTC/USDT from synthetic")
    why = f"{type(answer).__name__}: {answer}" if isinstance(answer, Exception) else "no record for 2026-03-10"
    assert entry["method"].endswith(f"; scripted-deribit delivery price: {why}")
    assert doc["options_source_failed"] is None


def test_an_options_source_that_gave_up_is_not_asked_again(tmp_path: Path) -> None:
    second = EXPIRY - DAY
    opts = ExchangePrices({EXPIRY: SourceUnavailableError("3 requests in a row got no response"), second: 1.0})
    doc = run(tmp_path, {"BTC": [EXPIRY, second], "ETH": [EXPIRY]}, options=opts)
    assert opts.calls == [("BTC", EXPIRY)]  # the breaker: nothing more asked of it
    assert doc["options_source_failed"]["what"] == "delivery price BTC 2026-03-10"
    assert doc["options_source_failed"]["error_type"] == "SourceUnavailableError"
    for u, e in (("BTC", EXPIRY), ("BTC", second), ("ETH", EXPIRY)):
        entry = doc["deliveries"][u][str(e)]
        assert entry["ok"] and entry["price"] == synthetic_mean(f"{u}/USDT", e)
        assert "SourceUnavailableError: 3 requests in a row got no response" in entry["method"]


def test_a_market_source_that_gave_up_fails_the_rest_at_once(tmp_path: Path) -> None:
    src = Counting(SourceUnavailableError("3 requests in a row got no response"))
    doc = run(tmp_path, {"BTC": [EXPIRY, EXPIRY - DAY], "ETH": [EXPIRY]}, source=src)
    assert len(src.calls) == 1 and doc["source_failed"]["what"] == "delivery candles BTC/USDT 1m"
    for u, e in (("BTC", EXPIRY), ("BTC", EXPIRY - DAY), ("ETH", EXPIRY)):
        entry = doc["deliveries"][u][str(e)]
        assert entry["ok"] is False and entry["error_class"] == "transient"
        assert entry["error_type"] == "TransientExchangeError"  # try again next cycle
        assert "1m, 5m, 15m candles of" in entry["error"] and "3 requests in a row got no response" in entry["error"]


def write_candles(folder: Path, symbol: str, tf: str, rows: list[list[float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,open,high,low,close,volume"] + [",".join(repr(v) for v in r) for r in rows]
    (folder / f"{symbol.replace('/', '_')}-{tf}.csv").write_text("\n".join(lines) + "\n")


def day_rows(tf_ms: int, expiry_ms: int, seed: int) -> list[list[float]]:
    """Candles of ``tf_ms`` from 06:00 to 10:00 of the expiry day, random closes."""
    rng = np.random.default_rng(seed)
    start = expiry_ms - 2 * 3_600_000
    n = 4 * 3_600_000 // tf_ms
    closes = 70_000 + rng.normal(0, 50, n).cumsum()
    return [[float(start + i * tf_ms), c - 3, c + 9, c - 9, c, 1.5] for i, c in enumerate(closes.tolist())]


def window_mean(rows: list[list[float]], expiry_ms: int) -> float:
    return statistics.fmean(r[4] for r in rows if expiry_ms - 30 * MIN <= r[0] < expiry_ms)


def test_files_with_5m_candles_give_a_price(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rows = day_rows(5 * MIN, EXPIRY, 1)
    write_candles(root / "binance", "BTC/USDT", "5m", rows)
    cycle = tmp_path / "cycle"
    cycle.mkdir()
    doc = run(cycle, {"BTC": [EXPIRY]}, source=FilesSource(root))
    assert doc["deliveries"]["BTC"][str(EXPIRY)] == {
        "ok": True, "price": window_mean(rows, EXPIRY),
        "method": "average of 6 5m closes of BTC/USDT from files:binance (spot, not Deribit's index) 07:30-08:00 UTC"}


def test_files_1m_with_a_hole_in_the_window_falls_to_5m(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ones = [r for r in day_rows(MIN, EXPIRY, 2) if r[0] != EXPIRY - 11 * MIN]  # 07:49 missing
    fives = day_rows(5 * MIN, EXPIRY, 3)
    write_candles(root / "binance", "ETH/USDT", "1m", ones)
    write_candles(root / "binance", "ETH/USDT", "5m", fives)
    cycle = tmp_path / "cycle"
    cycle.mkdir()
    entry = run(cycle, {"ETH": [EXPIRY]}, source=FilesSource(root))["deliveries"]["ETH"][str(EXPIRY)]
    assert entry["ok"] and entry["price"] == window_mean(fives, EXPIRY) != window_mean(ones, EXPIRY)
    assert " 6 5m closes " in entry["method"]
    # with only the holed 1m file, the error names the hole
    (root / "binance" / "ETH_USDT-5m.csv").unlink()
    entry = run(cycle, {"ETH": [EXPIRY]}, source=FilesSource(root))["deliveries"]["ETH"][str(EXPIRY)]
    assert entry["ok"] is False
    assert "1m candles of ETH/USDT: 29 of the 30 bars opening 07:30-08:00 UTC on 2026-03-10" in entry["error"]
    assert "'07:48', '07:50'" in entry["error"] and "the window is not covered" in entry["error"]
    assert entry["error_class"] == "permanent"  # hours after expiry: the hole stays
    # minutes after expiry the last bars may still come: asked again next cycle
    (root / "binance" / "ETH_USDT-1m.csv").write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{r[0]!r},1.0,1.0,1.0,1.0,1.0\n" for r in ones if r[0] < EXPIRY - 2 * MIN))
    entry = run(cycle, {"ETH": [EXPIRY]}, source=FilesSource(root), now_ms=EXPIRY + 60_000)["deliveries"]["ETH"]
    assert entry[str(EXPIRY)]["error_class"] == "transient"
    assert "1m candles of ETH/USDT: 27 of the 30 bars" in entry[str(EXPIRY)]["error"]


@pytest.mark.shared_data
def test_files_with_only_1h_and_1d_say_what_to_download(tmp_path: Path, shared_data: Path) -> None:
    from market.files_options import FilesOptions

    source = FilesSource(shared_data / "ohlcv")
    doc = run(tmp_path, {"BTC": [EXPIRY]}, source=source, options=FilesOptions(shared_data))
    entry = doc["deliveries"]["BTC"][str(EXPIRY)]
    assert set(entry) == ERROR_KEYS and entry["ok"] is False and entry["error_type"] == "DataError"
    err = entry["error"]
    assert err.startswith("DataError: no delivery price for BTC options expired 2026-03-10 08:00 UTC (1773129600000): "
                          "files:deribit has no exchange delivery prices; 1m candles of BTC/USDT: ")
    assert "no candle file for BTC/USDT 5m" in err and "no candle file for BTC/USDT 15m" in err
    assert "files:binance has BTC/USDT candles of 1h, 1d only" in err
    assert "`go-trader download-data` can fetch 1m or 5m candles" in err
    assert err.endswith(f"go-trader download-data --symbols BTC/USDT --timeframes 1m --since 2026-03-10 "
                        f"--root {shared_data / 'ohlcv'} --until 2026-03-11")


def test_the_fetch_step_process_reads_deliveries_from_its_request(tmp_path: Path) -> None:
    request = {"market": {"source": "synthetic", "seed": 42}, "now_ms": NOW, "pairs": [], "price_symbols": [],
               "cache_dir": str(tmp_path), "deliveries": {"BTC": [EXPIRY]}}
    proc = subprocess.run([sys.executable, "-m", "market.prefetch"], cwd=REPO, input=json.dumps(request).encode(),
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["deliveries"]["BTC"][str(EXPIRY)]["price"] == synthetic_mean("BTC/USDT", EXPIRY)
    assert doc["options_source"] is None  # no chains asked: no options source opened for them
