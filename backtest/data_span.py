"""Where the recorded data a run needs ends (the files sources; any other source makes data at
any time): the CLI's default ``--end`` and the limit it holds ``--end`` to.

- A spot strategy needs the candles of each of its symbols on its timeframe: its data ends at
  the close of the last candle of the file that ends first.
- An options strategy needs the chains of its underlying and the underlying's spot candles:
  its data ends where the first of them ends. The chains end ``options.max_quote_age_s``
  after the last snapshot (a quote older than that does not fill); the spot candles at the
  last close of any timeframe on file (the ticker reads the finest one that is fresh).
- A run of several strategies ends where the first of them ends.
"""

from __future__ import annotations

from typing import Any

from scheduler.engine.errors import DataError
from scheduler.engine.timeframes import TIMEFRAMES, timeframe_ms


def spot_span_ms(source: Any, symbol: str, timeframe: str | None = None) -> tuple[int, int] | None:
    """(open of the first candle, close of the last) of ``symbol``'s file on ``timeframe``, or
    the widest over every timeframe on file when it is None; None when the source is not the
    files source or has no such file."""
    from market.files_source import FilesSource, find_candle_file, read_candle_file

    if not isinstance(source, FilesSource):
        return None
    spans = []
    for tf in (timeframe,) if timeframe is not None else TIMEFRAMES:
        path = find_candle_file(source.folder, symbol, tf)
        rows = read_candle_file(path) if path is not None else ()
        if len(rows):
            spans.append((int(rows[0, 0]), int(rows[-1, 0]) + timeframe_ms(tf)))
    if not spans:
        return None
    return min(a for a, _ in spans), max(b for _, b in spans)


def chain_span_ms(options: Any, underlying: str) -> tuple[int, int] | None:
    """The times of the first and the last chain snapshot of ``underlying`` in the options
    source, where it holds recorded chains (the files source); None for a source that makes a
    chain at any time (synthetic), or one with none of ``underlying``."""
    from market.files_options import FilesOptions

    if not isinstance(options, FilesOptions):
        return None
    try:
        # FilesOptions has no public span; its snapshot index is what fetch_option_chain reads
        times = options._snapshots(underlying).times_ms
    except DataError:
        return None
    return (int(times[0]), int(times[-1])) if len(times) else None


def _spans(source: Any, options: Any, config: Any) -> list[tuple[int, int, str, str]]:
    """(first ms, last usable ms, what starts there, what ends there) of every recorded series
    the config's strategies need: each spot strategy's candles; for options the chains (usable
    for ``options.max_quote_age_s`` after the last) and the underlying's spot candles."""
    from scheduler import options_cycle

    out: list[tuple[int, int, str, str]] = []
    for s in config.strategies:
        if s.type == "spot":
            tf = s.timeframe or "1h"
            for symbol in s.symbols:
                span = spot_span_ms(source, symbol, tf)
                if span is not None:
                    what = f"the {symbol} {tf} candles of {s.id}"
                    out.append((span[0], span[1], what, what))
            continue
        underlying = options_cycle.underlying_of(s)
        chains = chain_span_ms(options, underlying)
        if chains is not None:
            out.append((chains[0], chains[1] + int(config.options.max_quote_age_s * 1000),
                        f"the {underlying} option chains of {s.id}",
                        f"the {underlying} option chains of {s.id} (the last taken at {_iso(chains[1])})"))
        spot = options_cycle.spot_symbol(underlying)
        span = spot_span_ms(source, spot, None)
        if span is not None:
            what = f"the {spot} spot candles of {s.id}"
            out.append((span[0], span[1], what, what))
    return out


def data_end_ms(source: Any, options: Any, config: Any) -> tuple[int, str] | None:
    """Where the data the config's strategies need ends, and what ends there (for a message);
    None when no recorded data bounds the run (a synthetic source)."""
    ends = [(last, what) for _, last, _, what in _spans(source, options, config)]
    return min(ends) if ends else None


def data_start_ms(source: Any, options: Any, config: Any) -> tuple[int, str] | None:
    """Where the data of every one of the config's strategies has begun (the latest first
    candle or first chain among them), and what starts there; None when no recorded data
    bounds the run."""
    starts = [(first, what) for first, _, what, _ in _spans(source, options, config)]
    return max(starts) if starts else None


def _iso(ms: int) -> str:
    from scheduler.engine.models import utc_from_ms, utc_iso

    return utc_iso(utc_from_ms(ms))
