"""The files options source replays the real Deribit daily chains and BTC DVOL of
../shared/data: the newest snapshot at or before the clock, never a later one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.files_options import FilesOptions
from market.sources import open_options_source
from scheduler.engine.errors import DataError
from tests.fake_exchange import iso_ms

pytestmark = pytest.mark.shared_data

DAY = 86_400_000
HOUR = 3_600_000
CHAINS = "option_chains_daily_BTC_ETH_2025-12-30_2026-08-22.csv.gz"


@pytest.fixture(scope="module")
def csv(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "deribit" / CHAINS)


@pytest.fixture(scope="module")
def files(shared_data: Path) -> FilesOptions:
    # the layout of ../shared/data: candles under ohlcv/, options under deribit/
    return open_options_source({"source": "files", "root": str(shared_data / "ohlcv"), "options_root": ".."})


def snapshot_times(csv: pd.DataFrame, under: str) -> np.ndarray:
    return np.sort(csv.loc[csv["currency"] == under, "timestamp_ms"].unique())


@pytest.mark.parametrize("under", ["BTC", "ETH"])
def test_chain_is_the_newest_snapshot_at_or_before_now(files: FilesOptions, csv: pd.DataFrame,
                                                       under: str) -> None:
    now = iso_ms("2026-03-10T10:20")
    times = snapshot_times(csv, under)
    asof = int(times[times <= now][-1])
    chain = files.fetch_option_chain(under, now_ms=now)
    assert chain.asof_ms == asof and chain.now_ms == now and chain.underlying == under
    rows = csv[(csv["currency"] == under) & (csv["timestamp_ms"] == asof)]
    expiry = pd.to_datetime(rows["expiry_datetime"], utc=True)
    expiry_ms = (expiry - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    live = rows[expiry_ms.to_numpy() > now]
    assert len(chain.quotes) == len(live) > 500
    assert chain.index_price == pytest.approx(float(rows["index_price"].median()), rel=0, abs=1e-9)
    assert chain.contract is not None and chain.contract.source == "deribit default"
    assert chain.contract.min_trade_amount == {"BTC": 0.1, "ETH": 1.0}[under]
    by_name = live.set_index("instrument_name")
    for q in chain.quotes:
        r = by_name.loc[q.instrument]
        # a zero mark (a worthless far wing) is None, as the ccxt source reads Deribit's
        assert q.mark == (r["mark_price"] if r["mark_price"] > 0 else None)
        assert q.strike == r["strike"] and q.option_type == r["option_type"]
        assert q.underlying_price == r["underlying"] and q.index_price == r["index_price"]
        assert q.mark_iv_pct == pytest.approx(r["implied_volatility"] * 100, rel=1e-12)
        assert q.delta == r["delta"] and q.vega == r["vega"] and q.gamma is None
        # a missing bid or ask stays None, never 0
        assert q.bid == (None if pd.isna(r["bid_price"]) or r["bid_price"] <= 0 else r["bid_price"])
        assert q.ask == (None if pd.isna(r["ask_price"]) or r["ask_price"] <= 0 else r["ask_price"])
    assert any(q.bid is None for q in chain.quotes)  # the real chain has options without a bid
    assert files.fetch_index_price(under) == chain.index_price  # at the last chain's time


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=iso_ms("2025-12-31"), max_value=iso_ms("2026-08-22T23:00")))
def test_never_a_later_snapshot(files: FilesOptions, csv: pd.DataFrame, now: int) -> None:
    times = snapshot_times(csv, "BTC")
    chain = files.fetch_option_chain("BTC", now_ms=now)
    assert chain.asof_ms is not None and chain.asof_ms <= now
    assert not ((times > chain.asof_ms) & (times <= now)).any()  # the newest one, not an older one
    assert all(q.expiry_ms > now for q in chain.quotes)


def test_snapshot_boundaries_and_expiry(files: FilesOptions, csv: pd.DataFrame) -> None:
    times = snapshot_times(csv, "BTC")
    t = int(times[100])
    assert files.fetch_option_chain("BTC", now_ms=t).asof_ms == t  # taken at now: usable
    assert files.fetch_option_chain("BTC", now_ms=t - 1).asof_ms == int(times[99])
    # a snapshot taken before 08:00 lists that day's expiry; at 08:00 it has expired
    early = next(int(x) for x in times if pd.Timestamp(int(x), unit="ms", tz="UTC").hour < 8)
    expiry = (early // DAY) * DAY + 8 * HOUR
    assert any(q.expiry_ms == expiry for q in files.fetch_option_chain("BTC", now_ms=expiry - 1).quotes)
    later = files.fetch_option_chain("BTC", now_ms=expiry)
    assert later.asof_ms == early and all(q.expiry_ms > expiry for q in later.quotes)


def test_before_the_first_and_long_after_the_last_snapshot(files: FilesOptions, csv: pd.DataFrame,
                                                         shared_data: Path) -> None:
    times = snapshot_times(csv, "ETH")
    with pytest.raises(DataError, match="no ETH option chain snapshot at or before"):
        files.fetch_option_chain("ETH", now_ms=int(times[0]) - 1)
    with pytest.raises(DataError, match=r"stale: .* taken 129601 s earlier \(allowed 129600 s"):
        files.fetch_option_chain("ETH", now_ms=int(times[-1]) + 36 * HOUR + 1000)
    lenient = FilesOptions(shared_data, max_chain_age_s=3 * 86400)
    assert lenient.fetch_option_chain("ETH", now_ms=int(times[-1]) + 48 * HOUR).asof_ms == int(times[-1])
    with pytest.raises(DataError, match="no SOL options in the chain files"):
        files.fetch_option_chain("SOL", now_ms=int(times[5]))


def test_dvol_closes_of_closed_days_only(files: FilesOptions, shared_data: Path) -> None:
    real = pd.read_csv(shared_data / "deribit" / "BTC_DVOL-1d.csv").set_index("timestamp")["close"]
    now = iso_ms("2026-03-10T10:20")
    got = files.fetch_dvol("BTC", start_ms=now - 400 * DAY, end_ms=now)
    assert got[-1][0] == iso_ms("2026-03-09")  # the forming day 03-10 is not closed
    assert got[0][0] == iso_ms("2025-02-04")
    assert got == [(int(t), float(c)) for t, c in real.items() if now - 400 * DAY <= t and t + DAY <= now]
    assert files.fetch_dvol("ETH", start_ms=now - 400 * DAY, end_ms=now) == []  # no ETH DVOL on file


def test_missing_files_say_what_was_looked_for(tmp_path: Path, shared_data: Path) -> None:
    empty = FilesOptions(tmp_path)
    with pytest.raises(DataError, match=r"no option chain files in .*deribit .*option_chains_daily_\*\.csv\.gz"):
        empty.fetch_option_chain("BTC", now_ms=iso_ms("2026-03-10"))
    bad = tmp_path / "bad" / "deribit"
    bad.mkdir(parents=True)
    (bad / "option_chains_daily_x.csv").write_text("timestamp_ms,instrument_name\n1,BTC-1JAN27-1-C\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['currency'"):
        FilesOptions(tmp_path / "bad").fetch_option_chain("BTC", now_ms=2)
    shutil.copy(shared_data / "deribit" / "BTC_DVOL-1d.csv", bad / "ETH_DVOL-1d.csv")
    assert FilesOptions(tmp_path / "bad").fetch_dvol("ETH", start_ms=0, end_ms=iso_ms("2021-03-26"))[0][1] == 95.04
