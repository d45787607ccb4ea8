"""Durable file writes, in one place. Standard library only (checkers import it too).

The market cache writes with it and so do the scheduler's state store and history; it lives
here, below the scheduler, so that market/ never imports scheduler/."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = True,
                 keep_previous_as: Path | None = None) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one.

    Temp file in the same folder (``mode``), fsync, rename, fsync the folder
    (``durable=False`` skips both fsyncs, for throw-away files). With
    ``keep_previous_as`` the current file is first hard-linked there, so a
    complete copy of the previous version exists at every instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if keep_previous_as is not None and path.exists():
            link_tmp = keep_previous_as.with_name(f".{keep_previous_as.name}.{os.getpid()}.tmp")
            link_tmp.unlink(missing_ok=True)
            os.link(path, link_tmp)
            os.replace(link_tmp, keep_previous_as)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_durably(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Append ``text`` to ``path`` (created with ``mode``) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "a") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
