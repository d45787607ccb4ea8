"""Write tests/strategies/golden/signals.json: every strategy's signals on fixed real slices.

Regenerate (only when a strategy's definition changes on purpose, then review the diff):

    .venv/bin/python -m tests.strategies.make_golden

Slices (computed on the slice alone, from its first bar):
- single-symbol strategies: BTC/USDT 1h, 2024-01-01 .. 2024-04-01 (open times);
- pairs_spread: BTC/USDT vs ETH/USDT 1d, 2023-01-01 .. 2025-01-01;
- edge70: BTC/USDT 1d, 2022-01-01 .. 2025-01-01.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import strategies as S
from tests.conftest import SHARED_DATA
from tests.strategies._data import between, load

GOLDEN = Path(__file__).parent / "golden" / "signals.json"
SLICES = {
    "default": ("BTC", "1h", "2024-01-01", "2024-04-01"),
    "pairs_spread": ("BTC", "1d", "2023-01-01", "2025-01-01"),
    "edge70": ("BTC", "1d", "2022-01-01", "2025-01-01"),
}


def slice_for(name: str, shared_data: Path):
    base, tf, start, end = SLICES.get(name, SLICES["default"])
    candles = between(load(shared_data, base, tf), start, end)
    cb = between(load(shared_data, "ETH", tf), start, end) if name == "pairs_spread" else None
    return candles, cb


def compute(shared_data: Path) -> dict[str, object]:
    out: dict[str, object] = {"slices": {k: list(v) for k, v in SLICES.items()}, "signals": {}}
    for name in S.STRATEGY_NAMES:
        candles, cb = slice_for(name, shared_data)
        sig = S.signal_series(name, candles, candles_b=cb).signal
        out["signals"][name] = {  # type: ignore[index]
            "bars": len(candles),
            "buy_ts_ms": [int(t) for t in candles.ts_ms[np.flatnonzero(sig == 1)]],
            "sell_ts_ms": [int(t) for t in candles.ts_ms[np.flatnonzero(sig == -1)]],
        }
    return out


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(SHARED_DATA), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
