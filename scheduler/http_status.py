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
with its result, or 202 when a running cycle delays them. Bodies are framed by
Content-Length or Transfer-Encoding: chunked, at most MAX_BODY bytes (413).

Without a token (a loopback bind) only loopback Host names are answered (421):
a DNS-rebinding page reaches 127.0.0.1 under its own name. The Bearer scheme is
case-insensitive (RFC 9110 11.1). Connections, their limits and deadlines are
scheduler.http_conn's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import ipaddress
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from scheduler import metrics
from scheduler.config import is_loopback_host as is_loopback
from scheduler.control import BY_HTTP_MAX_CHARS, request_problem, text_problem
from scheduler.engine.errors import ConfigError
from scheduler.http_conn import (
    HEADER_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    ConnectionFront,
    DeadlineReader,
    SocketWriter,
    bind_listener,
    connection_cap,
    nofile_soft_limit,
    url_host,
)

MAX_URL = 2048
MAX_BODY = 65_536  # control bodies are a few names; anything bigger is refused with 413
MAX_CHUNK_LINE = 1024  # a chunk-size line with its extensions
MAX_TRAILERS = 32
CONTROL = {"/reset-breaker": "reset_breaker", "/reset-kill-switch": "reset_kill_switch", "/trade": "trade",
           "/reconcile": "reconcile"}
TOKEN_HINT = "set GO_TRADER_STATUS_TOKEN and send it as Authorization: Bearer $GO_TRADER_STATUS_TOKEN"


# -- request checks (pure: header values in, verdict out) --------------------------------------
_PORT = re.compile(r"(:[0-9]*)?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,12}")


def host_name(value: str) -> str | None:
    """The host of a Host header value (``host[:port]``), lower case, IPv6 without brackets;
    None when the value is not of that form."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name, sep, port = value.partition(":")
        rest = sep + port
    return name if name and _PORT.fullmatch(rest) else None


def is_loopback_name(name: str, bind_host: str) -> bool:
    """Whether a Host name surely means this machine: localhost, a loopback address, or the
    configured status.host. A DNS-rebinding page reaches us under its own name, so it fails."""
    name = name.rstrip(".")
    if is_loopback(name):
        return True
    bind = bind_host.strip("[]").lower().rstrip(".")
    try:
        wildcard = ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        wildcard = False
    return bool(bind) and name == bind and not wildcard


def host_problem(values: list[str], version: str, token: str | None, bind_host: str) -> tuple[int, str] | None:
    """What is wrong with a request's Host headers, as (status code, message), or None.

    RFC 9112 section 3.2: an HTTP/1.1 request needs exactly one valid Host, else 400. A request of
    any other version without Host (HTTP/1.0, HTTP/0.9) is refused too: the Host check is what
    stops DNS rebinding, and a request that names no host cannot be checked (curl -0 sends Host).
    Without a token (a loopback bind) only loopback names are answered (421), so a page under an
    attacker's DNS name cannot read /status; with a token the token protects, and any name (a
    public DNS name for a 0.0.0.0 bind) is fine.
    """
    if len(values) > 1:
        return 400, f"send one Host header, not {len(values)}"
    if not values:
        return 400, (f"a request without a Host header ({version}) is refused: send Host: 127.0.0.1 (or the "
                     "name you reach this server by); it is required by HTTP/1.1 (RFC 9112 section 3.2) "
                     "and checked on every request against DNS rebinding")
    name = host_name(values[0])
    if name is None:
        return 400, f"Host header {values[0][:100]!r} is not host[:port]"
    if token or is_loopback_name(name, bind_host):
        return None
    return 421, (f"Host {name[:100]!r} is not this server: without a token it answers only to localhost, "
                 f"127.0.0.1, [::1] or status.host ({bind_host}); use one of those, or {TOKEN_HINT}")


def bearer_token(header: str | None) -> str | None:
    """The credentials of ``Authorization: Bearer X``; the scheme is case-insensitive (RFC 9110 11.1)."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def token_matches(header: str | None, token: str) -> bool:
    given = bearer_token(header)
    if given is None:
        return False
    try:  # http.client decodes header bytes as latin-1: back to the bytes the client sent
        given_bytes = given.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given_bytes, token.encode())


class BodyError(Exception):
    """A request body that cannot be read: the status code and message to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def read_body(headers: Message, rfile: BinaryIO, limit_bytes: int) -> bytes:
    """The request body, framed by Content-Length or Transfer-Encoding: chunked (RFC 9112 6-7).

    Raises BodyError: 413 past ``limit_bytes``, 501 for a transfer coding other than chunked,
    400 for a malformed or truncated body, or both framings at once (a smuggling vector).
    """
    codings = [c.strip().lower() for v in headers.get_all("Transfer-Encoding") or [] for c in v.split(",")]
    codings = [c for c in codings if c]
    lengths = [v.strip() for v in headers.get_all("Content-Length") or []]
    if codings and lengths:
        raise BodyError(400, "send either Content-Length or Transfer-Encoding, not both")
    if codings:
        if codings != ["chunked"]:
            raise BodyError(501, f"Transfer-Encoding {', '.join(codings)[:100]!r} is not supported; "
                                 "send the body with Content-Length, or chunked")
        return read_chunked(rfile, limit_bytes)
    if not lengths:
        return b""
    if len(set(lengths)) > 1 or not _DIGITS.fullmatch(lengths[0]):
        raise BodyError(400, f"Content-Length must be one number of bytes, not {', '.join(lengths)[:100]!r}")
    length = int(lengths[0])
    if length > limit_bytes:
        raise BodyError(413, f"the body is {length} bytes; at most {limit_bytes} are accepted")
    data = rfile.read(length)
    if len(data) < length:
        raise BodyError(400, f"the body ended after {len(data)} of its {length} bytes")
    return data


def read_chunked(rfile: BinaryIO, limit_bytes: int) -> bytes:
    """Decode a chunked body (RFC 9112 section 7.1), refusing it past ``limit_bytes`` before reading."""
    body = bytearray()
    while True:
        line = rfile.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise BodyError(400, "chunked body: a chunk-size line is missing or longer than "
                                 f"{MAX_CHUNK_LINE} bytes")
        size_field = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_field):
            raise BodyError(400, f"chunked body: chunk size {size_field[:20]!r} is not hexadecimal")
        size = int(size_field, 16)
        if size == 0:
            break
        if len(body) + size > limit_bytes:
            raise BodyError(413, f"the chunked body is over {limit_bytes} bytes, the most accepted")
        data = rfile.read(size)
        if len(data) < size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise BodyError(400, "chunked body: a chunk is shorter than its size or not followed by CRLF")
        body += data
    for _ in range(MAX_TRAILERS):  # the trailer section, up to its blank line; its fields are ignored
        line = rfile.readline(MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            raise BodyError(400, "chunked body: it ends without the blank line after the last chunk")
    raise BodyError(400, f"chunked body: more than {MAX_TRAILERS} trailer lines")


GET_ENDPOINTS = ("/", "/status", "/health", "/metrics", "/history")
DASHBOARD_HTML = (Path(__file__).with_name("dashboard.html")).read_bytes()


def _content_security_policy(page: bytes) -> str:
    """Only this page's own inline script and style, data from this origin, no framing, no forms
    posting elsewhere: the dashboard loads nothing from any other site (it works offline)."""
    def digest(tag: bytes) -> str:
        start = page.index(b">", page.index(b"<" + tag)) + 1
        body = page[start:page.index(b"</" + tag, start)]
        return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"

    return (f"default-src 'none'; script-src {digest(b'script')}; style-src {digest(b'style')}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


DASHBOARD_HEADERS = {"Content-Security-Policy": _content_security_policy(DASHBOARD_HTML),
                     "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer"}


def cross_site_problem(origin: str | None, fetch_site: str | None, host: str | None) -> str | None:
    """Why a state-changing request looks cross-site (a page of another origin posting here), or
    None. Browsers send Origin on every POST and Sec-Fetch-Site where they support it; curl and
    the CLI send neither, and they are not browsers a web page could drive."""
    if fetch_site and fetch_site.lower() not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:40]})"
    if origin and origin != "null":
        if not host or urlsplit(origin).netloc.lower() != host.lower():
            return f"cross-site request refused (Origin {origin[:80]} is not this server)"
    elif origin == "null":
        return "cross-site request refused (Origin: null)"
    return None
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_history_query(query: str) -> tuple[int | None, str | None]:
    """(since in Unix ms, strategy) from a /history query string; ValueError saying what is wrong.

    ``since`` is ISO 8601 with a time zone (``2026-01-01T00:00:00Z``) or Unix milliseconds."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=4)
    except ValueError as e:
        raise ValueError(f"bad query string: {e}; use ?since=2026-01-01T00:00:00Z&strategy=ID") from None
    unknown = set(params) - {"since", "strategy"}
    if unknown:
        raise ValueError(f"unknown query parameter(s) {', '.join(sorted(unknown))[:100]}; use since and strategy")
    for name, values in params.items():  # one value each: which of two would be meant?
        if len(values) > 1:
            raise ValueError(f"{name} is given {len(values)} times; give it once (leave out strategy for all)")
        if not values[0]:
            raise ValueError(f"{name} is given with no value; give one, or leave {name} out")
    since = params.get("since", [None])[-1]
    since_ms = None
    if since is not None:
        try:
            if since.isascii() and since.isdigit() and len(since) <= 16:  # isdigit alone takes '١٢'
                since_ms = int(since)
                if 0 < since_ms < 100_000_000_000:  # before 1973 in ms: Unix seconds, most likely
                    raise ValueError(f"since {since} reads as Unix milliseconds, {since_ms / 1000:.0f} s after "
                                     f"1970; for seconds, give {since}000")
            else:
                t = datetime.fromisoformat(since.replace("Z", "+00:00"))
                if t.tzinfo is None:
                    raise ValueError("no time zone")
                since_ms = int(t.timestamp() * 1000)
        except OverflowError:
            raise ValueError(f"since must be ISO 8601 with a time zone (2026-01-01T00:00:00Z) or Unix ms, "
                             f"got {since[:40]!r}") from None
        except ValueError as e:
            if str(e).startswith("since "):
                raise
            raise ValueError(f"since must be ISO 8601 with a time zone (2026-01-01T00:00:00Z) or Unix ms, "
                             f"got {since[:40]!r}") from None
    return since_ms, params.get("strategy", [None])[-1]


def unknown_strategy_problem(strategy: str | None, known: tuple[str, ...] | None) -> str | None:
    """Why /history cannot answer for ``strategy``, or None (no strategy asked, or a known one;
    before the first publish the ids are not known yet and nothing is refused)."""
    if strategy is None or known is None or strategy in known:
        return None
    return (f"unknown strategy {strategy[:100]!r}; known: {', '.join(known) or 'none'} "
            "(leave out strategy for all of them)")


class Snapshot:
    """The committed /status body and the health verdict, swapped atomically."""

    def __init__(self) -> None:
        self.status_body = b'{"status":"starting"}'
        #: Prometheus text for /metrics, rendered with each snapshot (``metrics`` adds what the
        #: health verdict says at the time of the scrape)
        self.metrics_body = b""
        #: the /history answer for (since_ms, strategy): reads the history file
        self.history: Callable[[int | None, str | None], bytes] = lambda since_ms, strategy: b'{"points":[]}'
        self.health: Callable[[], tuple[int, dict]] = lambda: (503, {"status": "starting"})
        #: runs a control command on the main loop: (kind, args, by) -> result
        self.control: Callable[[str, dict, str], dict] | None = None
        self._ids: tuple[bytes, tuple[str, ...] | None] = (b"", None)

    def metrics(self) -> bytes:
        """The /metrics body: the published samples, and those derived from ``health()`` now
        (one rule for /health and go_trader_up, evaluated at the scrape, not at the last publish)."""
        code, _ = self.health()
        return self.metrics_body + metrics.health_text(code)

    def strategy_ids(self) -> tuple[str, ...] | None:
        """The configured strategy ids, as the published /status lists them; None before the
        first publish (parsed once per published body)."""
        body = self.status_body
        seen, ids = self._ids  # one tuple: a concurrent request sees a pair that belongs together
        if body is not seen:
            try:
                strategies = json.loads(body).get("strategies")
                ids = tuple(s["id"] for s in strategies) if isinstance(strategies, list) else None
            except (ValueError, TypeError, KeyError, AttributeError):
                ids = None
            self._ids = (body, ids)
        return ids


@dataclass(frozen=True)
class _Context:
    """What every request needs (the handler's ``server``)."""

    snapshot: Snapshot
    token: str | None
    bind_host: str


class _Handler(BaseHTTPRequestHandler):
    server_version = "go-trader"
    sys_version = ""
    server: _Context  # type: ignore[assignment]

    def __init__(self, request: socket.socket, client_address: tuple, server: _Context, *, head: bytes,
                 deadline_mono: float) -> None:
        self._head, self._deadline_mono = head, deadline_mono
        super().__init__(request, client_address, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        # the front already read the header block; reads go on from there until the deadline
        self.connection = self.request
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, self._head, self._deadline_mono))
        self.wfile = SocketWriter(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: the daemon logs
        pass

    def _send(self, code: int, body: bytes, extra: dict[str, str] | None = None, *,
              content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        self.close_connection = True
        self._send(code, json.dumps({"error": message}).encode(), extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, long URL, ...) as JSON, never HTML or HTTP/0.9."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.command = getattr(self, "command", None) or "GET"
        self._error(code, message or HTTPStatus(code).phrase)

    def parse_request(self) -> bool:
        """http.server's parsing, then the Host check (before any method or path is looked at)."""
        if not super().parse_request():
            return False
        problem = host_problem(self.headers.get_all("Host") or [], self.request_version, self.server.token,
                               self.server.bind_host)
        if problem:
            if self.request_version == "HTTP/0.9":  # 0.9 has no status line: answer as 1.0 does
                self.request_version = "HTTP/1.0"
            self._error(*problem)
            return False
        return True

    def _authorized(self) -> bool:
        token = self.server.token
        return not token or token_matches(self.headers.get("Authorization"), token)

    def _unauthorized(self) -> None:
        self._error(401, "missing or wrong bearer token (Authorization: Bearer $GO_TRADER_STATUS_TOKEN)",
                    {"WWW-Authenticate": "Bearer"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if len(self.path) > MAX_URL:
            return self._error(414, "URL too long")
        path, _, query = self.path.partition("?")
        if path not in GET_ENDPOINTS:
            return self._error(404, f"no such endpoint {path[:100]!r}; use one of {', '.join(GET_ENDPOINTS)}")
        if path == "/":  # the page holds no data: it asks for the token and fetches the endpoints below with it
            return self._send(200, DASHBOARD_HTML, DASHBOARD_HEADERS, content_type="text/html; charset=utf-8")
        if not self._authorized():
            return self._unauthorized()
        snap = self.server.snapshot
        if path == "/status":
            return self._send(200, snap.status_body)
        if path == "/metrics":
            return self._send(200, snap.metrics(), content_type=METRICS_CONTENT_TYPE)
        if path == "/history":
            try:
                since_ms, strategy = parse_history_query(query)
            except ValueError as e:
                return self._error(400, str(e))
            problem = unknown_strategy_problem(strategy, snap.strategy_ids())
            if problem:
                return self._error(404, problem)
            return self._send(200, snap.history(since_ms, strategy))
        code, doc = snap.health()
        return self._send(code, json.dumps(doc).encode())

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path in GET_ENDPOINTS:
            return self._not_allowed()
        if path not in CONTROL:
            return self._error(404, f"no such endpoint {path[:100]!r}; POST to one of {', '.join(CONTROL)}")
        if not self.server.token:
            return self._error(403, f"control endpoints are off: {TOKEN_HINT}")
        problem = cross_site_problem(self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site"),
                                     self.headers.get("Host"))
        if problem:
            return self._error(403, problem)
        if not self._authorized():
            return self._unauthorized()
        try:
            raw = read_body(self.headers, self.rfile, MAX_BODY)
        except BodyError as e:
            return self._error(e.code, e.message)
        except TimeoutError:
            return self._error(408, f"the body did not arrive within {REQUEST_TIMEOUT_S:g}s of the headers")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "body must be a JSON object")
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            return self._error(400, "body must be a JSON object of strings")
        snap = self.server.snapshot
        if snap.control is None:
            return self._error(503, "the daemon is not accepting commands yet")
        name = body.pop("by", None) or "unnamed"
        # at the boundary, as request_id is: what cannot be saved is refused here, never queued
        problem = text_problem("by", name, BY_HTTP_MAX_CHARS) or request_problem(body, name)
        if problem:
            return self._error(400, problem)
        by = f"{name} (http {self.client_address[0]})"
        result = snap.control(CONTROL[path], body, by)
        error = str(result.get("error", ""))
        code = 202 if result.get("queued") else 200 if not error else (
            404 if error.startswith("unknown") else 409 if "halted" in error else 400)
        return self._send(code, json.dumps(result).encode())

    def _not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed here",
                    {"Allow": "GET, HEAD" if self.path.split("?", 1)[0] in GET_ENDPOINTS else "POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class StatusServer:
    """The status server on ``host:port`` (IPv4 or IPv6, as the host is); serves on its own thread.

    ``max_connections`` defaults to what the descriptor limit allows (http_conn.connection_cap).
    """

    def __init__(self, host: str, port: int, snapshot: Snapshot, token: str | None, *,
                 max_connections: int | None = None, header_timeout_s: float = HEADER_TIMEOUT_S) -> None:
        if not is_loopback(host) and not token:
            raise ConfigError([f"status.host: binding the status server to {host} (not loopback) needs a bearer "
                               "token: set GO_TRADER_STATUS_TOKEN, or bind to 127.0.0.1"])
        try:
            self.listener = bind_listener(host, port)
        except socket.gaierror as e:
            raise ConfigError([f"status.host: {host!r} is not an address this machine can bind ({e}); "
                               "use an IP address such as 127.0.0.1 or ::1"]) from e
        self.host = host
        self._context = _Context(snapshot, token, host)
        self.front = ConnectionFront(self.listener, self._serve,
                                     max_connections or connection_cap(nofile_soft_limit()),
                                     header_timeout_s=header_timeout_s)
        self._thread = threading.Thread(target=self.front.serve_forever, name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (a wildcard bind is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{url_host(host)}:{self.port}"

    def _serve(self, sock: socket.socket, head: bytes, address: tuple, deadline_mono: float) -> None:
        _Handler(sock, address, self._context, head=head, deadline_mono=deadline_mono)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port; also right for a server bound but never started."""
        self.front.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        else:  # never started: the listener is ours to close
            self.listener.close()
