#!/usr/bin/env python3
"""Price checker: last prices of one or more symbols.

    python3 checkers/check_price.py BTC/USDT ETH/USDT

Prints {"BTC/USDT": 67000.0, ...} and exits 0. When a price could not be had,
that symbol is null (never 0) and the document also has "error" (which symbols,
and why) and "error_class" (transient: may work next time; permanent: needs a
fix); the exit status is then non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import math  # noqa: E402

from checkers import common  # noqa: E402


def _positive(p: object) -> float | None:
    return float(p) if isinstance(p, (int, float)) and math.isfinite(p) and p > 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("symbols", nargs="+", help="BASE/QUOTE symbols, e.g. BTC/USDT")
    common.add_context_args(parser)
    args = parser.parse_args(argv)
    doc: dict[str, object] = {s: None for s in args.symbols}
    with common.reporting(doc) as keep:
        from scheduler.engine.errors import DataError, PermanentExchangeError

        clash = [s for s in args.symbols if s in ("error", "error_class")]
        if clash:  # the document's own keys
            raise PermanentExchangeError(f"{clash[0]!r} is not a symbol; symbols look like BTC/USDT")
        source = keep(common.open_market(args))
        prices = source.fetch_prices(list(dict.fromkeys(args.symbols)), now_ms=common.now_ms(args))
        doc.update({s: _positive(prices.get(s)) for s in args.symbols})
        missing = [s for s in args.symbols if doc[s] is None]
        if missing:
            raise DataError(f"no price for {', '.join(missing)} from {source.name}: it has none for this "
                            "time (unknown symbol, no data, or only stale data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
