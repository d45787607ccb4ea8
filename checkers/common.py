"""What every checker shares: where market data comes from, the decision
time, and printing exactly one JSON document.

Run by the scheduler, a checker gets its context from the environment:
``GO_TRADER_NOW_MS`` (the decision time), ``GO_TRADER_MARKET`` (the config's
market section as JSON) and ``GO_TRADER_CACHE_DIR`` (this cycle's market
cache, see market.cache). It reads through that cache (``open_market``): what
the cycle's fetch step got is served from it, what the fetch step failed to get
fails at once with the recorded error, and only what it never asked goes to the
exchange. Run by hand, with no cache, it uses the wall clock and the market of
``--config FILE`` (default: live Binance through ccxt) and fetches for itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from scheduler.engine.errors import GoTraderError, TransientExchangeError

S = TypeVar("S")

if TYPE_CHECKING:
    from market.base import MarketSource

ENV_NOW = "GO_TRADER_NOW_MS"
ENV_MARKET = "GO_TRADER_MARKET"
ENV_CACHE = "GO_TRADER_CACHE_DIR"
ENV_LIMIT = "GO_TRADER_CANDLES_LIMIT"
DEFAULT_MARKET = {"source": "ccxt", "exchange": "binance"}


def add_context_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="take the market section from this config file "
                        "(default: live Binance through ccxt)")
    parser.add_argument("--now-ms", help="decision time in UTC milliseconds (default: now; from 1970 to a "
                        "year past the wall clock)")


#: how far past the wall clock a decision time may lie (a market is made up to the decision
#: time: the year 3000 had the synthetic market build ten centuries of candles)
MAX_FUTURE_MS = 366 * 86_400_000


def now_ms(args: argparse.Namespace) -> int:
    """The decision time: ``--now-ms``, else the scheduler's, else the wall clock. ValueError
    for one that is not a whole number of ms from 1970 to a year past the wall clock."""
    given, where = (args.now_ms, "--now-ms") if args.now_ms is not None else (os.environ.get(ENV_NOW), ENV_NOW)
    wall = int(time.time() * 1000)
    if not given:
        return wall
    try:
        value = int(str(given).strip())
    except ValueError:
        raise ValueError(f"{where} must be a whole number of UTC milliseconds since 1970, got {given!r}") from None
    if not 0 <= value <= wall + MAX_FUTURE_MS:
        raise ValueError(f"{where} {value} is outside 1970 to a year past the wall clock ({iso_ms(wall)}); give a "
                         "decision time in milliseconds, e.g. 1767225600000 for 2026-01-01")
    return value


def market_spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.config is not None:
        try:
            doc = json.loads(args.config.read_text())
        except (OSError, ValueError) as e:
            raise GoTraderError(f"cannot read market section of {args.config}: {e}") from e
        market = doc.get("market", DEFAULT_MARKET) if isinstance(doc, dict) else DEFAULT_MARKET
        if market.get("source") == "files" and not Path(market["root"]).is_absolute():
            market = {**market, "root": str(args.config.resolve().parent / market["root"])}
        return market
    env = os.environ.get(ENV_MARKET)
    return json.loads(env) if env else dict(DEFAULT_MARKET)


def cache_dir() -> Path | None:
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else None


def open_market(args: argparse.Namespace, *, options: bool = False) -> MarketSource:
    """The checker's MarketSource: the cycle's cache over the configured source when the
    scheduler gave one (GO_TRADER_CACHE_DIR), else the configured source itself. With
    ``options``, it also serves option chains, index and DVOL (market.options_data)."""
    from market.cache_source import CycleCacheSource
    from market.sources import open_options_source, open_source

    spec = market_spec(args)
    folder = cache_dir()
    if folder is None and not options:
        return open_source(spec)
    # by hand, a manifest-less cache: everything goes to the real sources, opened lazily
    return CycleCacheSource(folder, lambda: open_source(spec), lambda: open_options_source(spec))


def candles_limit() -> int:
    return int(os.environ.get(ENV_LIMIT, "500"))


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit(doc: dict[str, Any]) -> None:
    """Print the one JSON document (non-finite numbers become null)."""
    sys.stdout.write(json.dumps(_clean(doc), separators=(",", ":"), allow_nan=False) + "\n")
    sys.stdout.flush()


@contextmanager
def reporting(doc: dict[str, Any]) -> Iterator[Callable[[S], S]]:
    """Run a checker's work and print its one document: any exception becomes the error
    document and a non-zero exit (``fail``). Yields ``keep``: a source passed through it is
    closed at the end, whatever happened."""
    sources: list[Any] = []

    def keep(source: S) -> S:
        sources.append(source)
        return source

    try:
        yield keep
    except Exception as e:  # noqa: BLE001 - any failure becomes an error document and a non-zero exit
        fail(doc, e)
    finally:
        for source in sources:
            source.close()
    emit(doc)


def fail(doc: dict[str, Any], error: BaseException) -> NoReturn:
    """Print the document with an error and exit non-zero (never 0 on a failure)."""
    transient = isinstance(error, TransientExchangeError)
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    emit({**doc, "error": f"{type(error).__name__}: {error}",
          "error_class": "transient" if transient else "permanent"})
    sys.exit(75 if transient else 1)  # 75 = EX_TEMPFAIL
