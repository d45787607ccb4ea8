"""Logging (README: State, logs, status): human lines per strategy and for the
scheduler, a JSON event log, all in UTC, all size-rotated.

Human line: ``[2026-02-11 07:28:03] [momentum-btc] [INFO] Signal: HOLD | BTC/USDT @ $66916.86``
Event line: one JSON object with ``cycle`` and ``strategy``.

Log files are mode 0600, like the state. Control characters in a message are
escaped, so text that came from outside (a ``--by`` name, a checker's stderr)
can never forge a line. A line repeated within a minute is written once, then
"(repeated N times)". A log that cannot be written (full disk, read-only
folder) is reported on stderr at most once a minute and never stops the daemon.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from scheduler.engine.errors import StateError


class LogDirError(StateError):
    """The log folder or a log file cannot be opened for writing: refuse to start."""


FILE_MODE = 0o600
REPEAT_WINDOW_S = 60.0
ERROR_REPORT_EVERY_S = 60.0

_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def escape_control(text: str) -> str:
    """``text`` on one line: control characters (newlines included) as visible escapes."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m[0], f"\\x{ord(m[0]):02x}")
                        if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self, tag: str) -> None:
        super().__init__(f"[%(asctime)s] [{escape_control(tag)}] [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_control(record.message)
        return super().formatMessage(record)


class _QuietErrors:
    """handleError that reports a failing log on stderr at most once a minute, without a traceback."""

    _last_report = -ERROR_REPORT_EVERY_S
    _suppressed = 0

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        now = time.monotonic()
        if now - self._last_report < ERROR_REPORT_EVERY_S:
            self._suppressed += 1
            return
        err = sys.exc_info()[1]
        where = getattr(self, "baseFilename", "stdout")
        more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        try:
            sys.stderr.write(f"go-trader: cannot write log {where}: {err}{more}; "
                             f"further log errors are reported at most every {ERROR_REPORT_EVERY_S:.0f} s\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        self._last_report, self._suppressed = now, 0


class LinkedLogError(OSError):
    """A log file that is not a regular file of one name (a hard link to another file, a FIFO)."""


def linked_file_problem(path: str, st: os.stat_result) -> str | None:
    """Why go-trader must not append to the log ``path`` (as ``st`` describes it), or None."""
    if not stat.S_ISREG(st.st_mode):
        return f"log file {path} is not a regular file; move it away"
    if st.st_nlink > 1:
        return (f"log file {path} has {st.st_nlink} hard links: it is also another file, and go-trader would "
                "write into that one too; remove the other name, or move this file away (a new one is created)")
    return None


class _FileHandler(_QuietErrors, RotatingFileHandler):
    """Size-rotated, mode 0600, never through a symbolic link, never into a file with another name."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        try:
            problem = linked_file_problem(self.baseFilename, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        if problem:  # checked on the descriptor: the name cannot be swapped in between
            os.close(fd)
            raise LinkedLogError(errno.EMLINK, problem)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class _StreamHandler(_QuietErrors, logging.StreamHandler):  # type: ignore[type-arg]
    pass


class _Repeats(logging.Filter):
    """Collapses a line repeated within REPEAT_WINDOW_S into one "(repeated N times)" line."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self._last: tuple[int, str] | None = None
        self._since = 0.0
        self._count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = (record.levelno, record.getMessage()), time.monotonic()
        if key == self._last and now - self._since < REPEAT_WINDOW_S:
            self._count += 1
            return False
        self.flush()
        self._last, self._since = key, now
        return True

    def flush(self) -> None:
        if self._count and self._last is not None:
            level, message = self._last
            summary = self.logger.makeRecord(self.logger.name, level, "(repeats)", 0,
                                             f"(repeated {self._count} times) {message}", None, None)
            self._count = 0
            for h in self.logger.handlers:
                h.handle(summary)


def _take_over(logger: logging.Logger) -> None:
    """One Logs owns a named logger at a time: a handler left by an earlier one that was never
    closed (a daemon dropped without close()) is closed here, not left to leak its file."""
    for old in list(logger.handlers):
        logger.removeHandler(old)
        if not isinstance(old, _StreamHandler):  # stdout is not ours to close
            try:
                old.close()
            except (OSError, ValueError):
                pass


class Logs:
    """Owns every log file of one daemon; hands out per-strategy loggers."""

    def __init__(self, log_dir: Path, max_bytes: int, backups: int, stdout: bool = True) -> None:
        self.dir = log_dir
        self.max_bytes, self.backups = max_bytes, backups
        self._stdout = stdout
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LogDirError(f"cannot create log folder {log_dir}: {e.strerror}") from e
        self._handlers: list[logging.Handler] = []
        self.scheduler = self._logger("go_trader.scheduler", "scheduler", "scheduler.log", stdout)
        self._events = logging.getLogger("go_trader.events")
        self._events.propagate = False
        self._events.setLevel(logging.INFO)
        _take_over(self._events)
        h = self._file("events.jsonl")
        h.setFormatter(logging.Formatter("%(message)s"))
        self._events.addHandler(h)
        self._strategies: dict[str, logging.Logger] = {}

    def _file(self, name: str) -> RotatingFileHandler:
        try:
            h = _FileHandler(self.dir / name, maxBytes=self.max_bytes, backupCount=self.backups, encoding="utf-8")
        except LinkedLogError as e:
            raise LogDirError(str(e.strerror)) from e
        except OSError as e:
            raise LogDirError(f"cannot open log file {self.dir / name}: {e.strerror}; the log folder must be "
                              "writable by the user go-trader runs as (or set log_dir / --log-dir)") from e
        self._handlers.append(h)
        return h

    def _logger(self, name: str, tag: str, filename: str, stdout: bool) -> logging.Logger:
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        _take_over(logger)
        for old_filter in list(logger.filters):
            logger.removeFilter(old_filter)
        logger.addFilter(_Repeats(logger))
        handlers: list[logging.Handler] = [self._file(filename)]
        if stdout:
            handlers.append(_StreamHandler(sys.stdout))
            self._handlers.append(handlers[-1])
        for h in handlers:
            h.setFormatter(_Formatter(tag))
            logger.addHandler(h)
        return logger

    def strategy(self, strategy_id: str) -> logging.Logger:
        """The logger whose lines go to logs/<id>.log and to stdout."""
        if strategy_id not in self._strategies:
            self._strategies[strategy_id] = self._logger(
                f"go_trader.strategy.{strategy_id}", strategy_id, f"{strategy_id}.log", self._stdout)
        return self._strategies[strategy_id]

    def event(self, kind: str, cycle: int, strategy: str | None, **data: Any) -> None:
        self._events.info(json.dumps({"kind": kind, "cycle": cycle, "strategy": strategy,
                                      "logged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data},
                                     default=str, separators=(",", ":")))

    def close(self) -> None:
        for logger in [self.scheduler, self._events, *self._strategies.values()]:
            for f in logger.filters:
                if isinstance(f, _Repeats):
                    f.flush()
            for h in list(logger.handlers):
                logger.removeHandler(h)
        for h in self._handlers:
            try:
                h.close()
            except (OSError, ValueError):  # a full disk fails the last flush too; nothing more to do
                pass
        self._handlers.clear()
