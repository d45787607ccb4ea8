"""delivery_from_candles: the mean of the closes of exactly the bars of the 30 minutes
before expiry, or None; never the wrong bars. Pure: no I/O."""

from __future__ import annotations

import math
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.delivery import (
    delivery_date,
    delivery_from_candles,
    delivery_records,
    is_expiry_ms,
    window_bars,
)

MIN = 60_000
EXPIRY = 1_774_598_400_000  # 2026-03-27T08:00Z
START = EXPIRY - 30 * MIN


def bars(tf_ms: int, first_ms: int, n: int, close: float = 70_000.0, step: float = 7.25) -> list[tuple]:
    return [(first_ms + i * tf_ms, close - 1, close + 5, close - 5, close + i * step) for i in range(n)]


@pytest.mark.parametrize(("tf_ms", "n"), [(MIN, 30), (5 * MIN, 6), (15 * MIN, 2), (3 * MIN, 10), (30 * MIN, 1)])
def test_exact_mean_of_the_window(tf_ms: int, n: int) -> None:
    # bars before and after the window are there and must not count
    rows = bars(tf_ms, START - 4 * tf_ms, n + 8)
    window = [r for r in rows if START <= r[0] < EXPIRY]
    assert len(window) == n and window[0][0] == START and window[-1][0] == EXPIRY - tf_ms
    assert delivery_from_candles(rows, EXPIRY, tf_ms) == statistics.fmean(r[4] for r in window)


def test_order_and_extra_columns_do_not_matter() -> None:
    rows = [(*r, 12.5) for r in bars(MIN, START, 30)]  # with a volume column
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    want = math.fsum(r[4] for r in rows) / 30
    assert delivery_from_candles(rows, EXPIRY, MIN) == want == delivery_from_candles(shuffled, EXPIRY, MIN)


@pytest.mark.parametrize("missing", [0, 1, 14, 29])
def test_a_missing_bar_is_none(missing: int) -> None:
    rows = bars(MIN, START, 30)
    del rows[missing]
    assert delivery_from_candles(rows, EXPIRY, MIN) is None


@pytest.mark.parametrize("first_ms", [
    START - 5 * MIN,  # the 30 bars before the window's last five minutes
    START + 5 * MIN,  # starts late, runs past expiry
    EXPIRY,  # the half hour after expiry
    START - 24 * 3_600_000,  # the day before
])
def test_the_wrong_window_is_none(first_ms: int) -> None:
    assert delivery_from_candles(bars(MIN, first_ms, 30), EXPIRY, MIN) is None


def test_bars_off_the_grid_or_doubled_are_none() -> None:
    off = [(t + 30_000, *rest) for t, *rest in bars(MIN, START, 30)]  # opens at :30 s
    assert delivery_from_candles(off, EXPIRY, MIN) is None
    assert delivery_from_candles(bars(MIN, START, 30) + [(START + 7 * MIN + 1, 1, 1, 1, 1.0)], EXPIRY, MIN) is None
    doubled = bars(5 * MIN, START, 6) + bars(5 * MIN, START + 10 * MIN, 1, close=1.0)
    assert delivery_from_candles(doubled, EXPIRY, 5 * MIN) is None
    # 5m bars given as if they were 1m: only 6 of 30
    assert delivery_from_candles(bars(5 * MIN, START, 6), EXPIRY, MIN) is None
    # 1m bars given as 5m: 24 of them are off the 5m grid
    assert delivery_from_candles(bars(MIN, START, 30), EXPIRY, 5 * MIN) is None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, None, "x", True])
def test_an_unusable_close_is_none(bad: object) -> None:
    rows = bars(5 * MIN, START, 6)
    rows[3] = (*rows[3][:4], bad)
    assert delivery_from_candles(rows, EXPIRY, 5 * MIN) is None


def test_malformed_rows_are_none() -> None:
    assert delivery_from_candles([(START, 1.0, 1.0, 1.0)], EXPIRY, 30 * MIN) is None
    assert delivery_from_candles([(START + 0.5, 1, 1, 1, 1.0)], EXPIRY, 30 * MIN) is None
    assert delivery_from_candles([(float(START), 1, 1, 1, 2.0)], EXPIRY, 30 * MIN) == 2.0  # a whole float is fine
    assert delivery_from_candles([], EXPIRY, MIN) is None


@pytest.mark.parametrize("tf_ms", [0, -MIN, 7 * MIN, 3_600_000, 1.5, True])
def test_a_timeframe_that_cannot_cover_the_window_is_an_error(tf_ms: object) -> None:
    with pytest.raises(ValueError, match=r"does not divide the 30-minute delivery window .* use 1m, 3m, 5m"):
        delivery_from_candles(bars(MIN, START, 30), EXPIRY, tf_ms)  # type: ignore[arg-type]


def test_window_bars() -> None:
    assert [window_bars(m * MIN) for m in (1, 5, 15)] == [30, 6, 2]


@given(st.lists(st.floats(min_value=1e-3, max_value=1e7), min_size=30, max_size=30))
def test_the_mean_is_within_the_closes(closes: list[float]) -> None:
    rows = [(START + i * MIN, 1, 1, 1, c) for i, c in enumerate(closes)]
    got = delivery_from_candles(rows, EXPIRY, MIN)
    assert got is not None and min(closes) <= got <= max(closes)
    assert got == math.fsum(closes) / 30


def test_expiry_and_records_helpers() -> None:
    assert delivery_date(EXPIRY) == "2026-03-27"
    assert is_expiry_ms(EXPIRY) and not is_expiry_ms(EXPIRY + 1) and not is_expiry_ms(float(EXPIRY))
    assert delivery_records([{"date": "2026-03-27", "delivery_price": 70123.4},
                             {"date": "2026-03-26", "delivery_price": 0},
                             {"date": "27 Mar", "delivery_price": 1.0}, "junk",
                             {"date": "2026-03-25", "delivery_price": "69000.5"}]) == {
        "2026-03-27": 70123.4, "2026-03-25": 69000.5}
    assert delivery_records(None) == {}


def test_the_module_is_standard_library_only() -> None:
    # the daemon imports it and never numpy
    code = ("import sys, market.delivery; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'numpy', 'pandas', 'ccxt', 'pydantic'}); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
