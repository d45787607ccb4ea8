#!/usr/bin/env python3
"""Price checker: last prices of one or more symbols.

    python3 checkers/check_price.py BTC/USDT ETH/USDT

Prints {"BTC/USDT": 67000.0, ...}. A symbol whose price could not be had is
null, never 0; the exit status is then 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import math  # noqa: E402

from checkers import common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("symbols", nargs="+")
    common.add_context_args(parser)
    args = parser.parse_args(argv)
    prices: dict[str, float | None] = {s: None for s in args.symbols}
    folder = common.cache_dir()
    try:
        from market.cache import read_manifest

        cached = (read_manifest(folder) or {}).get("prices", {}) if folder else {}
        missing = [s for s in args.symbols if cached.get(s) is None]
        prices.update({s: cached[s] for s in args.symbols if cached.get(s) is not None})
        if missing:
            from market.sources import open_source

            source = open_source(common.market_spec(args))
            try:
                prices.update(source.fetch_prices(missing, now_ms=common.now_ms(args)))
            finally:
                source.close()
    except Exception as e:  # noqa: BLE001
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    clean = {s: (float(p) if isinstance(p, (int, float)) and math.isfinite(p) and p > 0 else None)
             for s, p in prices.items()}
    common.emit(clean)
    return 0 if all(v is not None for v in clean.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
