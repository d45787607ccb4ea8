"""state.json on disk (README: State, logs, status): validated load, atomic save, one writer.

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

import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from market import fsio
from scheduler.engine.errors import StateError, StateSaveError
from scheduler.engine.models import SCHEMA_VERSION, AuditRecord, State, Trade, migrate

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


def _is_link(path: Path) -> bool:
    return os.path.islink(path)


def refuse_links(path: Path) -> None:
    """StateError when the state file or a file beside it is a symbolic link, or a file that
    go-trader writes in place (lock, trade log, audit log) has another hard link.

    The rule: go-trader never follows a link at its own paths. Following one would
    lock, write and "move away" whatever the link points at (``/etc/passwd`` when run
    as root); a dangling one would silently start a fresh account. Point
    ``state_file`` (or ``--state-file``) at the real file instead. (state.json and
    its .last-good copy are replaced by rename, never written in place, and share
    an inode for a moment at every save: their link count is no concern.)
    """
    for p in (path, *companion_paths(path)):
        if _is_link(p):
            raise StateError(f"{p} is a symbolic link (to {os.readlink(p)}); go-trader never follows links at its "
                             f"state paths; point state_file at the real file ({path.name} in a folder of its own)")
    for p in written_in_place(path):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise StateError(f"cannot inspect {p}: {e.strerror}; fix its folder's permissions") from e
        problem = single_file_problem(p, st)
        if problem:
            raise StateError(problem)


def written_in_place(path: Path) -> list[Path]:
    """The files beside the state that go-trader opens and writes (appends, truncates) in place."""
    log = trade_log_path(path)
    return [path.with_name(path.name + ".lock"), log, log.with_name(log.name + ".torn"), audit_log_path(path),
            notify_journal_path(path)]


def notify_journal_path(path: Path) -> Path:
    """The notification deliveries confirmed but not yet folded into the state (scheduler/notify)."""
    return path.with_name(path.stem + ".notify-acks.jsonl")


def single_file_problem(p: Path, st: os.stat_result) -> str | None:
    """Why go-trader must not write into ``p`` (as ``st`` describes it), or None: it must be a
    regular file with one name. A second hard link (placed there, or left by a backup made with
    links) would make each write change that other file too."""
    if not stat.S_ISREG(st.st_mode):
        return f"{p} is not a regular file; go-trader writes only its own files there; move it away"
    if st.st_nlink > 1:
        return (f"{p} has {st.st_nlink} hard links: it is also another file, and go-trader would write into "
                f"that one too; go-trader never writes a file with more than one name; give it a copy of its own "
                f"(cp -p {p} {p}.copy && mv {p}.copy {p}), or remove the other name")
    return None


def _open_own(p: Path, flags: int) -> int:
    """``os.open`` of a file go-trader writes in place: never through a symbolic link, created
    0600 if missing, never truncated on open, and refused (OSError) unless it has exactly one name."""
    fd = os.open(p, flags | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        problem = single_file_problem(p, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    if problem:
        os.close(fd)
        raise OSError(errno.EMLINK, problem)
    return fd


def _append(p: Path, text: str) -> None:
    """Append ``text`` to ``p`` and fsync it (fsio.append_durably, refusing a file with two names)."""
    with os.fdopen(_open_own(p, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def companion_paths(path: Path) -> list[Path]:
    """The files that live beside the state file and belong to it."""
    return [last_good_path(path), path.with_name(path.name + ".lock"), trade_log_path(path),
            audit_log_path(path), endpoint_path(path)]


def check_owner(path: Path) -> None:
    """StateError when this process is not the owner of the state file and its history.

    A state-changing command run as another user (``sudo go-trader trade`` while the
    service is stopped) would leave files the service user cannot read, and the
    service would then refuse to start. So the rule is: run as the files' owner.
    """
    uid = os.geteuid()
    if not os.path.lexists(path):  # a new state goes to its folder's owner (a shared sticky /tmp aside)
        try:
            st = os.stat(path.parent)
        except OSError:
            st = None
        if st is not None and st.st_uid != uid and not (st.st_mode & stat.S_ISVTX and st.st_mode & 0o002):
            raise StateError(f"the state folder {path.parent} belongs to {_user(st.st_uid)}, but this go-trader "
                             f"runs as {_user(uid)}; run it as the owner (for the service: sudo -u "
                             f"{_user(st.st_uid, bare=True)} go-trader ...), so that every file stays readable by "
                             "the service")
    for p in (path, trade_log_path(path), audit_log_path(path), last_good_path(path)):
        try:
            owner = os.lstat(p).st_uid
        except FileNotFoundError:
            continue
        except OSError as e:
            raise StateError(f"cannot inspect {p}: {e.strerror}; fix its folder's permissions") from e
        if owner != uid:
            raise StateError(f"{p} belongs to {_user(owner)}, but this go-trader runs as {_user(uid)}; "
                             f"run it as the owner (for the service: sudo -u {_user(owner, bare=True)} go-trader ...), "
                             "so that every file stays readable by the service")


def check_writable_folder(folder: Path, what: str) -> None:
    """StateError unless go-trader can create files in ``folder`` (or create ``folder``).

    Checked by trying: a file is created and removed again (``access()`` is wrong
    for root and for read-only mounts). Nothing is left behind.
    """
    probe_in = folder
    while not os.path.lexists(probe_in):  # the nearest existing ancestor must let us create the rest
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if os.path.islink(folder) and not folder.is_dir():
        raise StateError(f"the {what} folder {folder} is a link to nothing; point it at a real folder")
    if not probe_in.is_dir():
        raise StateError(f"the {what} folder {folder} cannot be used: {probe_in} is not a folder")
    probe = probe_in / f".go-trader-write-test.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        owner = _user(probe_in.stat().st_uid) if probe_in.exists() else "?"
        raise StateError(f"the {what} folder {folder} is not writable by {_user(os.geteuid())} "
                         f"({probe_in}: {e.strerror}; it belongs to {owner}); fix its owner or permissions, "
                         f"or choose another {what} folder") from e


def escape_text(text: str) -> str:
    """``text`` from a file for a message: printable, one line."""
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def _user(uid: int, bare: bool = False) -> str:
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid) if bare else f"uid {uid}"
    return name if bare else f"user {name} (uid {uid})"


def _parse_state(raw: bytes, where: str) -> State:
    """Validate a state document strictly; StateError saying what is wrong.

    Strict means: JSON with no NaN or Infinity, an explicit integer
    ``schema_version`` this go-trader knows, and every field of the exact type
    the schema gives (no "5" for 5, no true for 1, no negative cash).
    """
    def no_constants(name: str) -> float:
        raise ValueError(f"{name} is not a number go-trader saves")

    def once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) < len(pairs):  # go-trader never writes a key twice: which value would be meant?
            twice = next(k for i, (k, _) in enumerate(pairs) if any(k == j for j, _ in pairs[:i]))
            raise ValueError(f"the key {twice!r} appears twice in one object")
        return out

    try:
        text = raw.decode("utf-8-sig")  # (a BOM an editor added is fine)
    except UnicodeDecodeError as e:
        raise StateError(f"{where} is corrupt (not UTF-8 text, as go-trader writes it: byte {raw[e.start]:#04x} "
                         f"at offset {e.start})") from e
    try:
        doc = json.loads(text, parse_constant=no_constants, object_pairs_hook=once_each)
    except json.JSONDecodeError as e:
        raise StateError(f"{where} is corrupt (not valid JSON: {e})") from e
    except (ValueError, RecursionError) as e:
        raise StateError(f"{where} is corrupt ({e})") from e
    if not isinstance(doc, dict):
        raise StateError(f"{where} is corrupt (the top level is a {type(doc).__name__}, not an object)")
    version = doc.get("schema_version")
    if type(version) is not int:
        got = "missing" if "schema_version" not in doc else f"{version!r} ({type(version).__name__})"
        raise StateError(f"{where} has no valid schema_version (got {got}; expected an integer from 1 to "
                         f"{SCHEMA_VERSION})")
    if version > SCHEMA_VERSION:
        raise StateError(f"{where} has schema version {version}, newer than this go-trader understands "
                         f"({SCHEMA_VERSION}); upgrade go-trader")
    if version < 1:
        raise StateError(f"{where} has schema version {version}; versions start at 1")
    try:
        migrated = migrate(doc)
    except (AttributeError, TypeError, KeyError) as e:  # an older version's document of the wrong shape
        raise StateError(f"{where} does not match the schema of version {version} (it could not be brought "
                         f"up to version {SCHEMA_VERSION}: {type(e).__name__}: {e})") from e
    try:
        return State.model_validate_json(json.dumps(migrated), strict=True)
    except ValidationError as e:
        first = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:5])
        raise StateError(f"{where} does not match the schema ({first})") from e


def load_state(path: Path) -> State | None:
    """The validated state at ``path``, or None when there is none yet."""
    refuse_links(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        fix = "give --state-file the state file, not a folder" if e.errno == errno.EISDIR else "fix its permissions"
        raise StateError(f"cannot read state file {path}: {e.strerror}; {fix}") from e
    try:
        return _parse_state(raw, f"state file {path}")
    except StateError as e:
        raise StateError(f"{e}; it was left untouched; {restore_hint(path)}") from e


def restore_hint(path: Path) -> str:
    """How to recover from an unusable state file without losing a committed fill."""
    kept = [p for p in (path, last_good_path(path), trade_log_path(path), audit_log_path(path))
            if os.path.lexists(p)]
    aside = ("to start over instead, move the state and its whole history aside together, which deletes "
             f"nothing: mkdir {path.parent / 'old'} && mv {' '.join(map(str, kept))} {path.parent / 'old'}/")
    good = last_good_path(path)
    try:
        copy = _parse_state(good.read_bytes(), str(good))
    except (OSError, StateError):
        return aside  # no usable previous copy: do not name one
    last_logged = _last_logged_seq(path)
    if last_logged is not None and copy.next_trade_seq - 1 < last_logged:
        return (f"the previous copy {good} lacks fills {copy.next_trade_seq}..{last_logged} that are in the trade "
                f"log, so restoring it would lose them (go-trader would refuse it); restore {path} from a backup "
                f"that holds them, or, {aside}")
    return f"the previous copy {good} holds every logged fill: inspect both, then 'cp {good} {path}'; or, {aside}"


def _last_logged_seq(path: Path) -> int | None:
    try:
        trades = read_trade_log(path)
    except StateError:
        return None
    return trades[-1].seq if trades else 0


def write_atomic(path: Path, data: bytes, *, keep_last_good: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically and durably (mode 0600)."""
    fsio.write_atomic(path, data, mode=FILE_MODE, keep_previous_as=last_good_path(path) if keep_last_good else None)


def save_state(path: Path, state: State) -> None:
    """Save ``state`` atomically; StateSaveError when it could not be made durable."""
    try:
        data = state.model_dump_json(indent=1).encode()
    except ValueError as e:
        raise StateSaveError(f"could not serialise the state for {path}: {e}") from e
    try:  # never write what the next start would refuse (NaN saved as null, negative cash, ...)
        _parse_state(data, "the state about to be saved")
    except StateError as e:
        raise StateSaveError(f"refusing to save a state that would not load again: {e}") from e
    try:
        write_atomic(path, data, keep_last_good=True)
    except OSError as e:
        raise StateSaveError(f"could not save state to {path}: {e}") from e


def append_trades(path: Path, trades: Iterable[Trade]) -> None:
    """Append fills to the trade log, durably."""
    lines = "".join(t.model_dump_json() + "\n" for t in trades)
    if not lines:
        return
    try:
        _append(trade_log_path(path), lines)
    except OSError as e:
        raise StateSaveError(f"could not append to trade log {trade_log_path(path)}: {_reason(e)}") from e


def append_audit(path: Path, record: AuditRecord) -> None:
    """Append a person's intervention to the audit log (every one ever made), durably."""
    try:
        _append(audit_log_path(path), record.model_dump_json() + "\n")
    except OSError as e:
        raise StateSaveError(f"could not append to audit log {audit_log_path(path)}: {_reason(e)}") from e


def _reason(e: OSError) -> str:
    """An OSError for a message: ours (a file with two names) as it is, the system's with its errno."""
    return str(e.strerror) if e.errno == errno.EMLINK and e.filename is None else str(e)


def _read_log_lines(path: Path) -> tuple[list[Trade], bytes]:
    """The trade log's complete records and its torn tail (the partial last line a crash
    mid-append leaves; b"" when there is none)."""
    log = trade_log_path(path)
    try:
        raw = log.read_bytes()
    except FileNotFoundError:
        return [], b""
    except OSError as e:
        raise StateError(f"cannot read trade log {log}: {e.strerror}; fix its permissions") from e
    body, sep, tail = raw.rpartition(b"\n")
    lines = body.split(b"\n") if sep else []
    trades: list[Trade] = []
    for i, line in enumerate(lines):
        try:
            trades.append(Trade.model_validate_json(line, strict=True))
        except ValidationError as e:
            raise StateError(f"trade log {log} line {i + 1} is corrupt: {e.errors()[0]['msg']}; the log is "
                             "append-only history: restore it from a backup (go-trader changed nothing)") from e
    if tail:
        try:  # a complete record whose newline was cut off is a record
            trades.append(Trade.model_validate_json(tail, strict=True))
            tail = b""
        except ValidationError:
            pass
    return trades, tail


def read_trade_log(path: Path) -> list[Trade]:
    """Every trade in the log; a torn last line (crash mid-append) is ignored."""
    return _read_log_lines(path)[0]


def check_against_log(path: Path, state: State) -> tuple[list[Trade], bytes]:
    """StateError unless ``state`` continues the trade log's history exactly.

    The trade log is append-only history: its fills are committed. A state must
    hold every one of them (its ``next_trade_seq`` beyond the log's last seq) and
    agree with the fills it keeps; otherwise it was replaced, rolled back or
    edited, and using it would reuse sequence numbers of committed fills.
    Returns the fills the log is missing (held by the state) and the torn tail.
    """
    logged, tail = _read_log_lines(path)
    log = trade_log_path(path)
    for i, t in enumerate(logged):
        if t.seq != i + 1:
            raise StateError(f"trade log {log} line {i + 1} has seq {t.seq}, expected {i + 1}: the log is not a "
                             "complete history; restore it from a backup (go-trader changed nothing)")
    last_logged = len(logged)
    last_state = state.next_trade_seq - 1
    if last_logged > last_state:
        raise StateError(f"state file {path} is behind the trade log: the log holds fills "
                         f"{last_state + 1}..{last_logged} that the state does not (the state was replaced, rolled "
                         f"back or edited); nothing was changed; {restore_hint(path)}")
    kept = {t.seq: t for sl in state.sleeves.values() for t in sl.trades}
    for t in logged:
        if t.seq in kept and kept[t.seq] != t:
            raise StateError(f"state file {path} and the trade log disagree about fill {t.seq}: they describe "
                             f"different histories; nothing was changed; {restore_hint(path)}")
    missing = [kept.get(seq) for seq in range(last_logged + 1, last_state + 1)]
    if any(t is None for t in missing):
        gone = [seq for seq, t in zip(range(last_logged + 1, last_state + 1), missing, strict=True) if t is None]
        raise StateError(f"fills {gone[0]}..{gone[-1]} are in neither the trade log {log} nor the recent trades of "
                         f"{path}: the history has a hole; restore the trade log from a backup (nothing was changed)")
    return [t for t in missing if t is not None], tail


def repair_trade_log(path: Path, state: State,
                     checked: tuple[list[Trade], bytes] | None = None) -> tuple[int, int]:
    """Make the trade log hold exactly the state's fills: (appended, torn bytes set aside).

    A fill is committed once the state that holds it was saved; it is appended
    to the log afterwards, so a crash in between leaves it only in the state:
    it is appended now. A crash mid-append leaves a partial last line: its
    bytes are moved to ``<log>.torn`` (kept, not deleted) and the line ends
    where the last complete record ends. Nothing else is ever removed; a state
    behind the log is refused (see check_against_log). ``checked`` is that function's answer
    when the caller already has it (nothing changed since).
    """
    missing, tail = checked if checked is not None else check_against_log(path, state)
    log = trade_log_path(path)
    if tail:
        try:
            _append(log.with_name(log.name + ".torn"), tail.decode("utf-8", "replace") + "\n")
            fd = _open_own(log, os.O_WRONLY)  # truncated through the descriptor checked, not the name
            try:
                os.ftruncate(fd, os.fstat(fd).st_size - len(tail))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StateSaveError(f"could not repair trade log {log}: {_reason(e)}") from e
    elif log.exists() and log.stat().st_size and not log.read_bytes().endswith(b"\n"):
        try:  # a complete record whose newline was cut off
            _append(log, "\n")
        except OSError as e:
            raise StateSaveError(f"could not repair trade log {log}: {_reason(e)}") from e
    append_trades(path, missing)
    return len(missing), len(tail)


class LockHeld(StateError):
    """The state's lock is held: another go-trader (a running daemon) uses this state file."""


class StateLock:
    """An exclusive lock on ``<state>.lock``: one daemon per state file.

    Only a lock that is held raises LockHeld; any other failure (permissions, a read-only
    file system, a link at the lock's path) is a StateError that says what it is.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # never through a link, never truncated on open, never a file with another name
            fd = _open_own(self.path, os.O_RDWR)
        except OSError as e:
            raise StateError(self._cannot(e, "create")) from e
        f = os.fdopen(fd, "r+", encoding="utf-8", errors="replace")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                f.close()
                raise StateError(self._cannot(e, "lock")) from e
            f.seek(0)
            holder = f.read(32).strip() or "unknown"
            f.close()
            raise LockHeld(f"another go-trader (pid {escape_text(holder)}) is using state file "
                           f"{self.path.with_suffix('')}; stop it first, or give this one its own --state-file"
                           ) from None
        f.seek(0)  # ours now, and checked to have no other name: the pid replaces what was there
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def _cannot(self, e: OSError, what: str) -> str:
        """What went wrong with the lock file, and the fix, by the error's kind."""
        if e.errno == errno.EMLINK and e.filename is None:  # ours: the file has another name
            return str(e.strerror)
        user = _user(os.geteuid())
        try:
            owner = f" (it belongs to {_user(os.lstat(self.path).st_uid)})"
        except OSError:
            owner = ""
        fixes = {
            errno.ELOOP: f"it is a symbolic link; go-trader never follows links at its state paths; remove "
                         f"{self.path} (it holds only a pid) or point state_file at a folder of its own",
            errno.EACCES: f"permission denied for {user}{owner}; the state folder {self.path.parent} and the lock file "
                          "must be writable by the user go-trader runs as (the service's user: run it as that "
                          "user, e.g. sudo -u USER go-trader ...)",
            errno.EROFS: f"the file system holding {self.path.parent} is read-only; remount it read-write, or "
                         "choose a state_file on a writable file system",
            errno.ENOLCK: "the file system does not support locks (a network mount?); put the state on a local "
                          "file system",
        }
        fixes[errno.EPERM] = fixes[errno.EACCES]
        fix = fixes.get(e.errno or 0, f"{e.strerror}; the state folder must be writable by the user go-trader "
                                      "runs as")
        return f"cannot {what} lock file {self.path}: {fix}"

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
