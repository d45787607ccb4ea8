"""scripts/demo shows its OWN daemon's /status, or says plainly why it cannot.

Each test runs the real script (bootstrap, a --once cycle, a daemon, an HTTP GET) with
another HTTP server squatting on 127.0.0.1:8099, the port the demo used to assume. The
worktree's .venv is reused (scripts/bootstrap is a no-op once it ran); PIP_NO_INDEX makes a
needed reinstall fail loudly instead of reaching the package index.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "scripts" / "demo"
SQUATTER_BODY = b'{"squatter": "NOT-THE-DEMO-DAEMON-7f3a"}'
SQUATTER_MARK = "NOT-THE-DEMO-DAEMON-7f3a"
TOKEN = "demo-test-token-9c1e"
DEMO_TIMEOUT_S = 150

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REPO_ROOT / ".venv" / "bin" / "go-trader").exists(),
                       reason="needs the project's .venv (run scripts/bootstrap first)"),
]


class _Squatter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(SQUATTER_BODY)))
        self.end_headers()
        self.wfile.write(SQUATTER_BODY)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def squatter_on(port: int) -> Iterator[int]:
    """Another HTTP server on 127.0.0.1:port answering every GET with SQUATTER_BODY."""
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), _Squatter)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        # someone else already holds it: the port is taken all the same, which is the point
        yield port
        return
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def run_demo(run_dir: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEMO_PORT", "GO_TRADER_STATUS_TOKEN")}
    env.update(DEMO_DIR=str(run_dir), PIP_NO_INDEX="1", **env_extra)
    return subprocess.run([str(DEMO)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=DEMO_TIMEOUT_S)


def status_shown(stdout: str) -> dict[str, Any]:
    """The JSON document printed under the demo's GET /status heading."""
    heading = stdout.index("== GET ")
    start = stdout.index("\n{", heading) + 1
    doc, _ = json.JSONDecoder().raw_decode(stdout, start)
    assert isinstance(doc, dict)
    return doc


def demo_strategy_ids() -> set[str]:
    return {s["id"] for s in json.loads((REPO_ROOT / "config.demo.json").read_text())["strategies"]}


def assert_own_status(r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert SQUATTER_MARK not in out
    assert "did not come up" not in out
    doc = status_shown(r.stdout)
    assert doc["synthetic_market"] is True
    assert {s["id"] for s in doc["strategies"]} == demo_strategy_ids()
    assert doc["cycle_count"] >= 1


def test_demo_shows_its_own_daemon_when_8099_is_taken(tmp_path: Path) -> None:
    with squatter_on(8099):
        r = run_demo(tmp_path / "run")
    assert_own_status(r)


def test_demo_passes_the_exported_status_token(tmp_path: Path) -> None:
    with squatter_on(8099):
        r = run_demo(tmp_path / "run", GO_TRADER_STATUS_TOKEN=TOKEN)
    assert_own_status(r)
    assert TOKEN not in r.stdout  # the token is sent, never printed


def test_demo_says_plainly_when_its_daemon_cannot_serve(tmp_path: Path) -> None:
    # DEMO_PORT pins the port: the demo's daemon cannot bind a taken one and must say so
    # (an OS-picked port for the squatter: 8099 may be another test's, freed at any moment)
    with squatter_on(0) as port:
        r = run_demo(tmp_path / "run", DEMO_PORT=str(port), GO_TRADER_STATUS_TOKEN=TOKEN)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert SQUATTER_MARK not in out
    assert "Address already in use" in out  # the daemon's own error, shown
    assert f"127.0.0.1:{port}" in out


def test_demo_ignores_an_endpoint_file_left_by_a_killed_daemon(tmp_path: Path) -> None:
    # a daemon killed with -9 leaves <state>.endpoint behind, here pointing at another server
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with squatter_on(0) as port:
        (run_dir / "state.json.endpoint").write_text(f"http://127.0.0.1:{port}\n")
        r = run_demo(run_dir)
    assert_own_status(r)
