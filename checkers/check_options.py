#!/usr/bin/env python3
"""Options checker entry point: one options strategy on one underlying.

    python3 checkers/check_options.py vol_mean_reversion BTC '[]'
    echo '[]' | python3 checkers/check_options.py vol_mean_reversion BTC

Existing option positions come as a JSON list on stdin (the scheduler's way:
argv is visible to every user and has a size limit) or, for manual runs, as
the third argument.

The options strategies themselves (pricing, chains, scoring) are not
implemented yet. Until they are, this checker validates its input and answers
with no actions and a skip_reason saying so: it never trades.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import json  # noqa: E402

from checkers import common  # noqa: E402
from options import OPTIONS_STRATEGIES, UNDERLYINGS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("strategy", choices=OPTIONS_STRATEGIES)
    parser.add_argument("underlying", choices=UNDERLYINGS)
    parser.add_argument("positions_json", nargs="?", help="JSON list of open option positions (manual runs)")
    common.add_context_args(parser)
    args = parser.parse_args(argv)
    doc = {"strategy": args.strategy, "underlying": args.underlying, "signal": 0, "spot_price": None,
           "actions": [], "iv_rank": None, "timestamp": common.iso_ms(common.now_ms(args))}
    try:
        raw = args.positions_json if args.positions_json is not None else (
            "[]" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read() or "[]")
        positions = json.loads(raw)
        if not isinstance(positions, list):
            raise ValueError(f"positions must be a JSON list, got {type(positions).__name__}")
    except ValueError as e:
        common.fail(doc, e)
    doc["skip_reason"] = (f"options strategy {args.strategy} is not implemented yet; "
                          f"no action taken with {len(positions)} open position(s)")
    common.emit(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
