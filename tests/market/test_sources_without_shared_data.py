"""The closed-candles rule in every source, on candles given by the test (no ../shared)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.download import write_candle_file
from market.files_source import FilesSource
from scheduler.engine.timeframes import last_closed_open_ms
from tests.fake_exchange import FakeExchange, fake_exchange
from tests.market.conftest import make_source

HOUR = 3_600_000
START = 1_700_000_000_000 // HOUR * HOUR
N = 300
ROWS = np.array(
    [[START + i * HOUR, 100 + i, 102 + i, 99 + i, 101 + i, 5.0] for i in range(N)], dtype=np.float64
)
ROWS = np.delete(ROWS, [100, 101], axis=0)  # a gap of two hours


@pytest.fixture(scope="module")
def server() -> Iterator[FakeExchange]:
    with fake_exchange(None, now_ms=START) as fx:
        fx.set_candles("ABC/USDT", "1h", ROWS)
        yield fx


@pytest.fixture(scope="module")
def files_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    write_candle_file(root / "binance" / "ABC_USDT-1h.csv", ROWS)
    return root


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(offset=st.integers(min_value=120 * HOUR, max_value=(N - 1) * HOUR + HOUR - 1))
def test_no_source_returns_the_forming_candle(
    server: FakeExchange, files_root: Path, offset: int
) -> None:
    now = START + offset
    server.now_ms = now
    expected_last = last_closed_open_ms("1h", now)
    with make_source(server) as live:
        a = live.fetch_candles("ABC/USDT", "1h", now_ms=now, limit=200)
    b = FilesSource(files_root).fetch_candles("ABC/USDT", "1h", now_ms=now, limit=200)
    for c in (a, b):
        assert int(c.ts_ms[-1]) == expected_last
        assert (c.ts_ms + HOUR <= now).all()
    np.testing.assert_array_equal(a.ts_ms, b.ts_ms)
    np.testing.assert_array_equal(a.close, b.close)
    assert a.gaps == b.gaps == ((START + 99 * HOUR, START + 102 * HOUR),)


def test_markets_and_prices_for_given_candles(server: FakeExchange) -> None:
    now = START + 50 * HOUR + 10
    server.now_ms = now
    with make_source(server) as live:
        assert live.fetch_prices(["ABC/USDT"], now_ms=now) == {
            "ABC/USDT": 150.0
        }  # open of the forming candle
        assert live.fetch_market_rules(["ABC/USDT"])["ABC/USDT"].min_notional_usd == 5.0
