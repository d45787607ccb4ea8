"""The delivery process: ``python -m scheduler.notify.deliver`` (a runner Job, never the daemon).

Reads one JSON request on stdin, prints one JSON document on stdout. Standard library
only (urllib): the Bot API and a webhook are one POST each, and a library would add
start-up time and memory to every delivery for nothing it needs.

mode "deliver": each destination's messages in order, split at its size limit, at most
one send per ``interval_s``; a destination stops at its first failure (so order holds)
and reports why, with Telegram's 429 ``retry_after``. Every confirmed part is appended
to the ``journal`` file (fsync) at once, before the next send: the daemon folds the
journal into the state, so a kill of the daemon, or of this process, between a send and
the state's save never sends that part again. The one duplicate window left is between
the API's answer and that fsync (a millisecond), and a request that timed out after the
server took it (the channel has no idempotency key: the part is sent again).

mode "poll": getUpdates long polls from ``offset`` for up to ``session_s``, until updates
come; the updates, reduced to what the daemon reads.

Secrets (the bot token, the webhook URL) come in the request, never in the environment
or argv, and are removed from every error text.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from scheduler.notify.text import split_text

USER_AGENT = "go-trader-notify/1"
#: bytes of an HTTP answer read at most (a Bot API answer is small; getUpdates of 100 updates too)
MAX_ANSWER_BYTES = 4 * 1_048_576


class SendError(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s, self.permanent = retry_after_s, permanent


def _scrub(text: str, secrets: list[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):  # the longest first: a URL before its own path
        if s:
            text = text.replace(s, "<secret>")
    return text


def url_secrets(url: str) -> list[str]:
    """The secret-bearing pieces of a webhook URL, as a server may echo them: the URL, its
    path and query (raw, percent-decoded and percent-encoded) and any password. A webhook's
    secret is its path ("Cannot POST /hooks/<secret>" is a usual answer), not only the URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password or ""
    except ValueError:  # a malformed URL (config checks refuse one): the whole of it is the secret
        return [url] if len(url) >= 4 else []
    pieces = [url, parts.query, password]
    if len(parts.path) > 1:
        pieces += [parts.path, parts.path.lstrip("/")]
        if parts.query:
            pieces.append(f"{parts.path}?{parts.query}")
    out = []
    for p in pieces:
        for form in (p, urllib.parse.unquote(p), urllib.parse.quote(p, safe="/")):
            if len(form) >= 4 and form not in out:  # a 1-3 character path ("/a") would scrub common words
                out.append(form)
    return out


def _retry_after(e: urllib.error.HTTPError, body: dict[str, Any]) -> float | None:
    params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    for value in (params.get("retry_after"), body.get("retry_after"), e.headers.get("Retry-After")):
        try:
            if value is not None and float(value) >= 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def post_json(url: str, payload: dict[str, Any], timeout_s: float, secrets: list[str]) -> dict[str, Any]:
    """POST ``payload``; the JSON answer ({} when it has none). SendError saying why not."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 - http(s) only (config)
            raw = r.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as e:
        raw = e.read(65536)
        e.close()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        what = str(body.get("description") or raw[:200].decode("utf-8", "replace")).strip()
        message = _scrub(f"HTTP {e.code}: {what}", secrets)
        if e.code == 429:
            raise SendError(message, _retry_after(e, body) or 1.0) from None
        raise SendError(message, permanent=400 <= e.code < 500) from None
    except (urllib.error.URLError, OSError, ValueError) as e:  # refused, reset, timed out, bad URL
        reason = getattr(e, "reason", e)
        raise SendError(_scrub(f"network error: {reason}", secrets)) from None
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


class Journal:
    """Appends each confirmed part (one JSON line, fsync) before anything else is sent."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def record(self, destination: str, message_id: int, chars: int, of: int) -> None:
        """``chars`` of message ``message_id``'s ``of`` characters are confirmed at ``destination``."""
        line = json.dumps({"d": destination, "id": message_id, "chars": chars, "of": of, "at": time.time()}) + "\n"
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)


def _secrets_of(dest: dict[str, Any]) -> list[str]:
    return [str(dest.get("token") or "")] + (url_secrets(str(dest["url"])) if dest.get("url") else [])


def _send_part(dest: dict[str, Any], text: str, timeout_s: float) -> None:
    if dest["kind"] == "telegram":
        url = f"{dest['api_base']}/bot{dest['token']}/sendMessage"
        body = post_json(url, {"chat_id": dest["chat_id"], "text": text, "disable_web_page_preview": True},
                         timeout_s, [dest["token"]])
        if body.get("ok") is not True:
            # scrubbed before it is cut: an answer may echo the request path, the token in it
            raise SendError(_scrub(f"the Bot API did not confirm the message: {body}", [dest["token"]])[:240])
    else:
        post_json(dest["url"], {"content": text, "text": text}, timeout_s, url_secrets(dest["url"]))


def deliver_one(dest: dict[str, Any], journal: Journal, timeout_s: float, deadline: float) -> dict[str, Any]:
    """Send one destination's messages in order until done, a failure, or the deadline. The
    first message resumes after its ``chars_sent`` characters confirmed before (cut at today's
    size limit, whatever the limit was then)."""
    delivered: list[int] = []
    partial: dict[str, int] | None = None
    interval = float(dest.get("interval_s", 1.0))
    next_at = time.monotonic() + float(dest.get("wait_s", 0.0))
    resume = max(0, int(dest.get("chars_sent", 0)))
    try:
        for i, m in enumerate(dest["messages"]):
            text = m["text"]
            done = min(resume, len(text)) if i == 0 else 0
            if done >= len(text) and i == 0 and resume:  # every part was confirmed before: say so once more
                journal.record(dest["name"], m["id"], len(text), len(text))
            for part in split_text(text[done:], int(dest["max_units"])) if done < len(text) or not text else ():
                if part.strip():  # a part of only blanks (no channel takes one) is nothing lost
                    if time.monotonic() >= deadline:
                        return {"delivered": delivered, "partial": partial, "error": None, "retry_after_s": None}
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    _send_part(dest, part, timeout_s)
                    next_at = time.monotonic() + interval
                done += len(part)
                journal.record(dest["name"], m["id"], done, len(text))
                partial = {"id": m["id"], "chars_sent": done} if done < len(text) else None
            delivered.append(m["id"])
    except SendError as e:
        return {"delivered": delivered, "partial": partial, "error": str(e), "retry_after_s": e.retry_after_s,
                "permanent": e.permanent}
    return {"delivered": delivered, "partial": partial, "error": None, "retry_after_s": None}


def deliver(request: dict[str, Any]) -> dict[str, Any]:
    journal = Journal(request["journal"])
    timeout_s = float(request.get("timeout_s", 10.0))
    deadline = time.monotonic() + float(request.get("deadline_s", 30.0))
    results: dict[str, Any] = {}

    def run(dest: dict[str, Any]) -> None:
        try:
            results[dest["name"]] = deliver_one(dest, journal, timeout_s, deadline)
        except Exception as e:  # noqa: BLE001 - one destination's bug must not lose the others' report
            results[dest["name"]] = {"delivered": [], "partial": None, "retry_after_s": None,
                                     "error": _scrub(f"internal error: {type(e).__name__}: {e}", _secrets_of(dest))[:300]}

    # destinations in parallel: a slow or rate-limited chat does not hold the others back (the
    # first in this thread: a thread less to start in a process that lives for one delivery)
    first, *others = request.get("destinations", []) or [None]
    threads = [threading.Thread(target=run, args=(d,), daemon=True) for d in others]
    for t in threads:
        t.start()
    if first is not None:
        run(first)
    for t in threads:
        t.join()
    return {"destinations": results}


def _update(u: dict[str, Any]) -> dict[str, Any] | None:
    """What the daemon reads of one update (a message's chat, sender and text)."""
    if not isinstance(u.get("update_id"), int):
        return None
    m = u.get("message") or u.get("edited_message") or u.get("channel_post") or {}
    chat, sender = m.get("chat") or {}, m.get("from") or {}
    name = sender.get("username") or " ".join(x for x in (sender.get("first_name"), sender.get("last_name")) if x)
    return {"update_id": u["update_id"], "chat_id": chat.get("id"), "chat_type": chat.get("type"),
            "user_id": sender.get("id"), "user_name": str(name or "")[:64],
            "text": m.get("text") if isinstance(m.get("text"), str) else None}


def poll_once(t: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    wait_s = int(t.get("poll_timeout_s", 0))
    payload: dict[str, Any] = {"timeout": wait_s, "limit": 100, "allowed_updates": ["message"]}
    if t.get("offset") is not None:
        payload["offset"] = t["offset"]
    try:
        body = post_json(f"{t['api_base']}/bot{t['token']}/getUpdates", payload, timeout_s + wait_s, [t["token"]])
    except SendError as e:
        return {"updates": [], "error": str(e), "retry_after_s": e.retry_after_s}
    if body.get("ok") is not True or not isinstance(body.get("result"), list):
        return {"updates": [], "error": _scrub(f"getUpdates did not answer ok: {body}", [t["token"]])[:240],
                "retry_after_s": None}
    updates = [x for u in body["result"] if isinstance(u, dict) and (x := _update(u))]
    return {"updates": updates, "error": None, "retry_after_s": None}


def bot_username(t: dict[str, Any], timeout_s: float) -> str | None:
    """This bot's username (getMe), so that a command addressed /cmd@name is run only when it is
    this bot's; None when the Bot API does not say (then the daemon goes by its config)."""
    try:
        body = post_json(f"{t['api_base']}/bot{t['token']}/getMe", {}, timeout_s, [t["token"]])
    except SendError:
        return None
    result = body.get("result") if body.get("ok") is True else None
    name = result.get("username") if isinstance(result, dict) else None
    return name if isinstance(name, str) and 0 < len(name) <= 64 else None


def poll(request: dict[str, Any]) -> dict[str, Any]:
    """Long polls from the daemon's offset, one after another for up to ``session_s``, until one
    brings updates or fails: one process start per session, not per poll (the start is most of
    a poll's CPU), and a command is still seen as soon as Telegram hands it out."""
    t = request["telegram"]
    session_end = time.monotonic() + float(request.get("session_s", 0.0))
    username = bot_username(t, float(request.get("timeout_s", 10.0)))
    while True:
        started = time.monotonic()
        answer = poll_once(t, float(request.get("timeout_s", 10.0)))
        if answer["updates"] or answer["error"] or time.monotonic() + int(t.get("poll_timeout_s", 0)) >= session_end:
            return {**answer, "bot_username": username}
        time.sleep(max(0.0, started + 1.0 - time.monotonic()))  # a poll_timeout_s of 0 must not spin


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    answer = poll(request) if request.get("mode") == "poll" else deliver(request)
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
