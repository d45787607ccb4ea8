"""The status server in this process, over real loopback sockets: slow clients dropped, the
connection cap, accept() out of descriptors, quiet client disconnects, raw Host cases, IPv6."""

from __future__ import annotations

import errno
import http.client
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from scheduler.http_conn import ConnectionFront, bind_listener
from scheduler.http_status import Snapshot, StatusServer
from tests.integration.harness import has_ipv6_loopback, raw_request


def _snapshot(control: Callable[[str, dict, str], dict] | None = None) -> Snapshot:
    snap = Snapshot()
    snap.status_body = b'{"cycle_count": 7}'
    snap.health = lambda: (200, {"status": "ok"})
    snap.control = control or (lambda kind, args, by: {"ok": True, "kind": kind, "args": args})
    return snap


@contextmanager
def _server(host: str = "127.0.0.1", token: str | None = None, **kw: Any) -> Iterator[StatusServer]:
    server = StatusServer(host, 0, kw.pop("snapshot", None) or _snapshot(), token, **kw)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, json.loads(body)


def _wait(predicate: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_client_that_never_finishes_its_headers_is_answered_408_and_dropped() -> None:
    with _server(header_timeout_s=0.3) as server, socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        s.settimeout(10)  # far longer than the server's deadline: the server closes first
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.0 408") and b"send them at once" in answer
        _wait(lambda: server.front.open_connections() == 0)


def test_idle_connections_past_the_cap_push_out_the_oldest_and_health_still_answers() -> None:
    with _server(max_connections=4) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
        try:
            _wait(lambda: server.front.dropped >= 8)
            assert server.front.open_connections() <= 4
            assert _get(f"{server.url}/health") == (200, {"status": "ok"})
            for s in idle[:8]:  # the oldest were closed (with a 503), the newest wait for their headers
                s.settimeout(10)
                assert s.recv(65536).startswith(b"HTTP/1.0 503")
        finally:
            for s in idle:
                s.close()


def test_when_every_slot_is_a_request_being_answered_a_new_one_gets_503() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_history(since_ms: int | None, strategy: str | None) -> bytes:
        entered.release()
        release.wait(10)
        return b'{"points":[]}'

    snap = _snapshot()
    snap.history = slow_history
    with _server(snapshot=snap, max_connections=2) as server:
        results: list[int] = []

        def history() -> None:
            results.append(_get(f"{server.url}/history", timeout=10)[0])

        gets = [threading.Thread(target=history) for _ in range(2)]
        for t in gets:
            t.start()
        assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
        code, doc = _get(f"{server.url}/health")
        assert code == 503 and "busy" in doc["error"]
        release.set()
        for t in gets:
            t.join(10)
        assert results == [200, 200]
        # a slot is given back just after its answer is sent: the clients can be a moment ahead
        deadline = time.monotonic() + 10
        while (health := _get(f"{server.url}/health")) != (200, {"status": "ok"}) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert health == (200, {"status": "ok"})


def test_control_requests_hold_at_most_their_share_of_the_slots() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_control(kind: str, args: dict, by: str) -> dict:
        entered.release()
        release.wait(10)
        return {"ok": True}

    with _server(token="t0ken", snapshot=_snapshot(slow_control), max_connections=2) as server:
        results: list[int] = []

        def post() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("POST", "/reconcile", body=b"{}", headers={"Authorization": "Bearer t0ken"})
            results.append(conn.getresponse().status)
            conn.close()

        first = threading.Thread(target=post)
        first.start()
        assert entered.acquire(timeout=10)
        post()  # one slot of two is for control requests: the second is told to retry, not queued
        assert results == [503]
        auth = {"Authorization": "Bearer t0ken"}
        # the other slot is free once the refused connection's handler has let it go (on a busy
        # machine that can be a moment after the client read its 503)
        assert _eventually_ok(f"{server.url}/health", auth)
        release.set()
        first.join(10)
        assert results == [503, 200]
        assert _eventually_ok(f"{server.url}/health", auth)


def _eventually_ok(url: str, headers: dict, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        got = _get(url, headers)
        if got == (200, {"status": "ok"}) or time.monotonic() > deadline:
            return got == (200, {"status": "ok"})
        time.sleep(0.05)


class _OutOfDescriptors(socket.socket):
    """A listener whose accept() fails with EMFILE while ``failing`` is set."""

    failing = True
    calls = 0

    def accept(self) -> tuple[socket.socket, Any]:
        self.calls += 1
        if self.failing:
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_accept_out_of_descriptors_pauses_instead_of_spinning() -> None:
    real = bind_listener("127.0.0.1", 0)
    listener = _OutOfDescriptors(real.family, real.type, fileno=real.detach())
    listener.setblocking(False)
    port = listener.getsockname()[1]
    served = threading.Event()
    front = ConnectionFront(listener, lambda sock, head, address, deadline: served.set(), cap=4)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /health HTTP/1.0\r\n\r\n")  # queued in the kernel: accept() keeps failing
            time.sleep(1.0)
            assert 1 <= listener.calls <= 6, f"accept() was called {listener.calls} times in 1 s: it spins"
            assert thread.is_alive()
            listener.failing = False
            assert served.wait(10), "the connection waiting in the queue was never served"
    finally:
        front.stop()
        thread.join(10)


def test_a_client_that_disconnects_early_leaves_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    release, answered = threading.Event(), threading.Event()

    def control(kind: str, args: dict, by: str) -> dict:
        release.wait(10)
        return {"ok": True, "detail": "x" * 200_000}  # more than a socket buffer: the write must fail

    with _server(token="t0ken", snapshot=_snapshot(control)) as server:
        baseline = threading.active_count()
        for _ in range(3):
            release.clear()
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /reconcile HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t0ken\r\n"
                      b"Content-Length: 2\r\n\r\n{}")
            _wait(lambda: threading.active_count() > baseline)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # a reset: the answer has nowhere to go
            release.set()
            _wait(lambda: threading.active_count() == baseline)
        answered.set()
        assert _get(f"http://127.0.0.1:{server.port}/health", {"Authorization": "Bearer t0ken"})[0] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


def test_raw_host_cases() -> None:
    with _server() as server:
        assert raw_request(server.port, b"GET /health HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert raw_request(server.port, b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n").startswith(b"HTTP/1.0 200")
        assert raw_request(server.port, b"GET /health HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 400")
        two = b"GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n"
        assert raw_request(server.port, two).startswith(b"HTTP/1.0 400")
        evil = raw_request(server.port, b"POST /trade HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}")
        assert evil.startswith(b"HTTP/1.0 421") and b"not this server" in evil
        assert raw_request(server.port, b"GET /health HTTP/1.1\nHost: localhost\n\n").startswith(b"HTTP/1.0 200")


def test_control_bodies_chunked_and_oversized() -> None:
    with _server(token="t0ken") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/trade", body=iter([b'{"strategy": "a",', b' "action": "enter"}']),
                     headers={"Authorization": "Bearer t0ken"})
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (200, {"ok": True, "kind": "trade",
                                                          "args": {"strategy": "a", "action": "enter"}})
        conn.close()
        big = b'{"by": "' + b"x" * 70_000 + b'"}'
        answer = raw_request(server.port, b"POST /trade HTTP/1.1\r\nHost: localhost\r\nAuthorization: bearer t0ken\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(big) + big)
        assert answer.startswith(b"HTTP/1.0 413")
        gz = raw_request(server.port, b"POST /trade HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t0ken\r\n"
                  b"Transfer-Encoding: gzip\r\n\r\n")
        assert gz.startswith(b"HTTP/1.0 501") and b"Content-Length" in gz


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_hosts_bind_with_the_right_family() -> None:
    with _server("::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert _get(f"{server.url}/status") == (200, {"cycle_count": 7})
    with _server("::", token="t0ken") as server:  # the wildcard serves both families
        auth = {"Authorization": "Bearer t0ken"}
        assert _get(f"http://[::1]:{server.port}/health", auth)[0] == 200
        assert _get(f"http://127.0.0.1:{server.port}/health", auth)[0] == 200


def test_an_answered_connection_is_closed_at_once_so_idle_clients_never_hold_the_slots() -> None:
    """A client that sends one request and keeps its socket open gets EOF right after the
    answer (the server speaks HTTP/1.0, no keep-alive); 70 of them, more than the 64 slots,
    leave /health answering."""
    with _server() as server:
        port = server.port
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        s.settimeout(10)
        started = time.monotonic()
        while s.recv(65_536):
            pass
        took = time.monotonic() - started
        s.close()
        assert took < 4.0, f"the server kept the answered connection open {took:.1f} s"  # it held 5 s
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(70)]
        try:
            for c in clients:
                c.sendall(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            _wait(lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, 2.5)
        finally:
            for c in clients:
                c.close()
