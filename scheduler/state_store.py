"""state.json on disk (REFERENCE section 8): validated load, atomic save, one writer.

Save: serialise, write a temp file (mode 0600) in the same folder, fsync it,
keep the previous file as ``<name>.last-good`` (a hard link, so a good
state.json exists at every instant), rename the temp file over state.json,
fsync the folder. A crash or signal at any point leaves either the old or the
new file, never a torn one.

Load: a missing file is a fresh start; an unreadable, corrupt or newer-version
file stops the start with a message and is left untouched.

The trade log (``<stem>.trades.jsonl``) holds every fill ever made, one JSON
line each; state.json keeps only recent trades. It is appended after the
state that contains the fill was saved, and repaired at start-up, so each
fill is recorded exactly once.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from scheduler import fsio
from scheduler.engine.models import SCHEMA_VERSION, AuditRecord, State, Trade, migrate
from scheduler.errors import StateError, StateSaveError

FILE_MODE = 0o600


def last_good_path(path: Path) -> Path:
    return path.with_name(path.name + ".last-good")


def trade_log_path(path: Path) -> Path:
    return path.with_name(path.stem + ".trades.jsonl")


def endpoint_path(path: Path) -> Path:
    """Where a running daemon writes its status server's URL (removed when it stops)."""
    return path.with_name(path.name + ".endpoint")


def audit_log_path(path: Path) -> Path:
    return path.with_name(path.stem + ".audit.jsonl")


def load_state(path: Path) -> State | None:
    """The validated state at ``path``, or None when there is none yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"cannot read state file {path}: {e.strerror}; fix its permissions") from e
    restore = (f"the previous good copy is {last_good_path(path)}; inspect both, then restore it with "
               f"'cp {last_good_path(path)} {path}' or move {path} away to start fresh")
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StateError(f"state file {path} is corrupt (not valid JSON: {e}); it was left untouched; {restore}") from e
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StateError(f"state file {path} has schema version {version}, newer than this go-trader "
                         f"understands ({SCHEMA_VERSION}); upgrade go-trader; the file was left untouched")
    try:
        return State.model_validate(migrate(doc) if isinstance(doc, dict) else doc)
    except ValidationError as e:
        first = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:5])
        raise StateError(f"state file {path} does not match the schema ({first}); it was left untouched; "
                         f"{restore}") from e


def write_atomic(path: Path, data: bytes, *, keep_last_good: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically and durably (mode 0600)."""
    fsio.write_atomic(path, data, mode=FILE_MODE, keep_previous_as=last_good_path(path) if keep_last_good else None)


def save_state(path: Path, state: State) -> None:
    """Save ``state`` atomically; StateSaveError when it could not be made durable."""
    try:
        data = state.model_dump_json(indent=1).encode()
        write_atomic(path, data, keep_last_good=True)
    except (OSError, ValueError) as e:
        raise StateSaveError(f"could not save state to {path}: {e}") from e


def append_trades(path: Path, trades: Iterable[Trade]) -> None:
    """Append fills to the trade log, durably."""
    lines = "".join(t.model_dump_json() + "\n" for t in trades)
    if not lines:
        return
    try:
        fsio.append_durably(trade_log_path(path), lines, mode=FILE_MODE)
    except OSError as e:
        raise StateSaveError(f"could not append to trade log {trade_log_path(path)}: {e}") from e


def append_audit(path: Path, record: AuditRecord) -> None:
    """Append a person's intervention to the audit log (every one ever made), durably."""
    try:
        fsio.append_durably(audit_log_path(path), record.model_dump_json() + "\n", mode=FILE_MODE)
    except OSError as e:
        raise StateSaveError(f"could not append to audit log {audit_log_path(path)}: {e}") from e


def read_trade_log(path: Path) -> list[Trade]:
    """Every trade in the log; a torn last line (crash mid-append) is ignored."""
    try:
        lines = trade_log_path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    trades = []
    for i, line in enumerate(lines):
        try:
            trades.append(Trade.model_validate_json(line))
        except ValidationError as e:
            if i == len(lines) - 1:
                break
            raise StateError(f"trade log {trade_log_path(path)} line {i + 1} is corrupt: {e.errors()[0]['msg']}") from e
    return trades


def repair_trade_log(path: Path, state: State) -> tuple[int, int]:
    """Make the trade log agree with the saved state: (appended, dropped).

    A fill is real once the state that holds it was saved. Fills in the
    state but missing from the log (crash between save and append) are
    appended; lines beyond the state's last fill (a torn line) are dropped.
    """
    logged = read_trade_log(path)
    last_seq = state.next_trade_seq - 1
    keep = [t for t in logged if t.seq <= last_seq]
    logged_seqs = {t.seq for t in keep}
    in_state = sorted((t for s in state.sleeves.values() for t in s.trades if t.seq not in logged_seqs),
                      key=lambda t: t.seq)
    raw_lines = len(trade_log_path(path).read_text().splitlines()) if trade_log_path(path).exists() else 0
    dropped = raw_lines - len(keep)
    if dropped:
        write_atomic(trade_log_path(path), "".join(t.model_dump_json() + "\n" for t in keep).encode())
    append_trades(path, in_state)
    return len(in_state), dropped


class StateLock:
    """An exclusive lock on ``<state>.lock``: one daemon per state file."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the daemon's lifetime
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise StateError(f"another go-trader (pid {holder}) is using state file {self.path.with_suffix('')}; "
                             "stop it first, or give this one its own --state-file") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
