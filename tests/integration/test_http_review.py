"""The status server against slow control bodies and requests without Host, over real sockets
on 127.0.0.1 (an in-process server with a fake snapshot: no daemon needed)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from scheduler.http_conn import body_slots
from scheduler.http_status import Snapshot, StatusServer
from tests.integration.harness import raw_request, wait_for

TOKEN = "t0ken"
CAP = 8  # small, so that a bounded number of slow clients is more than the server has slots


@pytest.fixture
def server() -> Iterator[StatusServer]:
    snap = Snapshot()
    snap.status_body = b'{"status":"test"}'
    snap.health = lambda: (200, {"status": "ok"})
    snap.control = lambda kind, args, by: {"ok": True, "kind": kind}
    srv = StatusServer("127.0.0.1", 0, snap, TOKEN, max_connections=CAP)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _get(srv: StatusServer, path: str, timeout: float) -> tuple[int, dict]:
    req = urllib.request.Request(f"{srv.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        doc = json.load(e)
        e.close()
        return e.code, doc


AUTH = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
SLOW_HEADS = {  # requests whose body has only begun to arrive
    "control-post": b"POST /reconcile HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"Content-Length: 2\r\n\r\n{",
    "post-without-token": b"POST /reconcile HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
    "get-with-a-body": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"Content-Length: 100\r\n\r\n{",
    "chunked-post": b"POST /trade HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{",
}


def _slow(srv: StatusServer, head: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(head)
    return s


@pytest.mark.parametrize("kind", list(SLOW_HEADS))
def test_slow_bodies_of_any_kind_leave_health_and_status_answerable(server: StatusServer, kind: str) -> None:
    slow = [_slow(server, SLOW_HEADS[kind]) for _ in range(CAP + 4)]  # more slow bodies than the server has slots
    try:
        wait_for(lambda: server.front.open_connections() <= body_slots(CAP), timeout=10,
                 what="the extra slow bodies to be answered 503")
        for _ in range(3):  # answered at once, every time: no slot is held by a slow body's reader
            assert _get(server, "/health", timeout=2) == (200, {"status": "ok"})
            assert _get(server, "/status", timeout=2) == (200, {"status": "test"})
    finally:
        for s in slow:
            s.close()


def test_slow_control_bodies_are_run_or_told_to_retry(server: StatusServer) -> None:
    slow = [_slow(server, SLOW_HEADS["control-post"]) for _ in range(CAP + 4)]
    try:
        wait_for(lambda: server.front.open_connections() <= body_slots(CAP), timeout=10,
                 what="the extra slow bodies to be answered 503")
        assert _get(server, "/health", timeout=2) == (200, {"status": "ok"})
        answered = []
        for s in slow:  # the bodies complete: those let in are run, the rest were told to retry
            s.sendall(b"}")
            s.shutdown(socket.SHUT_WR)
            answered.append(b"".join(iter(lambda s=s: s.recv(65536), b"")))
        codes = [a.split(b" ", 2)[1] for a in answered]
        assert codes.count(b"200") == body_slots(CAP) and codes.count(b"503") == len(slow) - body_slots(CAP), codes
        assert all(b"retry" in a for a in answered if b" 503 " in a.split(b"\r\n", 1)[0])
    finally:
        for s in slow:
            s.close()


@pytest.mark.parametrize("request_line", [b"GET /health HTTP/1.0\r\n", b"GET /status HTTP/1.0\r\n",
                                          b"POST /reconcile HTTP/1.0\r\nContent-Length: 0\r\n",
                                          b"GET /health HTTP/1.1\r\n"])
def test_a_request_without_host_is_refused_whatever_its_version(server: StatusServer, request_line: bytes) -> None:
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    answer = raw_request(server.port, request_line + auth + b"\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer
    assert "Host" in json.loads(body)["error"]
    with_host = raw_request(server.port, request_line + b"Host: 127.0.0.1\r\n" + auth + b"\r\n")
    assert with_host.split(b" ", 2)[1] == b"200", with_host


def test_an_http_0_9_request_is_refused(server: StatusServer) -> None:
    answer = raw_request(server.port, b"GET /health\r\n")
    assert answer.startswith(b"HTTP/1.0 400 "), answer
    assert b"Host" in answer and b"ok" not in answer.partition(b"\r\n\r\n")[2]
