"""The per-cycle market cache: the fetch step writes it, checkers read it.

One folder per cycle. The scheduler's fetch step fetches each (symbol,
timeframe) once and the ticker batch once, and writes them here; every
checker of that cycle reads from it instead of calling the exchange, so API
calls per cycle do not grow with the number of strategies and checkers stay
stateless. A checker run by hand has no cache and fetches for itself.

Files are JSON (exact float round-trip), written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from market import fsio
from market.base import Candles
from market.manifest import MANIFEST


def _name(symbol: str, timeframe: str) -> str:
    return f"{symbol.replace('/', '_')}-{timeframe}.json"


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write ``doc`` as JSON to ``path`` via a temp file and rename (no torn files; no fsync:
    the cache lives for one cycle)."""
    fsio.write_atomic(path, json.dumps(doc, separators=(",", ":"), allow_nan=False).encode(), durable=False)


def write_candles(cache_dir: Path, candles: Candles) -> None:
    write_json_atomic(cache_dir / _name(candles.symbol, candles.timeframe), {
        "symbol": candles.symbol, "timeframe": candles.timeframe, "source": candles.source,
        "gaps": [list(g) for g in candles.gaps],
        "ts_ms": candles.ts_ms.tolist(), "open": candles.open.tolist(), "high": candles.high.tolist(),
        "low": candles.low.tolist(), "close": candles.close.tolist(), "volume": candles.volume.tolist(),
    })


def read_candles(cache_dir: Path, symbol: str, timeframe: str) -> Candles | None:
    """The cached candles, or None when this cycle's cache does not hold them."""
    try:
        doc = json.loads((cache_dir / _name(symbol, timeframe)).read_text())
    except FileNotFoundError:
        return None
    f64 = np.float64
    return Candles(
        doc["symbol"], doc["timeframe"], np.asarray(doc["ts_ms"], dtype=np.int64),
        np.asarray(doc["open"], f64), np.asarray(doc["high"], f64), np.asarray(doc["low"], f64),
        np.asarray(doc["close"], f64), np.asarray(doc["volume"], f64), doc["source"],
        tuple((int(a), int(b)) for a, b in doc["gaps"]),
    )


def read_manifest(cache_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((cache_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return None
