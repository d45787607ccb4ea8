"""Fixtures: a local fake exchange on 127.0.0.1 and CcxtSource clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from market.ccxt_source import CcxtSource
from tests.fake_exchange import FakeExchange, fake_exchange, iso_ms

#: The clock of most integration tests: mid-hour, inside the option-chain period.
NOW = iso_ms("2026-03-10T10:20")


class Sleeps(list[float]):
    """An injected ``sleep`` that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_source(fx: FakeExchange, sleeps: Sleeps | None = None, **spec: Any) -> CcxtSource:
    base = {
        "base_url": fx.url,
        "options_base_url": fx.url,
        "timeout_s": 5.0,
        "enable_rate_limit": False,
    }
    base.update(spec)
    return CcxtSource.from_spec(
        base, sleep=sleeps if sleeps is not None else Sleeps(), rng=np.random.default_rng(7)
    )


@pytest.fixture
def fx(shared_data: Path) -> Iterator[FakeExchange]:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def src(fx: FakeExchange, sleeps: Sleeps) -> Iterator[CcxtSource]:
    source = make_source(fx, sleeps)
    yield source
    source.close()


def real_rows(shared_data: Path, symbol: str, tf: str) -> pd.DataFrame:
    """The real candles of ../shared/data, indexed by open time (ms)."""
    folder = shared_data / "ohlcv" / "binance"
    stem = f"{symbol.replace('/', '_')}-{tf}"
    path = (
        folder / f"{stem}.csv" if (folder / f"{stem}.csv").exists() else folder / f"{stem}.csv.gz"
    )
    return pd.read_csv(path).set_index("timestamp")
