"""download-data against the local exchange: full, incremental, interrupted and resumed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from market.download import download, main, merge_rows, missing_ranges
from market.files_source import read_candle_file
from scheduler.engine.errors import PermanentExchangeError
from tests.fake_exchange import FakeExchange, fake_exchange, iso_ms
from tests.market.conftest import make_source, real_rows

HOUR = 3_600_000
NOW_DL = iso_ms("2024-03-01T10:30")
SINCE, UNTIL = iso_ms("2023-09-01"), iso_ms("2024-01-01")  # 2928 hours: 3 pages


@pytest.fixture
def dx(shared_data: Path) -> Iterator[FakeExchange]:
    with fake_exchange(shared_data, now_ms=NOW_DL, exchange_info="small") as server:
        yield server


def _run(fx: FakeExchange, root: Path, **kw: object) -> list:  # type: ignore[type-arg]
    args: dict[str, object] = {
        "root": root,
        "exchange": "binance",
        "symbols": ["BTC/USDT"],
        "timeframes": ["1h"],
        "since_ms": SINCE,
        "until_ms": UNTIL,
    }
    args.update(kw)
    with make_source(fx) as src:
        return download(src, **args)  # type: ignore[arg-type]


def _server_rows(shared_data: Path, start: int, end: int) -> np.ndarray:
    real = real_rows(shared_data, "BTC/USDT", "1h").loc[start : end - 1]
    return np.column_stack([real.index.to_numpy(dtype=np.float64), real.to_numpy(dtype=np.float64)])


def test_full_download_equals_what_the_server_holds(
    dx: FakeExchange, tmp_path: Path, shared_data: Path
) -> None:
    (res,) = _run(dx, tmp_path)
    path = tmp_path / "binance" / "BTC_USDT-1h.csv"
    assert res.path == path and res.added == res.total == 2928
    np.testing.assert_array_equal(read_candle_file(path), _server_rows(shared_data, SINCE, UNTIL))
    assert dx.requests["/api/v3/klines"] == 3  # 3 pages of up to 1000
    rules = json.loads((tmp_path / "binance" / "markets.json").read_text())
    assert rules["BTC/USDT"] == {"amount_step": 1e-05, "min_amount": 1e-05, "min_notional_usd": 5.0}
    assert list((tmp_path / "binance").glob(".*tmp")) == []


def test_incremental_download_fetches_only_what_is_missing(
    dx: FakeExchange, tmp_path: Path
) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    _run(dx, full)
    middle = iso_ms("2023-11-01")
    _run(dx, part, since_ms=middle, until_ms=iso_ms("2023-12-01"))
    dx.reset_counts()
    (res,) = _run(dx, part)  # extends both ways: head 2023-09..11, tail 2023-12..2024
    assert res.added == 2928 - 720
    name = "binance/BTC_USDT-1h.csv"
    assert (part / name).read_bytes() == (full / name).read_bytes()
    dx.reset_counts()
    (again,) = _run(dx, part)
    assert again.added == 0 and dx.requests["/api/v3/klines"] == 0


def test_download_up_to_now_never_writes_the_forming_candle(
    dx: FakeExchange, tmp_path: Path
) -> None:
    (res,) = _run(dx, tmp_path, since_ms=iso_ms("2024-02-25"), until_ms=None, now_ms=None)
    rows = read_candle_file(res.path)
    assert int(rows[-1, 0]) == iso_ms("2024-03-01T09:00")  # 10:00 is forming at 10:30


def test_interrupted_download_resumes_cleanly(dx: FakeExchange, tmp_path: Path) -> None:
    full, broken = tmp_path / "full", tmp_path / "broken"
    _run(dx, full)

    def stop_after_two(symbol: str, tf: str, pages: int) -> None:
        if pages == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(dx, broken, checkpoint_pages=1, on_page=stop_after_two)
    path = broken / "binance" / "BTC_USDT-1h.csv"
    assert len(read_candle_file(path)) == 2000  # two checkpoints, a whole valid file
    assert list(path.parent.glob(".*tmp")) == []
    # an exchange failure mid-way also leaves the last checkpoint
    dx.add_fault("/api/v3/klines", "unknown_symbol", after=0, count=None)
    with pytest.raises(PermanentExchangeError):
        _run(dx, broken, checkpoint_pages=1)
    assert len(read_candle_file(path)) == 2000
    dx.clear_faults()
    dx.reset_counts()
    (res,) = _run(dx, broken, checkpoint_pages=1)
    assert res.added == 928 and dx.requests["/api/v3/klines"] == 1
    assert path.read_bytes() == (full / "binance" / "BTC_USDT-1h.csv").read_bytes()


def test_cli(dx: FakeExchange, tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(
        [
            "--base-url",
            dx.url,
            "--symbols",
            "BTC/USDT,ETH/USDT",
            "--timeframes",
            "1d",
            "--since",
            "2023-01-01",
            "--until",
            "2024-01-01",
            "--root",
            str(tmp_path),
        ],
        stderr=err,
    )
    assert code == 0, err.getvalue()
    assert "BTC/USDT 1d [##############################] 100.0% 365/365 candles" in err.getvalue()
    assert len(read_candle_file(tmp_path / "binance" / "ETH_USDT-1d.csv")) == 365
    assert (
        main(["--symbols", "BTC/USDT", "--timeframes", "1h", "--since", "2024-13-01"], stderr=err)
        == 2
    )
    assert (
        main(["--symbols", "BTC/USDT", "--timeframes", "7h", "--since", "2024-01-01"], stderr=err)
        == 2
    )
    asked = sum(dx.requests.values())
    bad = io.StringIO()
    assert main(["--base-url", dx.url, "--symbols", "btc", "--timeframes", "1h", "--since", "2024-01-01",
                 "--root", str(tmp_path)], stderr=bad) == 2
    assert "symbol 'btc' is not BASE/QUOTE (e.g. 'BTC/USDT')" in bad.getvalue()
    assert sum(dx.requests.values()) == asked  # refused before the exchange was asked anything
    code = main(
        [
            "--base-url",
            dx.url,
            "--symbols",
            "NOPE/USDT",
            "--timeframes",
            "1h",
            "--since",
            "2024-01-01",
            "--root",
            str(tmp_path),
        ],
        stderr=err,
    )
    assert code == 1 and "unknown symbol 'NOPE/USDT'" in err.getvalue()
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"market": {"source": "ccxt", "base_url": dx.url, "timeout_s": 5}}))
    assert (
        main(
            [
                "--config",
                str(cfg),
                "--symbols",
                "SOL/USDT",
                "--timeframes",
                "1d",
                "--since",
                "2023-12-01",
                "--until",
                "2024-01-01",
                "--root",
                str(tmp_path),
            ],
            stderr=err,
        )
        == 0
    )


def test_ranges_and_merge_are_pure() -> None:
    rows = np.array([[10.0, 1, 1, 1, 1, 1], [11.0, 1, 1, 1, 1, 1]])
    assert missing_ranges(rows, 5, 15, 1) == [(5, 10), (12, 15)]
    assert missing_ranges(rows, 10, 12, 1) == []
    assert missing_ranges(np.empty((0, 6)), 5, 15, 1) == [(5, 15)]
    new = np.array([[9.0, 2, 2, 2, 2, 2], [11.0, 9, 9, 9, 9, 9]])
    merged = merge_rows(rows, new)
    assert merged[:, 0].tolist() == [9.0, 10.0, 11.0] and merged[2, 1] == 1  # file row wins
