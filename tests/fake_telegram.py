"""A local fake of the Telegram Bot API (sendMessage, getUpdates) and of a webhook, on 127.0.0.1.

It records every message per chat with the time it arrived, and can be told to answer the
next requests with a 429 (and ``retry_after``), a 5xx, or to hang past the client's timeout.
getUpdates serves queued updates from the offset asked for, and long-polls like the real one.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "123456:TEST-token"


@dataclass
class Fault:
    status: int = 500  # 429, 5xx, or 0 for "hang for hang_s, then answer 200"
    retry_after: int | None = None
    hang_s: float = 0.0
    echo_path: bool = False  # the webhook's error body names the path, as Express's "Cannot POST /..." does


class FakeTelegram:
    def __init__(self, token: str = TOKEN, username: str | None = None) -> None:
        self.token = token
        self.username = username  # what getMe answers (None: getMe is a 404, as an API without it)
        self.sent: dict[int, list[str]] = defaultdict(list)
        self.sent_at: dict[int, list[float]] = defaultdict(list)
        self.attempts: list[tuple[float, int, int]] = []  # (monotonic time, chat id, status answered)
        self.faults: list[Fault] = []
        self.updates: list[dict[str, Any]] = []
        self.polls: list[int | None] = []  # offsets asked for
        self.webhook_posts: list[dict[str, Any]] = []
        self.lock = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeTelegram:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- scripting ----------------------------------------------------------------------------
    def fail(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def add_update(self, text: str, chat_id: int, user_id: int | None = None, chat_type: str = "private",
                   username: str = "alice") -> int:
        with self.lock:
            update_id = 1000 + len(self.updates)
            self.updates.append({"update_id": update_id, "message": {
                "message_id": update_id, "date": int(time.time()), "text": text,
                "chat": {"id": chat_id, "type": chat_type},
                "from": {"id": user_id if user_id is not None else chat_id, "is_bot": False, "username": username}}})
            self.lock.notify_all()
            return update_id

    def texts(self, chat_id: int) -> list[str]:
        with self.lock:
            return list(self.sent[chat_id])

    # -- serving ------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, status: int, doc: dict[str, Any],
                headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(doc).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(raw)
        except OSError:
            pass  # the client gave up (a timeout test)

    def handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if h.path.startswith("/webhook"):
            return self._webhook(h, body)
        prefix = f"/bot{self.token}/"
        if not h.path.startswith(prefix):
            return self._answer(h, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = h.path[len(prefix):]
        if method == "sendMessage":
            return self._send(h, body)
        if method == "getUpdates":
            return self._get_updates(h, body)
        if method == "getMe" and self.username:
            return self._answer(h, 200, {"ok": True, "result": {"id": 1, "is_bot": True, "username": self.username}})
        return self._answer(h, 404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def _take_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def _send(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        chat, text = body.get("chat_id"), body.get("text")
        fault = self._take_fault()
        now = time.monotonic()
        if fault is not None and fault.status == 429:
            with self.lock:
                self.attempts.append((now, chat, 429))
            return self._answer(h, 429, {"ok": False, "error_code": 429,
                                         "description": f"Too Many Requests: retry after {fault.retry_after}",
                                         "parameters": {"retry_after": fault.retry_after}})
        if fault is not None and fault.status >= 500:
            with self.lock:
                self.attempts.append((now, chat, fault.status))
            return self._answer(h, fault.status, {"ok": False, "error_code": fault.status,
                                                  "description": "Internal Server Error"})
        if fault is not None and fault.hang_s:  # the client times out: nothing is recorded as sent
            with self.lock:
                self.attempts.append((now, chat, 0))
            time.sleep(fault.hang_s)
            return self._answer(h, 504, {"ok": False, "error_code": 504, "description": "late"})
        if not isinstance(text, str) or not text.strip() or len(text.encode("utf-16-le")) // 2 > 4096:
            return self._answer(h, 400, {"ok": False, "error_code": 400, "description": "Bad Request: text"})
        with self.lock:
            self.attempts.append((now, chat, 200))
            self.sent[chat].append(text)
            self.sent_at[chat].append(now)
        self._answer(h, 200, {"ok": True, "result": {"message_id": len(self.sent[chat]), "chat": {"id": chat},
                                                     "text": text}})

    def _get_updates(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        offset = body.get("offset")
        wait_s = min(float(body.get("timeout", 0)), 30.0)
        deadline = time.monotonic() + wait_s
        with self.lock:
            self.polls.append(offset)
            while True:
                ready = [u for u in self.updates if offset is None or u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    break
                self.lock.wait(min(left, 0.2))
        self._answer(h, 200, {"ok": True, "result": ready[:int(body.get("limit", 100))]})

    def _webhook(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        fault = self._take_fault()
        if fault is not None and fault.status == 429:
            return self._answer(h, 429, {"message": "rate limited", "retry_after": fault.retry_after},
                                {"Retry-After": str(fault.retry_after)})
        if fault is not None and fault.echo_path:
            raw = f"Cannot POST {h.path} (also {urllib.parse.quote(h.path)})".encode()
            h.send_response(fault.status)
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
            return None
        if fault is not None and fault.status >= 500:
            return self._answer(h, fault.status, {"message": "oops"})
        with self.lock:
            self.webhook_posts.append(body)
        try:
            h.send_response(204)
            h.end_headers()
        except OSError:
            pass
