"""The equity history file (bounded, append-only, crash-tolerant) and the /metrics text."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler import history, metrics

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _rows(path: Path, n: int, max_bytes: int = 1 << 20) -> None:
    for i in range(n):
        history.append(path, history.row(T0 + timedelta(minutes=10 * i), i + 1, 1000.0 + i, {"a": 500.0 + i,
                                                                                          "b": None}), max_bytes)


def test_rows_round_trip_in_order(tmp_path: Path) -> None:
    path = tmp_path / "s.history.jsonl"
    _rows(path, 5)
    points = history.read(path)
    assert [p["cycle"] for p in points] == [1, 2, 3, 4, 5]
    assert points[0]["strategies"] == {"a": 500.0, "b": None} and points[0]["at"] == "2026-03-01T00:00:00Z"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_torn_last_line_is_skipped_and_the_next_row_still_lands(tmp_path: Path) -> None:
    path = tmp_path / "s.history.jsonl"
    _rows(path, 2)
    with path.open("a") as f:
        f.write('{"at": "2026-03-01T00:20:00Z", "ts_')  # a crash mid-append
    assert [p["cycle"] for p in history.read(path)] == [1, 2]
    history.append(path, history.row(T0 + timedelta(hours=1), 3, 1.0, {}), 1 << 20)
    assert [p["cycle"] for p in history.read(path)] == [1, 2, 3]


def test_the_file_stays_under_its_cap_and_keeps_the_newest_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.history.jsonl"
    cap = 64 * 1024
    _rows(path, 3000, max_bytes=cap)
    assert path.stat().st_size <= cap
    cycles = [p["cycle"] for p in history.read(path, max_points=10_000)]
    assert cycles == sorted(cycles) and cycles[-1] == 3000
    newest = cycles[len(cycles) // 2:]
    assert newest == list(range(newest[0], 3001))  # the newer half is whole
    assert len(cycles) < 3000 and cycles[0] == 1  # old history thinned, not cut: it still starts at 1


def test_since_strategy_and_max_points(tmp_path: Path) -> None:
    path = tmp_path / "s.history.jsonl"
    _rows(path, 100)
    since = int((T0 + timedelta(minutes=500)).timestamp() * 1000)
    assert [p["cycle"] for p in history.read(path, since_ms=since)][0] == 51
    only_a = history.read(path, strategy="a")
    assert all(set(p["strategies"]) == {"a"} for p in only_a)
    few = history.read(path, max_points=10)
    assert len(few) == 10 and few[-1]["cycle"] == 100 and few[0]["cycle"] == 1


def _status(equity: float | None = 1010.0) -> dict:
    return {
        "last_cycle_at": "2026-03-01T00:10:00Z",
        "strategies": [{"id": "a", "portfolio_value_usd": equity, "cash_usd": 10.0, "realized_pnl_usd": 1.5,
                        "fees_paid_usd": 0.9, "positions": [{"value_usd": None if equity is None else 1000.0}],
                        "risk": {"drawdown_pct": 0.5, "blocks": [{"code": "MAX_DRAWDOWN"}]}}],
        "account": {"equity_usd": equity, "peak_equity_usd": 1100.0, "exposure_usd": 1000.0,
                    "blocks": [{"code": "DAILY_LOSS"}]},
    }


def _families(text: bytes) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text.decode())}


def test_metrics_parse_with_prometheus_own_parser_and_carry_the_numbers() -> None:
    counters = metrics.Counters(trades=Counter({("a", "buy", "signal"): 3, ("a", "sell", "stop"): 1}),
                                check_failures=Counter({("a", "transient"): 2}), cycles=7, fetch_steps=7,
                                last_cycle_seconds=1.25)
    fam = _families(metrics.render(_status(), counters) + metrics.health_text(200))
    assert fam["go_trader_strategy_equity_usd"][0].value == 1010.0
    assert fam["go_trader_strategy_position_value_usd"][0].value == 1000.0
    trades = {(s.labels["side"], s.labels["reason"]): s.value for s in fam["go_trader_trades"]}
    assert trades == {("buy", "signal"): 3.0, ("sell", "stop"): 1.0}
    blocks = {(s.labels["scope"], s.labels["code"]) for s in fam["go_trader_blocks_active"]}
    assert blocks == {("a", "MAX_DRAWDOWN"), ("account", "DAILY_LOSS")}
    assert fam["go_trader_account_drawdown_pct"][0].value == pytest.approx((1 - 1010 / 1100) * 100)
    assert fam["go_trader_cycle_duration_seconds"][0].value == 1.25
    assert fam["go_trader_last_cycle_timestamp_seconds"][0].value == T0.timestamp() + 600
    assert fam["go_trader_up"][0].value == 1.0


def test_unknown_values_are_left_out_not_invented() -> None:
    fam = _families(metrics.render(_status(equity=None), metrics.Counters()) + metrics.health_text(503))
    assert fam["go_trader_strategy_equity_usd"] == []
    assert fam["go_trader_strategy_position_value_usd"] == []
    assert fam["go_trader_account_drawdown_pct"] == []
    assert fam["go_trader_up"][0].value == 0.0


def test_label_values_are_escaped() -> None:
    status = _status()
    status["strategies"][0]["id"] = 'we"ird\\id'
    fam = _families(metrics.render(status, metrics.Counters()))
    assert fam["go_trader_strategy_cash_usd"][0].labels["strategy"] == 'we"ird\\id'
    json.dumps(status)
