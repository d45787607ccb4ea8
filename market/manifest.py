"""The cycle cache's manifest: its name, and the document the daemon writes itself when the
fetch step produced none. Standard library only: the daemon imports it (and never numpy)."""

from __future__ import annotations

import json
from pathlib import Path

from market import fsio

MANIFEST = "manifest.json"


def write_fetch_failed(cache_dir: Path, reason: str) -> None:
    """Record that the fetch step itself failed, so every checker of the cycle fails at once
    with this reason instead of fetching for itself (the shape market.cache_source reads)."""
    doc = {"source_failed": {"what": "fetch step", "error": f"TransientExchangeError: {reason}",
                             "error_class": "transient", "error_type": "TransientExchangeError",
                             "transient": True}}
    fsio.write_atomic(cache_dir / MANIFEST, json.dumps(doc).encode(), durable=False)
