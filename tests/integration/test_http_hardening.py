"""The status server of a real daemon under abuse: a flood of slow connections under a low
descriptor limit, foreign Host names (DNS rebinding), an IPv6 bind, chunked bodies,
bearer scheme case."""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.harness import (
    REPO,
    DaemonProcess,
    has_ipv6_loopback,
    spot,
    state_doc,
    wait_for,
    write_config,
)

NOFILE_SOFT = 256  # the daemon's descriptor limit in the flood test
FLOOD_SOCKETS = 400  # held open at once: more than the daemon has descriptors
FLOOD_MAX_OPENS = 4000  # bounds the whole flood, whatever the server does
FLOOD_S = 8.0
FLOOD_BATCH = 10  # connects per 50 ms: a steady stream, as from many clients, not one burst


def _cycles(folder: Path) -> int:
    doc = state_doc(folder)
    return doc["cycle_count"] if doc else 0


def _status_port(out_path: Path, timeout: float = 30.0) -> int:
    def find() -> int | None:
        m = re.search(r"Status server on http://\S+:(\d+)/status", out_path.read_text())
        return int(m.group(1)) if m else None
    return wait_for(find, timeout, "the status server's port")


def _get(url: str, *, timeout: float, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, json.loads(body)


class _LimitedDaemon:
    """go-trader with RLIMIT_NOFILE's soft limit lowered to ``soft`` (set in the child, then exec'd)."""

    def __init__(self, config: Path, soft: int) -> None:
        self.folder = config.parent
        self.out_path = self.folder / "daemon.out"
        self._out = open(self.out_path, "w")  # noqa: SIM115 - closed in stop()
        boot = ("import resource, runpy, sys; "
                f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
                "sys.argv = ['go-trader', '--config', sys.argv[1]]; "
                "runpy.run_module('scheduler', run_name='__main__')")
        self.proc = subprocess.Popen([sys.executable, "-c", boot, str(config)], cwd=REPO, stdout=self._out,
                                     stderr=subprocess.STDOUT, env=os.environ.copy())

    @property
    def output(self) -> str:
        return self.out_path.read_text()

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def nofile_soft(self) -> int:
        limits = Path(f"/proc/{self.proc.pid}/limits").read_text()
        return int(re.search(r"Max open files\s+(\d+)", limits).group(1))

    def stop(self) -> int | None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        finally:
            self._out.close()


class _Flood:
    """Holds ``FLOOD_SOCKETS`` connections that never finish their headers (half send a partial
    header, half nothing), re-opening those the server closes; bounded in count and time.

    Connects are non-blocking, so a server with a short listen queue still gets them all
    (the kernel retries a dropped SYN), as it would from many real clients.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.attempts = 0
        self.opened = 0  # connections established
        self.closed_by_server = 0
        self.connect_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def __enter__(self) -> _Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()

    def _connect(self, sel: selectors.BaseSelector) -> None:
        self.attempts += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if s.connect_ex(("127.0.0.1", self.port)) not in (0, errno.EINPROGRESS):
            s.close()
            self.connect_failures += 1
            return
        sel.register(s, selectors.EVENT_WRITE, "connecting")

    def _event(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        if key.data == "connecting":
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                sel.unregister(sock)
                sock.close()
                self.connect_failures += 1
                return
            self.opened += 1
            if self.opened % 2:
                try:
                    sock.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                except OSError:
                    pass
            sel.modify(sock, selectors.EVENT_READ, "held")
        else:  # readable: the server answered (503/408) or closed it
            sel.unregister(sock)
            sock.close()
            self.closed_by_server += 1

    def _run(self) -> None:
        deadline = time.monotonic() + 2 * FLOOD_S + 10
        next_batch = time.monotonic()
        with selectors.DefaultSelector() as sel:
            try:
                while not self._stop.is_set() and time.monotonic() < deadline:
                    for key, _ in sel.select(max(0.0, next_batch - time.monotonic())):
                        self._event(sel, key)
                    if time.monotonic() >= next_batch:
                        next_batch += 0.05
                        room = min(FLOOD_BATCH, FLOOD_SOCKETS - len(sel.get_map()), FLOOD_MAX_OPENS - self.attempts)
                        for _ in range(room):
                            self._connect(sel)
            finally:
                for key in list(sel.get_map().values()):
                    key.fileobj.close()  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_flood_of_slow_connections_does_not_halt_trading(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha"), spot("beta", "check_hold.py")], interval_seconds=2)
    daemon = _LimitedDaemon(config, NOFILE_SOFT)
    try:
        port = _status_port(daemon.out_path)
        assert daemon.nofile_soft() == NOFILE_SOFT
        health = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: _cycles(tmp_path) >= 1, what="the first cycle")
        assert _get(health, timeout=5) == (200, {"status": "ok"})
        peak_fds = 0
        with _Flood(port) as flood:
            ramp_end = time.monotonic() + 10  # not wait_for: a server that stops accepting must fail below
            while flood.opened < FLOOD_SOCKETS and time.monotonic() < ramp_end:
                time.sleep(0.05)
            before = _cycles(tmp_path)
            flood_end = time.monotonic() + FLOOD_S
            answers = []
            while time.monotonic() < flood_end:
                answers.append(_get(health, timeout=1.0))  # answered within a second, or this raises
                peak_fds = max(peak_fds, daemon.open_fds())
                time.sleep(0.25)
            during = _cycles(tmp_path) - before
            _, status = _get(f"http://127.0.0.1:{port}/status", timeout=1.0)
        # every probe answered within its second; "stale" (a cycle late on a loaded machine) is an
        # answer, "halted" (a failed save) or no answer is the bug
        assert answers and all(doc["status"] in ("ok", "stale") for _, doc in answers), answers
        assert during >= 2, f"only {during} cycle(s) ran during the flood"
        assert status["cycle_count"] >= before + during - 1
        assert peak_fds <= NOFILE_SOFT - 64, f"the daemon used {peak_fds} of {NOFILE_SOFT} descriptors"
        assert flood.opened >= FLOOD_SOCKETS, vars(flood)  # it was a flood
        out = daemon.output
        assert "Too many open files" not in out and "HALTED" not in out and "Traceback" not in out, out[-3000:]
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output[-3000:]


def test_foreign_host_names_are_refused_without_a_token(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends Host: evil.example."""
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": ""}) as d:
        port = d.port()
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example",
                     "0.0.0.0", "10.0.0.1", "[::2]"):
            code, doc = _get(f"http://127.0.0.1:{port}/status", timeout=10, headers={"Host": host})
            assert code == 421 and "not this server" in doc["error"], (host, code, doc)
        for host in ("localhost", f"localhost:{port}", f"LOCALHOST.:{port}", f"127.0.0.1:{port}", "127.1.2.3",
                     f"[::1]:{port}"):
            assert _get(f"http://127.0.0.1:{port}/status", timeout=10, headers={"Host": host})[0] == 200, host
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


def test_with_a_token_any_host_name_is_answered_and_bearer_is_case_insensitive(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": "s3cret"}) as d:
        url = f"http://127.0.0.1:{d.port()}/health"
        for auth in ("Bearer s3cret", "bearer s3cret", "BEARER s3cret", "BeArEr   s3cret "):
            assert _get(url, timeout=10, headers={"Authorization": auth, "Host": "trader.example.com"})[0] == 200
        for auth in ("Bearer s3cre", "Basic s3cret", "Bearers3cret", "s3cret", "Bearer"):
            assert _get(url, timeout=10, headers={"Authorization": auth})[0] == 401, auth
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


def test_a_chunked_control_body_is_decoded_not_read_as_empty(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": "t0ken"}) as d:
        port = d.port()
        wait_for(lambda: _cycles(tmp_path) >= 1, what="the first cycle")

        def post(body_chunks: list[bytes]) -> tuple[int, dict]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:  # http.client frames an iterable body with Transfer-Encoding: chunked
                conn.request("POST", "/reset-breaker", body=iter(body_chunks),
                             headers={"Authorization": "Bearer t0ken"})
                r = conn.getresponse()
                return r.status, json.loads(r.read())
            finally:
                conn.close()

        # read as {} (the old bug) the strategy would be None; decoded, it is "nobody"
        code, doc = post([b'{"strategy": "nob', b'ody", "by": "chunky"}'])
        assert code == 404 and "nobody" in doc["error"], doc
        code, doc = post([b'{"strategy": "alpha", ', b'"by": "chunky"}'])
        assert code == 200 and doc["ok"] is True, doc
        audit = [json.loads(x) for x in (tmp_path / "state.audit.jsonl").read_text().splitlines()]
        assert audit[-1]["action"] == "reset_breaker" and audit[-1]["by"].startswith("chunky")
        code, doc = post([b"x" * 40_000, b"x" * 40_000])
        assert code == 413 and "65536 bytes" in doc["error"], doc
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
@pytest.mark.parametrize("host", ["::1", "::"])
def test_an_ipv6_status_host_binds_and_serves(tmp_path: Path, host: str) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")], status={"host": host, "port": 0})
    env = {"GO_TRADER_STATUS_TOKEN": "t0ken" if host == "::" else ""}
    with DaemonProcess(config, env) as d:
        port = _status_port(d.out_path)
        auth = {"Authorization": "Bearer t0ken"} if host == "::" else {}
        assert _get(f"http://[::1]:{port}/health", timeout=10, headers=auth)[0] in (200, 503)
        if host == "::":  # the wildcard serves IPv4 too: the endpoint file names 127.0.0.1
            assert _get(f"http://127.0.0.1:{port}/health", timeout=10, headers=auth)[0] in (200, 503)
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.output
