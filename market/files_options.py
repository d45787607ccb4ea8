"""Option chains and DVOL replayed from files, up to a given clock time (OptionsSource).

Layout, under the ``files`` market's ``options_root`` (default: its ``root``; a relative
``options_root`` is taken from ``root``), as in ../shared/data::

    <root>/deribit/option_chains_daily_*.csv.gz   (or .csv; every matching file is read)
    <root>/deribit/<UNDERLYING>_DVOL-1d.csv       (e.g. BTC_DVOL-1d.csv; optional)

Chain files hold full snapshots of Deribit's book summary, one row per (snapshot,
instrument), with the columns ``timestamp_ms`` (the snapshot time, UTC ms),
``instrument_name``, ``currency``, ``bid_price``, ``ask_price``, ``mark_price`` (coin),
``implied_volatility`` (Deribit's mark IV / 100), ``underlying`` (the forward),
``index_price``, ``delta``, ``vega`` and ``open_interest``; other columns are ignored.
DVOL files have ``timestamp`` (the day's open, UTC ms) and ``close``. A cell of a number
column that holds text, a row without its time, or a DVOL row whose close is not a finite
number > 0 is a DataError naming the file and the line; implausible quotes (a crossed
book, a coin price beyond an inverse option's bounds: options.chain.screen_quotes) are
dropped, and the chain's ``dropped`` says which and why.

No look-ahead: for a decision time ``now_ms`` the chain is the newest snapshot taken at
or before ``now_ms``, without the options that had expired by ``now_ms``; a later
snapshot is never used. A snapshot older than ``max_chain_age_s`` is stale (DataError),
as is a time before the first snapshot. DVOL gives the closes of days that had closed by
the end of the range. An underlying without a DVOL file has no DVOL history (``[]``).
The files carry no instrument list, so the contract values are Deribit's published ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.specs import FilesSpec, validate
from options.chain import (
    OptionChain,
    OptionQuote,
    default_contract,
    finite_or_none,
    parse_instrument_name,
    positive_or_none,
    screen_quotes,
)
from scheduler.engine.errors import DataError
from scheduler.engine.timeframes import DAY_MS

CHAIN_GLOBS = ("option_chains_daily_*.csv.gz", "option_chains_daily_*.csv")
CHAIN_COLUMNS = (
    "timestamp_ms", "instrument_name", "currency", "bid_price", "ask_price", "mark_price",
    "implied_volatility", "underlying", "index_price", "delta", "vega", "open_interest",
)
CHAIN_NUMBERS = tuple(c for c in CHAIN_COLUMNS if c not in ("instrument_name", "currency"))
DVOL_COLUMNS = ("timestamp", "close")
DVOL_FIX = ("fix or replace the file (Deribit's public/get_volatility_index_data, 1D), or remove it to rank on "
            "realized vol instead; a broken DVOL is never replaced by another measure silently")


@dataclass(frozen=True)
class _Snapshots:
    """One underlying's rows sorted by snapshot time, and where each snapshot starts."""

    rows: pd.DataFrame
    times_ms: np.ndarray  # distinct snapshot times, ascending
    starts: np.ndarray  # row offset of each snapshot; one extra entry = len(rows)


def dvol_file(folder: Path, underlying: str) -> Path:
    return folder / f"{underlying}_DVOL-1d.csv"


class FilesOptions:
    """OptionsSource over Deribit chain snapshots and DVOL files (see the module docstring)."""

    def __init__(self, root: Path | str, exchange: str = "deribit", *,
                 max_chain_age_s: float = 36 * 3600.0) -> None:
        self.folder = Path(root) / exchange
        self.max_chain_age_s = float(max_chain_age_s)
        self.name = f"files:{exchange}"
        self._lock = threading.Lock()
        self._chains: tuple[tuple[Any, ...], dict[str, _Snapshots]] | None = None
        self._dvol: dict[Path, tuple[tuple[int, int], np.ndarray]] = {}
        self._last_now_ms: int | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FilesOptions:
        s = validate(FilesSpec, spec)
        root = Path(s.root) / (s.options_root or "")  # an absolute options_root replaces root
        return cls(root, s.options_exchange, max_chain_age_s=s.max_chain_age_s)

    # --- OptionsSource ---

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> OptionChain:
        """The newest snapshot of ``underlying`` taken at or before ``now_ms``, without the
        options expired by then; DataError when there is none or it is stale."""
        snaps = self._snapshots(underlying)
        i = int(np.searchsorted(snaps.times_ms, now_ms, side="right")) - 1
        if i < 0:
            raise DataError(
                f"{self.name}: no {underlying} option chain snapshot at or before {now_ms} ms; the "
                f"files in {self.folder} start at {int(snaps.times_ms[0])} ms"
            )
        asof_ms = int(snaps.times_ms[i])
        age_s = (now_ms - asof_ms) / 1000
        if age_s > self.max_chain_age_s:
            raise DataError(
                f"{self.name}: stale: the newest {underlying} option chain snapshot at or before "
                f"{now_ms} ms was taken {age_s:.0f} s earlier (allowed {self.max_chain_age_s:g} s, "
                "market.max_chain_age_s); add the missing days' chain files or raise the limit"
            )
        rows = snaps.rows.iloc[int(snaps.starts[i]) : int(snaps.starts[i + 1])]
        quotes = [q for q in (_quote(r, underlying) for r in rows.itertuples(index=False))
                  if q is not None and q.expiry_ms > now_ms]
        if not quotes:
            raise DataError(f"{self.name}: the {underlying} snapshot at {asof_ms} ms has no option "
                            f"unexpired at {now_ms} ms")
        quotes.sort(key=lambda q: (q.expiry_ms, q.strike, q.option_type))
        self._last_now_ms = now_ms
        index = _median_index(rows)
        kept, dropped = screen_quotes(quotes, index)  # implausible quotes never reach a strategy
        if not kept:
            raise DataError(f"{self.name}: every {underlying} quote of the snapshot at {asof_ms} ms is implausible "
                            f"(first: {dropped[0]}); check the chain file")
        return OptionChain(underlying, now_ms, index, kept, asof_ms=asof_ms,
                           contract=default_contract(underlying), dropped=dropped)

    def fetch_index_price(self, underlying: str, *, now_ms: int | None = None) -> float | None:
        """The median index of the snapshot used at ``now_ms`` (without it, at the time of
        the last chain fetched; the protocol carries no time); None when there is none."""
        when = now_ms if now_ms is not None else self._last_now_ms
        if when is None:
            return None
        try:
            return self.fetch_option_chain(underlying, now_ms=when).index_price
        except DataError:
            return None

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Daily DVOL ``(day open ts_ms, close)`` of days within ``[start_ms, end_ms]`` that had
        closed by ``end_ms``; ``[]`` when ``underlying`` has no DVOL file."""
        arr = self._dvol_rows(underlying)
        keep = (arr[:, 0] >= start_ms) & (arr[:, 0] + DAY_MS <= end_ms) & (arr[:, 1] > 0)
        return [(int(t), float(c)) for t, c in arr[keep]]

    def close(self) -> None:
        with self._lock:
            self._chains = None
            self._dvol.clear()

    # --- files ---

    def _chain_paths(self) -> list[Path]:
        paths = sorted({p for pattern in CHAIN_GLOBS for p in self.folder.glob(pattern)})
        if not paths:
            raise DataError(
                f"{self.name}: no option chain files in {self.folder} (looked for "
                f"{' or '.join(CHAIN_GLOBS)}); put Deribit daily chain snapshots there"
            )
        return paths

    def _snapshots(self, underlying: str) -> _Snapshots:
        paths = self._chain_paths()
        key = tuple((str(p), os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)
        with self._lock:
            if self._chains is not None and self._chains[0] == key:
                by_under = self._chains[1]
            else:
                by_under = None
        if by_under is None:
            by_under = _index_snapshots(pd.concat([_read_chain_file(p) for p in paths], ignore_index=True))
            with self._lock:
                self._chains = (key, by_under)
        if underlying not in by_under:
            raise DataError(f"{self.name}: no {underlying} options in the chain files of {self.folder} "
                            f"(they hold {', '.join(sorted(by_under)) or 'none'})")
        return by_under[underlying]

    def _dvol_rows(self, underlying: str) -> np.ndarray:
        path = dvol_file(self.folder, underlying)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return np.empty((0, 2))
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._dvol.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise DataError(f"{path}: unreadable DVOL file: {e}; {DVOL_FIX}") from e
        missing = [c for c in DVOL_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (it has {list(df.columns)}); expected at least "
                            f"{','.join(DVOL_COLUMNS)}; {DVOL_FIX}")
        if df.empty:
            raise DataError(f"{path}: the DVOL file has a header and no rows; {DVOL_FIX}")
        arr = np.column_stack([_dvol_column(path, df, c) for c in DVOL_COLUMNS])
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        with self._lock:
            self._dvol[path] = (stamp, arr)
        return arr


def _dvol_column(path: Path, df: pd.DataFrame, column: str) -> np.ndarray:
    """One DVOL column as floats; a cell that is not a finite number > 0 is a DataError naming
    the file, the line and the value (a corrupt DVOL must fail, never be skipped into a rank)."""
    values = pd.to_numeric(df[column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}, line {row + 2}: {column} {df[column].iloc[row]!r} is not a finite number > 0 "
                        f"({int(bad.sum())} such row(s)); {DVOL_FIX}")
    return values


def _read_chain_file(path: Path) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=0).columns
        missing = [c for c in CHAIN_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected at least {','.join(CHAIN_COLUMNS)}")
        df = pd.read_csv(path, usecols=list(CHAIN_COLUMNS))
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: unreadable option chain file: {e}") from e
    for column in CHAIN_NUMBERS:
        df[column] = _numbers(path, df, column, required=column == "timestamp_ms")
    return df


def _numbers(path: Path, df: pd.DataFrame, column: str, *, required: bool) -> pd.Series:
    """``column`` as floats. An empty cell is "not given" (NaN) unless ``required``; text that is
    not a number is a DataError naming the file, the line and the value: a corrupt column is
    refused, never read as missing values (a text mark would be priced on the model)."""
    values = df[column]
    if not pd.api.types.is_numeric_dtype(values):
        values = pd.to_numeric(values.astype(str).str.strip().replace({"": None, "nan": None, "NaN": None}),
                               errors="coerce")
        bad = values.isna() & df[column].notna() & (df[column].astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}, line {row + 2}: {column} {df[column].iloc[row]!r} is not a number "
                            f"({int(bad.sum())} such row(s)); fix or remove the row(s), or re-download the file")
    if required and values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{path}, line {row + 2}: {column} is empty; every row needs its {column}")
    return values.astype(np.float64)


def _index_snapshots(df: pd.DataFrame) -> dict[str, _Snapshots]:
    """Per underlying: rows sorted by snapshot time, duplicates of (snapshot, instrument)
    from overlapping files dropped (the last file read wins)."""
    df = df.drop_duplicates(["timestamp_ms", "instrument_name"], keep="last")
    out = {}
    for under, sub in df.groupby("currency", sort=True):
        sub = sub.sort_values("timestamp_ms", kind="stable").reset_index(drop=True)
        ts = sub["timestamp_ms"].to_numpy(dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        out[str(under)] = _Snapshots(sub, ts[starts], np.r_[starts, len(sub)])
    return out


def _quote(r: Any, underlying: str) -> OptionQuote | None:
    try:
        spec = parse_instrument_name(str(r.instrument_name))
    except ValueError:
        return None  # not an option row
    if spec.underlying != underlying:
        return None
    iv = positive_or_none(r.implied_volatility)
    return OptionQuote(
        instrument=str(r.instrument_name), underlying=spec.underlying, expiry_ms=spec.expiry_ms,
        strike=spec.strike, option_type=spec.option_type,
        bid=positive_or_none(r.bid_price), ask=positive_or_none(r.ask_price),
        mark=positive_or_none(r.mark_price),
        mark_iv_pct=None if iv is None else round(iv * 100.0, 6),  # the file stores mark IV / 100
        underlying_price=positive_or_none(r.underlying), index_price=positive_or_none(r.index_price),
        delta=finite_or_none(r.delta), vega=finite_or_none(r.vega),
        open_interest=finite_or_none(r.open_interest),
    )


def _median_index(rows: pd.DataFrame) -> float | None:
    """The snapshot's index: the median of its rows' (they were read over a few seconds)."""
    idx = rows["index_price"].to_numpy(dtype=np.float64)
    idx = idx[np.isfinite(idx) & (idx > 0)]
    return float(np.median(idx)) if len(idx) else None
