"""Logging (REFERENCE section 10): human lines per strategy and for the
scheduler, a JSON event log, all in UTC, all size-rotated.

Human line: ``[2026-02-11 07:28:03] [momentum-btc] [INFO] Signal: HOLD | BTC/USDT @ $66916.86``
Event line: one JSON object with ``cycle`` and ``strategy``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self, tag: str) -> None:
        super().__init__(f"[%(asctime)s] [{tag}] [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")


class Logs:
    """Owns every log file of one daemon; hands out per-strategy loggers."""

    def __init__(self, log_dir: Path, max_bytes: int, backups: int, stdout: bool = True) -> None:
        self.dir = log_dir
        self.max_bytes, self.backups = max_bytes, backups
        log_dir.mkdir(parents=True, exist_ok=True)
        self._handlers: list[logging.Handler] = []
        self.scheduler = self._logger("go_trader.scheduler", "scheduler", "scheduler.log", stdout)
        self._events = logging.getLogger("go_trader.events")
        self._events.propagate = False
        self._events.setLevel(logging.INFO)
        h = self._file("events.jsonl")
        h.setFormatter(logging.Formatter("%(message)s"))
        self._events.addHandler(h)
        self._strategies: dict[str, logging.Logger] = {}

    def _file(self, name: str) -> RotatingFileHandler:
        h = RotatingFileHandler(self.dir / name, maxBytes=self.max_bytes, backupCount=self.backups,
                                encoding="utf-8")
        self._handlers.append(h)
        return h

    def _logger(self, name: str, tag: str, filename: str, stdout: bool) -> logging.Logger:
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        handlers: list[logging.Handler] = [self._file(filename)]
        if stdout:
            handlers.append(logging.StreamHandler(sys.stdout))
            self._handlers.append(handlers[-1])
        for h in handlers:
            h.setFormatter(_Formatter(tag))
            logger.addHandler(h)
        return logger

    def strategy(self, strategy_id: str) -> logging.Logger:
        """The logger whose lines go to logs/<id>.log and to stdout."""
        if strategy_id not in self._strategies:
            self._strategies[strategy_id] = self._logger(
                f"go_trader.strategy.{strategy_id}", strategy_id, f"{strategy_id}.log", True)
        return self._strategies[strategy_id]

    def event(self, kind: str, cycle: int, strategy: str | None, **data: Any) -> None:
        self._events.info(json.dumps({"kind": kind, "cycle": cycle, "strategy": strategy,
                                      "logged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data},
                                     default=str, separators=(",", ":")))

    def close(self) -> None:
        for logger in [self.scheduler, self._events, *self._strategies.values()]:
            for h in list(logger.handlers):
                logger.removeHandler(h)
        for h in self._handlers:
            h.close()
        self._handlers.clear()
