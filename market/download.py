"""``go-trader download-data``: candles through ccxt into the files layout, incrementally.

For each (symbol, timeframe) it fetches only what the file lacks: candles before its
first row (when ``--since`` is earlier) and after its last row, up to ``--until``
(exclusive) and never a candle still forming on the exchange's clock. Inner gaps are
the exchange's own outages and are left as they are. Progress is written to the file
every ``checkpoint_pages`` pages and at the end, each time as a whole new file
(temp file, fsync, rename, fsync the folder), so an interruption leaves the last
complete file and a rerun resumes from it.

Usage::

    go-trader download-data --symbols BTC/USDT ETH/USDT --timeframes 1h 1d \
        --since 2024-01-01 [--until 2024-07-01] [--root data] \
        [--config config.json | --exchange binance --base-url URL]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from market import fsio
from market.ccxt_source import CcxtSource, spec_from_mapping
from market.files_source import CANDLE_COLUMNS, candle_file_stem, find_candle_file, read_candle_file
from scheduler.engine.errors import ConfigError, ExchangeError, PermanentExchangeError
from scheduler.engine.timeframes import last_closed_open_ms, timeframe_ms


@dataclass(frozen=True)
class PairResult:
    symbol: str
    timeframe: str
    path: Path
    added: int  # candles fetched and written this run
    total: int  # candles in the file now


class Progress:
    """A plain progress bar on a text stream (stderr): redrawn in place on a terminal,
    one line per checkpoint otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, label: str, done: int, total: int, *, final: bool = False) -> None:
        frac = 1.0 if total <= 0 else min(1.0, done / total)
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{label} [{bar}] {frac * 100:5.1f}% {done}/{max(total, done)} candles"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def format_rows(rows: np.ndarray) -> str:
    """CSV text with the header; floats in repr form so values round-trip exactly."""
    lines = [",".join(CANDLE_COLUMNS)]
    lines.extend(f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}" for r in rows.tolist())
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: a crash leaves the old file or the new one."""
    fsio.write_atomic(path, data, mode=0o644)


def write_candle_file(path: Path, rows: np.ndarray) -> None:
    text = format_rows(rows).encode()
    if path.name.endswith(".gz"):
        text = gzip.compress(text, mtime=0)
    write_atomic(path, text)


def merge_rows(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Union by timestamp, sorted; on a clash the row already on file wins."""
    if not len(new):
        return old
    both = np.concatenate([old, new]) if len(old) else new
    _, first = np.unique(both[:, 0], return_index=True)  # sorted; first occurrence = old row
    return both[first]


def missing_ranges(
    existing: np.ndarray, start_ms: int, end_ms: int, tf_ms: int
) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges a file with ``existing`` rows lacks within [start_ms, end_ms)."""
    if not len(existing):
        return [(start_ms, end_ms)] if start_ms < end_ms else []
    first, last = int(existing[0, 0]), int(existing[-1, 0])
    out = []
    if start_ms < first:
        out.append((start_ms, min(first, end_ms)))
    if last + tf_ms < end_ms:
        out.append((max(last + tf_ms, start_ms), end_ms))
    return [r for r in out if r[0] < r[1]]


def download(
    source: CcxtSource,
    *,
    root: Path,
    exchange: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    since_ms: int,
    until_ms: int | None = None,
    now_ms: int | None = None,
    checkpoint_pages: int = 20,
    progress: Progress | None = None,
    on_page: Callable[[str, str, int], None] | None = None,
) -> list[PairResult]:
    """Bring ``<root>/<exchange>/<BASE>_<QUOTE>-<tf>.csv`` up to date for every pair.

    ``now_ms`` defaults to the exchange's clock (one call), so a candle still forming
    there is never written. ``on_page(symbol, timeframe, pages_so_far)`` is called after
    each page (tests use it to interrupt). Also merges the pairs' market rules into
    ``<root>/<exchange>/markets.json``. Raises ExchangeError / DataError on failure; what
    was checkpointed stays on disk.
    """
    folder = Path(root) / exchange
    now = source.exchange_time_ms() if now_ms is None else now_ms
    results = []
    save_market_rules(source, folder, symbols)
    for symbol in symbols:
        for tf in timeframes:
            results.append(
                _download_pair(
                    source,
                    folder,
                    symbol,
                    tf,
                    since_ms,
                    until_ms,
                    now,
                    checkpoint_pages,
                    progress,
                    on_page,
                )
            )
    return results


def save_market_rules(source: CcxtSource, folder: Path, symbols: Sequence[str]) -> None:
    path = folder / "markets.json"
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            doc = {}
    for s, rule in source.fetch_market_rules(symbols).items():
        doc[s] = {k: v for k, v in rule.as_json().items() if k != "symbol"}
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


def _download_pair(
    source: CcxtSource,
    folder: Path,
    symbol: str,
    tf: str,
    since_ms: int,
    until_ms: int | None,
    now_ms: int,
    checkpoint_pages: int,
    progress: Progress | None,
    on_page: Callable[[str, str, int], None] | None,
) -> PairResult:
    tf_ms = timeframe_ms(tf)
    path = find_candle_file(folder, symbol, tf) or folder / (candle_file_stem(symbol, tf) + ".csv")
    if path.name.endswith(".parquet"):
        raise ConfigError([f"{path}: download-data writes CSV; convert or remove the Parquet file"])
    rows = read_candle_file(path) if path.exists() else np.empty((0, 6))
    end = last_closed_open_ms(tf, now_ms) + tf_ms  # exclusive: first candle not closed yet
    if until_ms is not None:
        end = min(end, until_ms)
    ranges = missing_ranges(rows, since_ms, end, tf_ms)
    expected = sum((b - a) // tf_ms for a, b in ranges)
    label = f"{symbol} {tf}"
    added = pages = 0
    pending: list[np.ndarray] = []
    for start, stop in ranges:
        for candles in source.fetch_ohlcv_range(
            symbol, tf, start_ms=start, end_ms=stop, now_ms=now_ms
        ):
            block = np.column_stack(
                [
                    candles.ts_ms.astype(np.float64),
                    candles.open,
                    candles.high,
                    candles.low,
                    candles.close,
                    candles.volume,
                ]
            )
            pending.append(block)
            added += len(block)
            pages += 1
            if progress:
                progress.update(label, added, expected)
            if pages % checkpoint_pages == 0:
                rows = merge_rows(rows, np.concatenate(pending))
                pending.clear()
                write_candle_file(path, rows)
            if on_page:
                on_page(symbol, tf, pages)
    if pending or not path.exists():
        rows = merge_rows(rows, np.concatenate(pending)) if pending else rows
        write_candle_file(path, rows)
    if progress:
        progress.update(label, added, expected, final=True)
    return PairResult(symbol, tf, path, added, len(rows))


def _date_ms(text: str) -> int:
    try:
        dt = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2024-01-31") from e
    return int(dt.timestamp() * 1000)


def _split(values: Iterable[str]) -> list[str]:
    return [v for item in values for v in item.replace(",", " ").split()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="go-trader download-data",
        description="Download candles through ccxt into <root>/<exchange>/<BASE>_<QUOTE>-<tf>.csv, "
        "fetching only what is missing.",
    )
    p.add_argument("--config", type=Path, help="config.json whose 'market' section (ccxt) is used")
    p.add_argument("--exchange", choices=("binance", "binanceus"), help="default: binance")
    p.add_argument("--base-url", help="exchange REST base URL (e.g. a local fake exchange)")
    p.add_argument("--symbols", nargs="+", required=True, help="e.g. BTC/USDT ETH/USDT")
    p.add_argument("--timeframes", nargs="+", required=True, help="e.g. 1h 1d")
    p.add_argument("--since", type=_date_ms, required=True, help="first day (UTC), YYYY-MM-DD")
    p.add_argument(
        "--until", type=_date_ms, help="end day (UTC, exclusive), YYYY-MM-DD; default: now"
    )
    p.add_argument("--root", type=Path, default=Path("data"), help="data folder (default: data)")
    p.add_argument("--checkpoint-pages", type=int, default=20, help="write the file every N pages")
    return p


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.config is not None:
        try:
            doc = json.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError([f"{args.config}: cannot read config: {e}"]) from e
        section = doc.get("market", doc) if isinstance(doc, dict) else None
        if not isinstance(section, dict) or section.get("source", "ccxt") != "ccxt":
            raise ConfigError(
                [f"{args.config}: download-data needs a 'market' section with source 'ccxt'"]
            )
        spec.update(section)
    if args.exchange:
        spec["exchange"] = args.exchange
    if args.base_url:
        spec["base_url"] = args.base_url
    spec["source"] = "ccxt"
    return spec


def main(argv: list[str] | None = None, *, stderr: TextIO | None = None) -> int:
    """CLI entry: 0 done, 1 exchange/data failure, 2 bad arguments or config, 130 interrupted."""
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        spec = spec_from_mapping(_spec(args))
        symbols, timeframes = _split(args.symbols), _split(args.timeframes)
        for tf in timeframes:
            timeframe_ms(tf)
        for symbol in symbols:  # before the exchange is asked anything
            candle_file_stem(symbol, timeframes[0])
    except ConfigError as e:
        err.write(f"download-data: bad configuration:\n{e}\n")
        return 2
    except (ValueError, PermanentExchangeError) as e:
        err.write(f"download-data: {e}\n")
        return 2
    if args.until is not None and args.until <= args.since:
        err.write("download-data: --until must be after --since\n")
        return 2
    try:
        with CcxtSource(spec) as source:
            results = download(
                source,
                root=args.root,
                exchange=spec.exchange,
                symbols=symbols,
                timeframes=timeframes,
                since_ms=args.since,
                until_ms=args.until,
                checkpoint_pages=max(1, args.checkpoint_pages),
                progress=Progress(err),
            )
    except KeyboardInterrupt:
        err.write("\ndownload-data: interrupted; files hold what was saved, rerun to resume\n")
        return 130
    except (ExchangeError, ConfigError) as e:
        err.write(f"download-data: failed: {e}\nfiles hold what was saved; rerun to resume\n")
        return 1
    for r in results:
        err.write(f"{r.symbol} {r.timeframe}: +{r.added} candles, {r.total} in {r.path}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
