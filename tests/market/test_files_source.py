"""The files source replays the real candles of ../shared/data up to a clock time."""

from __future__ import annotations

import gzip
import io
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from market.download import main as download_main
from market.files_source import FilesSource, rules_from_binance_exchange_info
from scheduler.engine.errors import ConfigError, DataError, PermanentExchangeError
from tests.fake_exchange import fake_exchange, iso_ms
from tests.market.conftest import real_rows

HOUR = 3_600_000


@pytest.fixture
def files(shared_data: Path) -> FilesSource:
    return FilesSource.from_spec(
        {"source": "files", "root": str(shared_data / "ohlcv"), "exchange": "binance"}
    )


@pytest.mark.parametrize(
    ("symbol", "tf", "open_time", "close"),
    [
        ("BTC/USDT", "1h", "2018-01-01T00:00", 13529.01),
        ("BTC/USDT", "1d", "2018-01-01", 13380.0),
        ("SOL/USDT", "1d", "2023-01-01", 9.99),
        ("ETH/USDT", "1d", "2024-01-01", 2352.04),
    ],
)
def test_spot_check_known_closes(
    files: FilesSource, symbol: str, tf: str, open_time: str, close: float
) -> None:
    t = iso_ms(open_time)
    tf_ms = HOUR if tf == "1h" else 24 * HOUR
    c = files.fetch_candles(symbol, tf, now_ms=t + tf_ms, limit=3)
    assert int(c.ts_ms[-1]) == t and c.close[-1] == close


def test_range_equals_the_csv_exactly(files: FilesSource, shared_data: Path) -> None:
    now = iso_ms("2025-06-01T12:34")
    c = files.fetch_candles("ETH/USDT", "1h", now_ms=now, limit=500)
    real = real_rows(shared_data, "ETH/USDT", "1h")
    window = real.loc[: iso_ms("2025-06-01T11:00")].tail(500)
    np.testing.assert_array_equal(c.ts_ms, window.index.to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(c, col), window[col].to_numpy())
    assert c.source == "files:binance"


@pytest.mark.parametrize("offset_ms", [0, 1, HOUR // 2, HOUR - 1])
def test_forming_candle_is_never_returned(files: FilesSource, offset_ms: int) -> None:
    now = iso_ms("2024-02-01T10:00") + offset_ms
    c = files.fetch_candles("BTC/USDT", "1h", now_ms=now, limit=5)
    assert int(c.ts_ms[-1]) == iso_ms("2024-02-01T09:00")
    d = files.fetch_candles("BTC/USDT", "1d", now_ms=now, limit=5)
    assert int(d.ts_ms[-1]) == iso_ms("2024-01-31")


def test_gaps_are_reported(files: FilesSource) -> None:
    c = files.fetch_candles("SOL/USDT", "1h", now_ms=iso_ms("2023-03-24T20:00"), limit=10)
    assert c.gaps == ((iso_ms("2023-03-24T12:00"), iso_ms("2023-03-24T14:00")),)


def test_after_the_data_ends_it_is_stale(files: FilesSource) -> None:
    with pytest.raises(DataError, match="stale"):
        files.fetch_candles("BTC/USDT", "1h", now_ms=iso_ms("2026-06-01"), limit=5)


def test_prices_from_the_finest_timeframe_or_none(files: FilesSource, shared_data: Path) -> None:
    # the ticker of a replayed market: the open of the 1h candle starting at the clock time
    # (10:00), not the close of the last closed one (09:00); see tests/market/test_quotes.py
    now = iso_ms("2024-02-01T10:30")
    prices = files.fetch_prices(["BTC/USDT", "DOGE/USDT"], now_ms=now)
    rows = real_rows(shared_data, "BTC/USDT", "1h")
    assert prices == {"BTC/USDT": float(rows.loc[iso_ms("2024-02-01T10:00"), "open"]), "DOGE/USDT": None}
    assert files.fetch_prices(["BTC/USDT"], now_ms=iso_ms("2027-01-01")) == {"BTC/USDT": None}


def test_rules_from_the_real_exchange_info(shared_data: Path) -> None:
    path = shared_data / "fixtures" / "binance" / "spot_exchangeInfo_2024-09-08.json.gz"
    with gzip.open(path, "rt") as f:
        info = json.load(f)
    rules = rules_from_binance_exchange_info(info, ["BTC/USDT", "ETH/USDT"], str(path))
    assert rules["BTC/USDT"].amount_step == 1e-05 and rules["BTC/USDT"].min_notional_usd == 5.0
    assert rules["ETH/USDT"].amount_step == 0.0001
    with pytest.raises(PermanentExchangeError):
        rules_from_binance_exchange_info(info, ["NOPE/USDT"], str(path))


# --- without shared data ---


def _write(
    path: Path, rows: list[list[float]], header: str = "timestamp,open,high,low,close,volume"
) -> None:
    text = header + "\n" + "\n".join(",".join(repr(v) for v in r) for r in rows) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def _rows(start: int, n: int) -> list[list[float]]:
    return [[float(start + i * HOUR), 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1.0] for i in range(n)]


def test_gzip_file_and_markets_json(tmp_path: Path) -> None:
    start = iso_ms("2024-01-01")
    _write(tmp_path / "binance" / "ABC_USDT-1h.csv.gz", _rows(start, 10))
    (tmp_path / "binance" / "markets.json").write_text(
        json.dumps({"ABC/USDT": {"amount_step": 0.1, "min_amount": 0.1, "min_notional_usd": 5}})
    )
    src = FilesSource(tmp_path)
    c = src.fetch_candles("ABC/USDT", "1h", now_ms=start + 10 * HOUR, limit=100)
    assert len(c) == 10 and c.close[-1] == 19.5
    assert src.fetch_market_rules(["ABC/USDT"])["ABC/USDT"].amount_step == 0.1
    with pytest.raises(DataError, match="download-data"):
        src.fetch_market_rules(["XYZ/USDT"])


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    start = iso_ms("2024-01-01")
    _write(
        tmp_path / "binance" / "A_USDT-1h.csv",
        _rows(start, 3),
        header="ts,open,high,low,close,volume",
    )
    _write(tmp_path / "binance" / "B_USDT-1h.csv", list(reversed(_rows(start, 3))))
    src = FilesSource(tmp_path)
    with pytest.raises(DataError, match="missing column"):
        src.fetch_candles("A/USDT", "1h", now_ms=start + 3 * HOUR, limit=3)
    with pytest.raises(DataError, match="strictly increasing"):
        src.fetch_candles("B/USDT", "1h", now_ms=start + 3 * HOUR, limit=3)
    with pytest.raises(DataError, match="download-data --symbols C/USDT --timeframes 1h"):
        src.fetch_candles("C/USDT", "1h", now_ms=start, limit=3)
    with pytest.raises(DataError, match="no market rules"):
        src.fetch_market_rules(["A/USDT"])
    with pytest.raises(ConfigError, match="market.root"):
        FilesSource.from_spec({"source": "files"})


def test_file_changes_are_picked_up(tmp_path: Path) -> None:
    start = iso_ms("2024-01-01")
    path = tmp_path / "binance" / "ABC_USDT-1h.csv"
    _write(path, _rows(start, 5))
    src = FilesSource(tmp_path)
    assert len(src.fetch_candles("ABC/USDT", "1h", now_ms=start + 5 * HOUR, limit=50)) == 5
    _write(path, _rows(start, 8))
    assert len(src.fetch_candles("ABC/USDT", "1h", now_ms=start + 8 * HOUR, limit=50)) == 8


def _hinted_command(error: BaseException) -> list[str]:
    text = str(error)
    assert "get it with: " in text, text
    return shlex.split(text.split("get it with: ", 1)[1])


def test_the_download_hints_are_commands_that_work(tmp_path: Path) -> None:
    """The hint of a missing candle file, and of missing market rules, run as printed
    (against the local fake exchange), gives the source what it lacked."""
    start = 1_700_000_000_000 // HOUR * HOUR
    now = start + 250 * HOUR + 600_000
    rows = np.array([[start + i * HOUR, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1.0] for i in range(300)])
    src = FilesSource(tmp_path / "my data")  # a space: the command must quote it
    with pytest.raises(DataError, match="no candle file") as missing_file:
        src.fetch_candles("ABC/USDT", "1h", now_ms=now, limit=100)
    with pytest.raises(DataError, match="no market rules") as missing_rules:
        src.fetch_market_rules(["ABC/USDT"])
    with fake_exchange(None, now_ms=now) as fx:
        fx.set_candles("ABC/USDT", "1h", rows)
        fx.set_candles("ABC/USDT", "1d", rows[:10])
        for error, fixed in ((missing_rules.value, lambda: src.fetch_market_rules(["ABC/USDT"])),
                             (missing_file.value, lambda: src.fetch_candles("ABC/USDT", "1h", now_ms=now, limit=100))):
            cmd = _hinted_command(error)
            assert cmd[:2] == ["go-trader", "download-data"] and "--since" in cmd
            err = io.StringIO()
            assert download_main([*cmd[2:], "--base-url", fx.url], stderr=err) == 0, err.getvalue()
            assert fixed()
    assert len(src.fetch_candles("ABC/USDT", "1h", now_ms=now, limit=100)) == 100
    assert src.fetch_market_rules(["ABC/USDT"])["ABC/USDT"].min_notional_usd == 5.0
    with pytest.raises(DataError, match="no market rules for XYZ/USDT; get it with: ") as e:
        src.fetch_market_rules(["ABC/USDT", "XYZ/USDT"])
    assert _hinted_command(e.value)[3] == "XYZ/USDT"


def test_no_download_hint_for_an_exchange_download_data_cannot_fetch(tmp_path: Path) -> None:
    src = FilesSource(tmp_path, exchange="kraken")
    with pytest.raises(DataError, match="fetches only from binance or binanceus; put kraken's files in"):
        src.fetch_candles("ABC/USDT", "1h", now_ms=iso_ms("2024-01-02"), limit=10)
    with pytest.raises(DataError, match="--exchange binanceus"):
        FilesSource(tmp_path, exchange="binanceus").fetch_candles("ABC/USDT", "1h", now_ms=0, limit=10)
