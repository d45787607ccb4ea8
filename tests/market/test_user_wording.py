"""What market/ and checkers/ say to a user refers only to things a user has: no
internal documents, roles or tools of the project's development."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(p for folder in ("market", "checkers") for p in (REPO / folder).rglob("*.py"))
# (the backtester is a command users run now: go-trader backtest; naming it is not internal)
INTERNAL = re.compile(r"\bREFERENCE\b|\bthe lead\b|\blead's\b|\bROADMAP\b|\bthe agreed\b", re.IGNORECASE)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_internal_references(path: Path) -> None:
    hits = [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
            if INTERNAL.search(line)]
    assert hits == []
