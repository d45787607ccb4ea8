"""What a delivery job says when a channel answers badly never shows the secret it was sent
with: a Bot API that answers 200 with {"ok": false} and echoes the request path (the token in
it), and a webhook URL too malformed to parse."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scheduler.notify.deliver import deliver, poll_once, url_secrets

TOKEN = "123456:SECRETTOKENabcdef"


@pytest.fixture
def echoing() -> Iterator[str]:
    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"ok": False, "description": f"echo {self.path}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_unconfirmed_message_and_poll_never_show_the_token(echoing: str, tmp_path: Path) -> None:
    dest = {"name": "telegram:1", "kind": "telegram", "api_base": echoing, "token": TOKEN, "chat_id": 1,
            "max_units": 4096, "interval_s": 0, "messages": [{"id": 1, "text": "hello"}]}
    out = deliver({"journal": str(tmp_path / "journal"), "destinations": [dest], "timeout_s": 5, "deadline_s": 10})
    error = out["destinations"]["telegram:1"]["error"]
    assert error.startswith("the Bot API did not confirm the message") and "<secret>" in error, error
    assert TOKEN not in error and "SECRETTOKEN" not in error
    polled = poll_once({"api_base": echoing, "token": TOKEN, "poll_timeout_s": 0}, 5)
    assert polled["error"].startswith("getUpdates did not answer ok") and TOKEN not in polled["error"], polled


def test_a_malformed_webhook_url_is_all_secret_and_never_a_crash() -> None:
    assert url_secrets("http://[::1/hooks/X") == ["http://[::1/hooks/X"]


def test_rate_limits_do_not_lengthen_the_backoff_of_the_errors_after_them(tmp_path: Path) -> None:
    """Four 429s wait what they say; the first 500 after them waits 1 s, the next 2 s (not 16, 32)."""
    import time

    from scheduler.config import NotificationsConfig
    from scheduler.notify.service import NotifyService

    service = NotifyService(NotificationsConfig.model_validate({"webhook": {}}), tmp_path / "state.json", env={})
    rt = service.runtime["webhook"]
    for _ in range(4):
        service._failed("webhook", "HTTP 429", 5.0)
    assert 4.5 < rt.next_attempt_mono - time.monotonic() <= 5.0
    service._failed("webhook", "HTTP 500", None)
    assert 0.5 < rt.next_attempt_mono - time.monotonic() <= 1.0
    service._failed("webhook", "HTTP 500", None)
    assert 1.5 < rt.next_attempt_mono - time.monotonic() <= 2.0
    assert rt.errors == 6  # all of them count as errors in a row (/status's consecutive_errors)
