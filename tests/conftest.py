"""Shared fixtures. ``shared_data`` points at ../shared/data (real exchange data).

A user's clone has no ../shared: tests that need it skip with the reason. CI
has it. Set GO_TRADER_SHARED_DATA to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("GO_TRADER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when it is not beside the clone."""
    if not (SHARED_DATA / "ohlcv" / "binance").is_dir():
        pytest.skip(
            f"real market data not found at {SHARED_DATA} (it sits in ../shared/data beside "
            "the clone in CI; set GO_TRADER_SHARED_DATA to use another copy)"
        )
    return SHARED_DATA
