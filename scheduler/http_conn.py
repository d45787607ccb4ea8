"""The status server's connections: few, short-lived, and never a thread for a slow client.

A client that opens a connection and never finishes its headers must not be able
to use up the daemon's descriptors (state saves, logs and checker pipes need
them; under systemd's default soft limit of 1,024 a thread per connection ran
out and trading halted). So:

- one thread (``ConnectionFront.serve_forever``) accepts connections and reads
  each request's header block without blocking, in a selector;
- only a request whose headers are complete gets a thread (``dispatch``), with
  a deadline for the rest of the request and a timeout for the answer;
- at most ``cap`` client connections are open at once (``connection_cap``: the
  descriptor soft limit less a reserve for the daemon, and never more than
  ``MAX_CONNECTIONS``). At the cap a new connection pushes out the oldest one
  still sending its headers (a slow client loses its place to a fresh one,
  so a flood of idle connections cannot lock out /health), or, when every
  slot is a request being answered, is answered 503 and closed at once;
- a connection that has not sent its headers within ``HEADER_TIMEOUT_S`` is
  answered 408 and closed (answered sockets wait up to LINGER_S for the
  client's FIN, at most CLOSING_MAX of them, so the answer is not lost to RST);
- a request that is not a GET or HEAD (a control POST: its body arrives after the
  headers, and its answer waits for the main loop), or that announces a body, may
  hold its slot for seconds, and a slot that is answering cannot be pushed out; so
  at most ``body_slots(cap)`` of them run at once and the next is answered 503:
  slow bodies never take the slots /health and /status are answered in;
- when accept() itself fails for want of descriptors (EMFILE, ENFILE, ...)
  the listener rests for ``ACCEPT_PAUSE_S`` instead of spinning on it.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import logging
import re
import resource
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("go_trader.http")

MAX_CONNECTIONS = 64  # absolute cap: a status server has a handful of legitimate clients
MIN_CONNECTIONS = 4  # even under a tiny descriptor limit, /health must get a slot
HEADER_TIMEOUT_S = 5.0  # from accept to the end of the header block
REQUEST_TIMEOUT_S = 5.0  # the rest of the request (its body) once the headers are in
WRITE_TIMEOUT_S = 5.0  # the whole answer (sendall's timeout covers all of it)
HEAD_LIMIT_BYTES = 65_536 + 8_192  # past this, hand over: http.server answers 414/431 with its own limits
ACCEPT_BATCH = 16  # accepts per loop turn, so reads of waiting clients are not starved by a burst
ACCEPT_PAUSE_S = 0.5  # rest for the listener after accept() ran out of descriptors
LISTEN_BACKLOG = 128  # a burst of connects must not overflow the queue (a dropped SYN costs the client 1 s)
LINGER_S = 1.0  # at most this long, and LINGER_BYTES, reading away an unwanted body before close
LINGER_BYTES = 1_048_576
CLOSING_MAX = 16  # answered (503/408) sockets kept open until the client's FIN; counted in the reserve
_CLOSING = object()  # selector data of those sockets
_POLL_S = 0.2  # how soon stop() is noticed
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def _canned(status: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


_BUSY = _canned("503 Service Unavailable", "the status server is busy; retry in a second", "Retry-After: 1\r\n")
_BODIES_BUSY = _canned("503 Service Unavailable", "the status server is answering as many control requests "
                       "(requests with a body) as it takes at once; retry in a second", "Retry-After: 1\r\n")
#: methods answered at once from the snapshot; every other request may read a body and wait
_QUICK_METHODS = (b"GET", b"HEAD")
#: a header that announces a body (which the server reads, or reads away before closing)
_BODY_HEADER = re.compile(rb"\n(?:transfer-encoding[ \t]*:|content-length[ \t]*:(?![ \t]*0*[ \t]*\r?\n))")


def holds_slot(head: bytes) -> bool:
    """Whether a request (its header block) may keep its slot for seconds: anything but a GET or
    HEAD (a control POST waits for the main loop), and any request that announces a body (it is
    read, or read away before the connection closes, as slowly as the client sends it)."""
    method = head.lstrip(b"\r\n").split(b" ", 1)[0]
    return method not in _QUICK_METHODS or _BODY_HEADER.search(head.lower()) is not None


def body_slots(cap: int) -> int:
    """How many of the ``cap`` slots requests other than GET/HEAD may hold at once (a quarter,
    at least one): the rest stay free for /health and /status however slowly bodies arrive."""
    return max(1, cap // 4)


def connection_cap(soft_limit: int | None) -> int:
    """How many client connections the status server may hold, given RLIMIT_NOFILE's soft limit.

    The daemon keeps a reserve of max(64, a quarter of the limit) descriptors for its own
    work (state saves, logs, checker pipes); the server gets at most the rest, and never more
    than MAX_CONNECTIONS. ``None`` or RLIM_INFINITY means no limit to share.
    """
    if soft_limit is None or soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return MAX_CONNECTIONS
    reserve = max(64, soft_limit // 4)
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, soft_limit - reserve))


def nofile_soft_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def bind_listener(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on ``host``, of the family the host is (IPv4 or IPv6).

    Raises socket.gaierror when ``host`` names no address, OSError when it cannot be bound.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ipaddress.ip_address(address[0].split("%")[0]).is_unspecified:
            # "::" serves IPv4 too (whatever net.ipv6.bindv6only says): the daemon's endpoint
            # file names 127.0.0.1 for a wildcard bind
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: IPv6 literals in brackets (``::1`` -> ``[::1]``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class DeadlineReader(io.RawIOBase):
    """The request's bytes: first those the front already read, then the socket, until a deadline."""

    def __init__(self, sock: socket.socket, head: bytes, deadline_mono: float) -> None:
        super().__init__()
        self._sock, self._head, self._deadline = sock, memoryview(head), deadline_mono

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        remaining_s = self._deadline - time.monotonic()
        if remaining_s <= 0:
            raise TimeoutError(f"the request was not complete within {REQUEST_TIMEOUT_S:g}s")
        self._sock.settimeout(remaining_s)
        return self._sock.recv_into(buffer)


class SocketWriter(io.BufferedIOBase):
    """Unbuffered writes, each bounded by WRITE_TIMEOUT_S (a client that does not read is dropped)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        self._sock.settimeout(WRITE_TIMEOUT_S)
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


@dataclass
class _Pending:
    sock: socket.socket
    address: tuple
    accepted_mono: float
    head: bytearray = field(default_factory=bytearray)


#: runs one request on its own thread: (socket, header bytes read so far, client address, deadline)
Dispatch = Callable[[socket.socket, bytes, tuple, float], None]


class ConnectionFront:
    """Accepts connections and collects header blocks; hands complete requests to ``dispatch``."""

    def __init__(self, listener: socket.socket, dispatch: Dispatch, cap: int, *,
                 header_timeout_s: float = HEADER_TIMEOUT_S) -> None:
        self.listener, self.dispatch, self.cap = listener, dispatch, cap
        self.header_timeout_s = header_timeout_s
        self._timed_out = _canned("408 Request Timeout",
                                  f"the request headers took more than {header_timeout_s:g}s; send them at once")
        self._selector = selectors.DefaultSelector()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # by fd, oldest first
        self._closing: OrderedDict[int, tuple[socket.socket, float]] = OrderedDict()  # answered, awaiting FIN
        self._active = 0  # requests handed to a thread and not yet closed
        self._active_bodies = 0  # of those, the ones that are not GET/HEAD (see body_slots)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = False
        self._resume_mono = 0.0
        self.dropped = 0  # connections closed without an answer of ours (evicted or timed out)

    # -- the loop ---------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._listen(True)
        try:
            while not self._stop.is_set():
                try:
                    self.turn()
                except Exception:  # a bug here must not end /health for good: log it, rest, go on
                    log.exception("status server: unexpected error; going on in %gs", ACCEPT_PAUSE_S)
                    self._stop.wait(ACCEPT_PAUSE_S)
        finally:
            self._close_all()

    def turn(self) -> None:
        """One round: read what waiting clients sent, accept new ones, drop the late ones."""
        accept = False
        for key, _ in self._selector.select(self._wait_s()):
            if key.data is None:
                accept = True
            elif key.data is _CLOSING:
                self._read_closing(key.fileobj)  # type: ignore[arg-type]
            else:
                self._read(key.data)
        if accept:
            self._accept_batch()
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.accepted_mono < self.header_timeout_s:
                break
            self._drop(oldest, self._timed_out)
        while self._closing:
            sock, deadline = next(iter(self._closing.values()))
            if now < deadline:
                break
            self._close_answered(sock)
        if not self._listening and now >= self._resume_mono:
            self._listen(True)

    def stop(self) -> None:
        self._stop.set()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pending) + self._active

    def _wait_s(self) -> float:
        wait = _POLL_S
        if self._pending:
            first = next(iter(self._pending.values()))
            wait = min(wait, first.accepted_mono + self.header_timeout_s - time.monotonic())
        if self._closing:
            wait = min(wait, next(iter(self._closing.values()))[1] - time.monotonic())
        if not self._listening:
            wait = min(wait, self._resume_mono - time.monotonic())
        return max(wait, 0.0)

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self._selector.register(self.listener, selectors.EVENT_READ, None)
        elif not on and self._listening:
            self._selector.unregister(self.listener)
        self._listening = on

    # -- accepting --------------------------------------------------------------------------
    def _accept_batch(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _OUT_OF_DESCRIPTORS:
                    # the process is out of descriptors: give one back and rest, do not spin
                    log.warning("status server: accept() failed (%s); pausing %gs", e, ACCEPT_PAUSE_S)
                    if self._pending:
                        self._drop(next(iter(self._pending.values())), None)
                    self._listen(False)
                    self._resume_mono = time.monotonic() + ACCEPT_PAUSE_S
                    return
                continue  # ECONNABORTED and the like: that client is gone, take the next
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(False)
        with self._lock:
            full = len(self._pending) + self._active >= self.cap
        if full and self._pending:
            self._drop(next(iter(self._pending.values())), _BUSY)
        elif full:
            self._answer(sock, _BUSY)
            return
        entry = _Pending(sock, address, time.monotonic())
        try:
            self._selector.register(sock, selectors.EVENT_READ, entry)
        except (OSError, ValueError):
            sock.close()
            return
        with self._lock:
            self._pending[sock.fileno()] = entry

    # -- reading headers --------------------------------------------------------------------
    def _read(self, entry: _Pending) -> None:
        try:
            data = entry.sock.recv(65_536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._drop(entry, None)
        if not data:  # the client stopped sending: answer what came, if anything did
            return self._hand_over(entry) if entry.head else self._drop(entry, None)
        start = max(0, len(entry.head) - 3)
        entry.head += data
        if (entry.head.find(b"\n\r\n", start) >= 0 or entry.head.find(b"\n\n", start) >= 0
                or len(entry.head) >= HEAD_LIMIT_BYTES):
            self._hand_over(entry)

    def _hand_over(self, entry: _Pending) -> None:
        self._forget(entry)
        slow = holds_slot(bytes(entry.head))
        with self._lock:
            refused = slow and self._active_bodies >= body_slots(self.cap)
            if not refused:
                self._active += 1
                self._active_bodies += slow
        if refused:
            self.dropped += 1
            return self._answer(entry.sock, _BODIES_BUSY)
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        try:
            threading.Thread(target=self._run, args=(entry.sock, bytes(entry.head), entry.address, deadline, slow),
                             name="status-http-request", daemon=True).start()
        except RuntimeError:  # no thread to be had: this one client is refused, the server goes on
            self._release(entry.sock, slow)

    def _run(self, sock: socket.socket, head: bytes, address: tuple, deadline: float, slow: bool) -> None:
        try:
            sock.setblocking(True)
            self.dispatch(sock, head, address, deadline)
            _linger(sock)
        except OSError as e:  # the client went away (reset, broken pipe, timeout): nothing to tell
            log.debug("status server: client %s: %s", address, e)
        finally:
            self._release(sock, slow)

    def _release(self, sock: socket.socket, slow: bool) -> None:
        try:
            sock.close()
        finally:
            with self._lock:
                self._active -= 1
                self._active_bodies -= slow

    # -- closing ----------------------------------------------------------------------------
    def _forget(self, entry: _Pending) -> None:
        with self._lock:
            self._pending.pop(entry.sock.fileno(), None)
        try:
            self._selector.unregister(entry.sock)
        except (KeyError, ValueError):
            pass

    def _drop(self, entry: _Pending, answer: bytes | None) -> None:
        self._forget(entry)
        self.dropped += 1
        if answer is None:
            entry.sock.close()
        else:
            self._answer(entry.sock, answer)

    def _answer(self, sock: socket.socket, answer: bytes) -> None:
        """A canned answer without blocking, then close. Closing with bytes still coming sends RST,
        which can destroy the answer before the client reads it, so up to CLOSING_MAX answered
        sockets wait (at most LINGER_S) for the client's end, reading away what it sends."""
        try:
            sock.setblocking(False)
            sock.send(answer)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self._closing) >= CLOSING_MAX:
            sock.close()
            return
        self._selector.register(sock, selectors.EVENT_READ, _CLOSING)
        self._closing[sock.fileno()] = (sock, time.monotonic() + LINGER_S)

    def _read_closing(self, sock: socket.socket) -> None:
        try:
            if sock.recv(65_536):
                return  # more of what it was sending: read away, wait for its end
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_answered(sock)

    def _close_answered(self, sock: socket.socket) -> None:
        self._closing.pop(sock.fileno(), None)
        self._selector.unregister(sock)
        sock.close()

    def _close_all(self) -> None:
        for entry in list(self._pending.values()):
            self._drop(entry, None)
        for sock, _ in list(self._closing.values()):
            self._close_answered(sock)
        self._listen(False)
        self._selector.close()
        self.listener.close()


def _linger(sock: socket.socket) -> None:
    """Before closing, read away a request body the answer did not need (a refused upload):
    closing with unread bytes sends RST, which can destroy the answer before the client reads it."""
    # non-blocking for the look: a socket with a timeout (the writer's) makes Python poll for
    # that timeout before recv, MSG_DONTWAIT or not, so every answered client held its slot 5 s
    sock.setblocking(False)
    try:
        if not sock.recv(1, socket.MSG_PEEK):
            return
    except (BlockingIOError, InterruptedError):
        return  # nothing unread: close() sends FIN
    sock.setblocking(True)
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + LINGER_S
    for _ in range(LINGER_BYTES // 65_536):
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return
        sock.settimeout(remaining_s)
        if not sock.recv(65_536):
            return
