"""The status HTTP server: GET /status and GET /health (REFERENCE section 9).

It serves the last committed snapshot (bytes prepared by the daemon after
each save), so a request never waits for a running cycle or takes a lock the
cycle holds. A bearer token (GO_TRADER_STATUS_TOKEN) is required whenever it
binds to a non-loopback address, and checked whenever it is set.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scheduler.errors import ConfigError

MAX_URL = 2048


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Snapshot:
    """The committed /status body and the health verdict, swapped atomically."""

    def __init__(self) -> None:
        self.status_body = b'{"status":"starting"}'
        self.health: Callable[[], tuple[int, dict]] = lambda: (503, {"status": "starting"})


class _Handler(BaseHTTPRequestHandler):
    server_version = "go-trader"
    sys_version = ""
    timeout = 10  # a client that stalls is dropped, it cannot hold a thread

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: the daemon logs
        pass

    def _send(self, code: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps({"error": message}).encode(), extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, long URL, ...) as JSON, never HTML or HTTP/0.9."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        self.command = getattr(self, "command", None) or "GET"
        self._error(code, message or HTTPStatus(code).phrase)

    def _authorized(self) -> bool:
        token: str | None = self.server.token  # type: ignore[attr-defined]
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if len(self.path) > MAX_URL:
            return self._error(414, "URL too long")
        path = self.path.split("?", 1)[0]
        if path not in ("/status", "/health"):
            return self._error(404, f"no such endpoint {path[:100]!r}; use /status or /health")
        if not self._authorized():
            return self._error(401, "missing or wrong bearer token (Authorization: Bearer $GO_TRADER_STATUS_TOKEN)",
                               {"WWW-Authenticate": "Bearer"})
        snap: Snapshot = self.server.snapshot  # type: ignore[attr-defined]
        if path == "/status":
            return self._send(200, snap.status_body)
        code, doc = snap.health()
        return self._send(code, json.dumps(doc).encode())

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed; use GET",
                    {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class StatusServer:
    def __init__(self, host: str, port: int, snapshot: Snapshot, token: str | None) -> None:
        if not is_loopback(host) and not token:
            raise ConfigError([f"status.host: binding the status server to {host} (not loopback) needs a bearer "
                               "token: set GO_TRADER_STATUS_TOKEN, or bind to 127.0.0.1"])
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.snapshot = snapshot  # type: ignore[attr-defined]
        self.httpd.token = token  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
