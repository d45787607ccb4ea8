"""Benchmark the fetch step of the 22-strategy deployment against the local fake exchange.

Counts API calls and response bytes at the exchange and times the step, for the batched
fetch (markets once, candles once per unique pair, one ticker batch, chain + DVOL per
options underlying) and for the one-fetch-per-strategy baseline, in the same run.

    .venv/bin/python bench/bench_fetch.py [--repeat 5] [--no-rate-limit]

Needs ../shared/data (or GO_TRADER_SHARED_DATA). Real ccxt, real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from market.ccxt_source import CcxtSource  # noqa: E402
from tests.fake_exchange import FakeExchange, fake_exchange, iso_ms  # noqa: E402
from tests.fake_exchange.cycle import deployment_22, fetch_baseline, fetch_cycle  # noqa: E402

NOW = iso_ms("2026-03-10T10:20")


def _source(fx: FakeExchange, rate_limit: bool) -> CcxtSource:
    return CcxtSource.from_spec(
        {"base_url": fx.url, "options_base_url": fx.url, "enable_rate_limit": rate_limit}
    )


def _measure(fx: FakeExchange, run) -> tuple[int, int, float]:  # type: ignore[no-untyped-def]
    fx.reset_counts()
    t0 = time.perf_counter()
    run()
    return fx.total_requests, fx.total_bytes, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-rate-limit", action="store_true", help="turn off ccxt's request spacing")
    args = p.parse_args(argv)
    shared = Path(os.environ.get("GO_TRADER_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (shared / "ohlcv" / "binance").is_dir():
        print(f"real market data not found at {shared}; set GO_TRADER_SHARED_DATA", file=sys.stderr)
        return 2
    rate_limit = not args.no_rate_limit
    strategies = deployment_22()
    cold, warm, base = [], [], []
    with (
        fake_exchange(shared, now_ms=NOW, exchange_info="full") as fx,
        tempfile.TemporaryDirectory() as tmp,
    ):
        # warm the server's file caches so the first measured run is not a disk read
        with _source(fx, False) as s:
            fetch_cycle(s, strategies, now_ms=NOW, cache_dir=Path(tmp) / "warmup")
        for i in range(args.repeat):
            with _source(fx, rate_limit) as src:
                for runs, tag in ((cold, "a"), (warm, "b")):
                    cache = Path(tmp) / f"{tag}{i}"
                    runs.append(
                        _measure(
                            fx,
                            lambda s=src, c=cache: fetch_cycle(
                                s, strategies, now_ms=NOW, cache_dir=c
                            ),
                        )
                    )
            base.append(
                _measure(
                    fx,
                    lambda: fetch_baseline(lambda: _source(fx, rate_limit), strategies, now_ms=NOW),
                )
            )

    def row(name: str, runs: list[tuple[int, int, float]]) -> tuple[int, int, float]:
        calls, nbytes = runs[0][0], runs[0][1]
        wall = statistics.median(r[2] for r in runs)
        print(f"{name:<34} {calls:>6} {nbytes / 1e6:>10.3f} {wall * 1000:>10.1f}")
        return calls, nbytes, wall

    print(
        f"22-strategy fetch step, {args.repeat} runs, ccxt rate limiter {'on' if rate_limit else 'off'}"
    )
    print(f"{'':<34} {'calls':>6} {'MB (body)':>10} {'wall ms':>10}  (median)")
    c = row("batched, first cycle (markets)", cold)
    w = row("batched, later cycles", warm)
    b = row("baseline: one fetch per strategy", base)
    print(
        f"ratio baseline/batched (first cycle): calls {b[0] / c[0]:.2f}x, bytes {b[1] / c[1]:.2f}x, wall {b[2] / c[2]:.2f}x"
    )
    print(
        f"ratio baseline/batched (later cycle): calls {b[0] / w[0]:.2f}x, bytes {b[1] / w[1]:.2f}x, wall {b[2] / w[2]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
