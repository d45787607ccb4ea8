"""Log files: the human line format in UTC, the JSON event log, and size-based rotation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from scheduler.logs import Logs


def test_line_format_event_log_and_rotation(tmp_path: Path) -> None:
    logs = Logs(tmp_path, max_bytes=10_000, backups=2, stdout=False)
    try:
        log = logs.strategy("momentum-btc")
        log.info("Signal: HOLD | BTC/USDT @ $66916.86")
        logs.event("signal", 7, "momentum-btc", signal=0, price=66916.86)
        first = (tmp_path / "momentum-btc.log").read_text().splitlines()[0]
        assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[momentum-btc\] \[INFO\] "
                            r"Signal: HOLD \| BTC/USDT @ \$66916\.86", first)
        event = json.loads((tmp_path / "events.jsonl").read_text())
        assert event["kind"] == "signal" and event["cycle"] == 7 and event["strategy"] == "momentum-btc"
        for i in range(2_000):  # ~150 KB into a 10 KB file with 2 backups
            log.info(f"line {i:05d} " + "x" * 60)
        files = sorted(p.name for p in tmp_path.glob("momentum-btc.log*"))
        assert files == ["momentum-btc.log", "momentum-btc.log.1", "momentum-btc.log.2"]
        assert all(p.stat().st_size <= 10_000 for p in tmp_path.glob("momentum-btc.log*"))
        assert "line 01999" in (tmp_path / "momentum-btc.log").read_text()
    finally:
        logs.close()
