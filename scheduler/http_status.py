"""The status HTTP server (REFERENCE section 9).

GET /status and GET /health serve the last committed snapshot (bytes prepared
by the daemon after each save), so a request never waits for a running cycle
or takes a lock the cycle holds. A bearer token (GO_TRADER_STATUS_TOKEN) is
required whenever it binds to a non-loopback address, and checked whenever it
is set.

POST endpoints act on the trading state and always need the token:
  /reset-breaker      {"strategy": ID, "by": NAME}
  /reset-kill-switch  {"by": NAME}
  /trade              {"strategy": ID, "action": "enter"|"close", "symbol": SYMBOL?, "by": NAME}
  /reconcile          {}
They are queued to the daemon's main loop (the single writer) and answered
with its result, or 202 when a running cycle delays them.
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
MAX_BODY = 4096
CONTROL = {"/reset-breaker": "reset_breaker", "/reset-kill-switch": "reset_kill_switch", "/trade": "trade",
           "/reconcile": "reconcile"}


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
        #: runs a control command on the main loop: (kind, args, by) -> result
        self.control: Callable[[str, dict, str], dict] | None = None


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

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path in ("/status", "/health"):
            return self._not_allowed()
        if path not in CONTROL:
            return self._error(404, f"no such endpoint {path[:100]!r}; POST to one of {', '.join(CONTROL)}")
        if not self.server.token:  # type: ignore[attr-defined]
            return self._error(403, "control endpoints are off: set GO_TRADER_STATUS_TOKEN and send it as a bearer token")
        if not self._authorized():
            return self._error(401, "missing or wrong bearer token (Authorization: Bearer $GO_TRADER_STATUS_TOKEN)",
                               {"WWW-Authenticate": "Bearer"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return self._error(400, "Content-Length must be a number")
        if length < 0 or length > MAX_BODY:
            return self._error(413, f"body must be at most {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "body must be a JSON object")
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            return self._error(400, "body must be a JSON object of strings")
        snap: Snapshot = self.server.snapshot  # type: ignore[attr-defined]
        if snap.control is None:
            return self._error(503, "the daemon is not accepting commands yet")
        by = f"{body.pop('by', None) or 'unnamed'} (http {self.client_address[0]})"
        result = snap.control(CONTROL[path], body, by)
        error = str(result.get("error", ""))
        code = 202 if result.get("queued") else 200 if not error else (
            404 if error.startswith("unknown") else 409 if "halted" in error else 400)
        return self._send(code, json.dumps(result).encode())

    def _not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed here",
                    {"Allow": "GET, HEAD" if self.path.split("?", 1)[0] in ("/status", "/health") else "POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


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
