"""A part-sent message resumes where it stopped, whatever changed meanwhile (the channel's size
limit, other destinations' messages in the outbox), and a webhook's secret path never shows."""

from __future__ import annotations

import json
from pathlib import Path

from scheduler.notify.text import split_text
from tests.fake_telegram import FakeTelegram, Fault
from tests.integration.test_notify import CHAT, fake, outbox_of, pump, running, say, telegram

__all__ = ["fake"]  # the fixture, used by name

LONG = " ".join(f"word{i:03d}" for i in range(120))  # 959 characters: 5 parts at 200, 1 at 1000


def _webhook(max_chars: int) -> dict:
    return {"webhook": {"max_chars": max_chars, "interval_s": 0.0}, "summary_interval_hours": 0}


def test_a_larger_max_chars_after_a_restart_sends_the_rest_of_a_part_sent_message(tmp_path: Path,
                                                                                  fake: FakeTelegram) -> None:
    fake.fail(Fault(0), Fault(0), *[Fault(500)] * 1000)  # parts 1 and 2 go through, then the webhook breaks
    with running(tmp_path, _webhook(200)) as d:
        say(d, LONG)
        pump(d, lambda: d.notify.runtime["webhook"].errors)
    first_run = [p["text"] for p in fake.webhook_posts]
    assert first_run == split_text(LONG, 200)[:2]
    fake.faults.clear()
    with running(tmp_path, _webhook(1000)) as d:
        pump(d, lambda: not outbox_of(tmp_path))
    texts = [p["text"] for p in fake.webhook_posts if p["text"] != "stopped"]
    assert "".join(texts) == LONG  # every character once: none lost, none sent twice
    assert len(texts) == 3  # the two parts of 200, then the rest in one part of 1000


def test_a_smaller_max_chars_after_a_restart_resumes_too(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.fail(*[Fault(500)] * 1000)
    with running(tmp_path, _webhook(1000)) as d:
        say(d, LONG + " " + LONG)  # two parts at 1000
        pump(d, lambda: d.notify.runtime["webhook"].errors)
    fake.faults.clear()
    fake.fail(Fault(0), *[Fault(500)] * 1000)
    with running(tmp_path, _webhook(1000)) as d:
        pump(d, lambda: d.notify.runtime["webhook"].errors)
    assert len(fake.webhook_posts) == 1
    fake.faults.clear()
    with running(tmp_path, _webhook(300)) as d:
        pump(d, lambda: not outbox_of(tmp_path))
    texts = [p["text"] for p in fake.webhook_posts if p["text"] != "stopped"]
    assert "".join(texts) == LONG + " " + LONG and all(len(t) <= 1000 for t in texts)


def test_a_webhook_answer_that_echoes_the_secret_path_is_scrubbed(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.fail(Fault(500, echo_path=True), Fault(502, echo_path=True))
    with running(tmp_path, _webhook(2000)) as d:
        say(d, "hello")
        pump(d, lambda: d.notify.runtime["webhook"].errors)
        error = d.notify.status(d)["destinations"]["webhook"]["last_error"]
        assert error.startswith("HTTP 500: Cannot POST <secret>")
        log = (tmp_path / "logs" / "scheduler.log").read_text()
        pump(d, lambda: not outbox_of(tmp_path))
    assert "SECRET-PATH" not in error and "SECRET-PATH" not in log and "<secret>" in log
    assert "SECRET-PATH" not in (tmp_path / "logs" / "scheduler.log").read_text()


def test_a_failing_channel_shows_in_status_and_metrics_at_once(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.fail(*[Fault(500)] * 1000)
    with running(tmp_path, telegram(fake)) as d:
        say(d, "one")
        pump(d, lambda: d.notify.runtime[f"telegram:{CHAT}"].errors >= 2)
        published = json.loads(d.snapshot.status_body)["notifications"]["destinations"][f"telegram:{CHAT}"]
        assert published["failed_total"] >= 2 and published["last_error"].startswith("HTTP 500")
        metric = next(line for line in d.snapshot.metrics_body.decode().splitlines()
                      if line.startswith("go_trader_notifications_failed_total{"))
        assert f'destination="telegram:{CHAT}"' in metric and float(metric.rsplit(" ", 1)[1]) >= 2
        fake.faults.clear()


def test_the_status_command_shows_the_saved_outbox(tmp_path: Path, fake: FakeTelegram) -> None:
    """``go-trader status`` (no daemon) prints the notifications block from state.json: the
    queued messages and each destination's pending count, not "enabled": false."""
    from tests.integration.harness import run_cli

    fake.fail(*[Fault(500)] * 1000)
    with running(tmp_path, telegram(fake)) as d:
        say(d, "one", "two")
    out = run_cli("status", "--config", str(tmp_path / "config.json"),
                  env={"GO_TRADER_TELEGRAM_TOKEN": fake.token})
    assert out.returncode == 0, out.stderr
    notifications = json.loads(out.stdout)["notifications"]
    queued = len(outbox_of(tmp_path))  # the two, and what the start queued
    assert queued >= 2 and notifications["enabled"] is True and notifications["outbox_messages"] == queued
    dest = notifications["destinations"][f"telegram:{CHAT}"]
    assert dest["pending"] == queued and dest["consecutive_errors"] is None and "running daemon" in notifications["note"]
