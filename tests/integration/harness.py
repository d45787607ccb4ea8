"""Starts real go-trader processes on temp folders, for integration tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FAULTS = REPO / "tests" / "fault_checkers"


def spot(sid: str, script: str = "check_alternate.py", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "type": "spot", "script": script, "args": ["sma_crossover", "BTC/USDT", "1h"],
            "capital": 1000, **extra}


def write_config(folder: Path, strategies: list[dict[str, Any]], **overrides: Any) -> Path:
    doc: dict[str, Any] = {"interval_seconds": 600, "log_dir": "logs", "state_file": "state.json",
                           "market": {"source": "synthetic", "seed": 42}, "checkers_dir": str(FAULTS),
                           "status": {"host": "127.0.0.1", "port": 0}, "strategies": strategies}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    path = folder / "config.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=_child_env(env))


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    """The daemon's environment with ``env`` added; test variables are passed on to the checkers
    (which otherwise get only an allow-listed environment) through GO_TRADER_CHECKER_ENV."""
    extra = " ".join(k for k in (env or {}) if not k.startswith("GO_TRADER_"))
    return {**os.environ, **(env or {}), **({"GO_TRADER_CHECKER_ENV": extra} if extra else {})}


def raw_request(port: int, payload: bytes, family: int = socket.AF_INET, host: str = "127.0.0.1") -> bytes:
    """Send ``payload`` as it is, half-close, and return every byte the server answered."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def state_doc(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def pids_alive(pidfile: Path) -> list[int]:
    """The pids listed in ``pidfile`` that still exist (zombies count as gone)."""
    alive = []
    for line in pidfile.read_text().split() if pidfile.exists() else []:
        try:
            stat = Path(f"/proc/{int(line)}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.append(int(line))
    return alive


class DaemonProcess:
    """``go-trader --config ...`` as a child process; stdout is captured to a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, *extra_args: str) -> None:
        self.folder = config.parent
        self.out_path = self.folder / f"daemon-{time.monotonic_ns()}.out"
        self._out = open(self.out_path, "w")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen([sys.executable, "-m", "scheduler", "--config", str(config), *extra_args],
                                     cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=_child_env(env))

    @property
    def output(self) -> str:
        return self.out_path.read_text()

    def port(self, timeout: float = 30.0) -> int:
        def find() -> int | None:
            m = re.search(r"Status server on http://[\d.]+:(\d+)/status", self.output)
            return int(m.group(1)) if m else None
        return wait_for(find, timeout, "the status server's port")

    def get(self, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port()}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            e.close()
            return e.code, json.loads(body)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def open_daemon(config_path: Path, clock: Any, state_path: Path | None = None) -> Any:
    """An in-process Daemon on ``config_path``'s folder (state.json and logs/ beside it, or
    ``state_path``), opened; the caller closes it."""
    from scheduler.config import load_config
    from scheduler.daemon import Daemon

    folder = config_path.parent
    d = Daemon(load_config(config_path), config_path, clock=clock, state_path=state_path or folder / "state.json",
               log_dir=folder / "logs", stdout_logs=False)
    d.open()
    return d
