"""scheduler/engine/timeframes.py: every accepted timeframe's length, and a clear refusal of
anything else (a config's typo, a non-string)."""

from __future__ import annotations

import pytest

from scheduler.engine.timeframes import TIMEFRAMES, first_open_at_or_after_ms, timeframe_ms

MINUTE = 60_000


@pytest.mark.parametrize(("tf", "minutes"), [("1m", 1), ("3m", 3), ("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60),
                                             ("2h", 120), ("4h", 240), ("6h", 360), ("8h", 480), ("12h", 720),
                                             ("1d", 1440), ("3d", 4320), ("1w", 10080)])
def test_each_timeframe_has_its_length(tf: str, minutes: int) -> None:
    assert timeframe_ms(tf) == minutes * MINUTE


def test_the_table_covers_every_accepted_timeframe() -> None:
    assert all(timeframe_ms(tf) > 0 for tf in TIMEFRAMES)


@pytest.mark.parametrize("bad", ["2d", "1M", "1s", "h", "", "1H", " 1h", None, 60, ["1h"]])
def test_anything_else_is_refused_with_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match=r"unknown timeframe .*expected one of 1m, 3m"):
        timeframe_ms(bad)  # type: ignore[arg-type]


def test_weeks_open_on_mondays() -> None:
    monday = 4 * 86_400_000  # 1970-01-05
    assert first_open_at_or_after_ms("1w", 1) == monday
    assert first_open_at_or_after_ms("1h", 3_600_000) == 3_600_000
