"""Equity history beside the state: one JSON line per cycle, append-only, bounded.

``<state stem>.history.jsonl`` holds, for every committed cycle, the account's and every
strategy's equity (null while unknown). It is appended (and fsynced) after the state was
saved, so it never shows a cycle that did not happen; a crash mid-append leaves a torn
last line, which readers skip. When the file outgrows its cap, it is rewritten atomically
with its newer half kept whole and its older half thinned to every other line, so recent
history stays at full resolution and old history fades out gradually instead of being cut.
It is a chart's data source, not a ledger: the trade log is the record of money.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from market import fsio

FILE_MODE = 0o600
MAX_POINTS = 2000  # per /history answer: enough for a chart, small enough to serve at once


def history_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.stem + ".history.jsonl")


def row(at: datetime, cycle: int, account_usd: float | None, strategies: dict[str, float | None]) -> dict[str, Any]:
    return {"at": at.isoformat().replace("+00:00", "Z"), "ts_ms": int(at.timestamp() * 1000), "cycle": cycle,
            "account_usd": account_usd, "strategies": strategies}


def append(path: Path, entry: dict[str, Any], max_bytes: int) -> None:
    """Append one row durably; compact the file when it is over ``max_bytes``. OSError on failure."""
    line = json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    if size and _ends_torn(path):
        line = "\n" + line  # a torn last line stays a line of its own (skipped by readers)
    fsio.append_durably(path, line, mode=FILE_MODE)
    if size + len(line) > max_bytes:
        compact(path, max_bytes)


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def compact(path: Path, max_bytes: int) -> None:
    """Thin the older half (every other line) until the file is under half of ``max_bytes``."""
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln]
    while lines and sum(len(ln) + 1 for ln in lines) > max_bytes // 2:
        half = len(lines) // 2
        if half == 0:
            lines = lines[-1:]
            break
        lines = lines[:half][::2] + lines[half:]  # the oldest row stays: the chart keeps its start
    fsio.write_atomic(path, b"".join(ln + b"\n" for ln in lines), mode=FILE_MODE)


def read(path: Path, *, since_ms: int | None = None, strategy: str | None = None,
         max_points: int = MAX_POINTS) -> list[dict[str, Any]]:
    """The rows at or after ``since_ms`` (one strategy's equity only with ``strategy``), evenly
    thinned to at most ``max_points`` (the newest row always kept)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in raw.split(b"\n"):
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a torn line
        if not isinstance(r, dict) or not isinstance(r.get("ts_ms"), int):
            continue
        if since_ms is not None and r["ts_ms"] < since_ms:
            continue
        if strategy is not None:
            r = {**r, "strategies": {strategy: (r.get("strategies") or {}).get(strategy)}}
        rows.append(r)
    if len(rows) > max_points:
        step = len(rows) / max_points
        picked = [rows[int(i * step)] for i in range(max_points - 1)]
        rows = [*picked, rows[-1]]
    return rows
