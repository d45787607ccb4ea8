"""Notifications through the real delivery process against a fake Bot API and webhook on 127.0.0.1:
order, rate limits, 429 retry_after, 5xx and timeouts with backoff, the 4096 split, bursts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from scheduler.clock import SystemClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from scheduler.notify.text import utf16_units
from scheduler.state_store import load_state
from tests.fake_telegram import TOKEN, FakeTelegram, Fault
from tests.integration.harness import spot, write_config

CHAT = 42


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    monkeypatch.setenv("GO_TRADER_TELEGRAM_TOKEN", TOKEN)
    with FakeTelegram() as f:
        monkeypatch.setenv("GO_TRADER_WEBHOOK_URL", f"{f.url}/webhook/SECRET-PATH")
        yield f


@contextmanager
def running(tmp_path: Path, notifications: dict[str, Any], strategies: list[dict] | None = None,
            **overrides: Any) -> Iterator[Daemon]:
    config = write_config(tmp_path, strategies or [spot("s1")], notifications=notifications, **overrides)
    d = Daemon(load_config(config), config, clock=SystemClock(), state_path=tmp_path / "state.json",
               log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    try:
        yield d
    finally:
        d.notify.stop(d, "stopped")
        d.close()


def telegram(fake: FakeTelegram, **extra: Any) -> dict[str, Any]:
    return {"telegram": {"chat_ids": [CHAT], "api_base": fake.url, "chat_interval_s": 0.05, **extra},
            "summary_interval_hours": 0}


def pump(d: Daemon, done: Callable[[], Any], timeout_s: float = 60.0) -> None:
    """The main loop's part, until ``done`` (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out; notifications: {d.notify.status(d)}"
        d.process_commands()
        d.notify.tick(d)
        time.sleep(0.05)


def say(d: Daemon, *texts: str) -> None:
    for t in texts:
        d.notify.enqueue(d.state, "test", t, d.clock.now())
    d.notify._save(d)


def test_messages_arrive_in_order_within_each_chats_rate(tmp_path: Path, fake: FakeTelegram) -> None:
    group = -1001
    cfg = telegram(fake, chat_ids=[CHAT, group], chat_interval_s=0.3, group_interval_s=0.8)
    with running(tmp_path, cfg) as d:
        texts = [f"message {i}" for i in range(6)]
        say(d, *texts)
        pump(d, lambda: len(fake.texts(CHAT)) == 6 and len(fake.texts(group)) == 6)
        assert fake.texts(CHAT) == texts and fake.texts(group) == texts
        for chat, gap in ((CHAT, 0.3), (group, 0.8)):
            at = fake.sent_at[chat]
            assert all(b - a >= gap - 0.02 for a, b in zip(at, at[1:], strict=False)), (chat, at)
        pump(d, lambda: not load_state(tmp_path / "state.json").outbox)  # acknowledged, saved, pruned
        assert d.notify.status(d)["destinations"][f"telegram:{CHAT}"]["delivered_total"] == 6


def test_a_burst_of_30_fills_is_one_message_listing_every_fill(tmp_path: Path, fake: FakeTelegram) -> None:
    strategies = [spot(f"s{i:02d}") for i in range(30)]
    with running(tmp_path, telegram(fake), strategies, risk={"max_exposure_pct": 100.0}) as d:
        report = d.run_cycle(force=True)
        assert report is not None and report.fills == 30
        pump(d, lambda: fake.texts(CHAT))
        time.sleep(0.3)
        pump(d, lambda: not d.state.outbox)
        [text] = fake.texts(CHAT)
        lines = text.splitlines()
        assert lines[0] == "go-trader cycle 1: 30 fills" and len(lines) == 31
        assert [line.split(":")[0] for line in lines[1:]] == [f"• s{i:02d}" for i in range(30)]


def test_a_long_message_is_split_at_4096_never_cut(tmp_path: Path, fake: FakeTelegram) -> None:
    text = "\n".join(f"line {i}: " + "😀é" * (i % 50) for i in range(600)) + "\n" + "x" * 5000
    with running(tmp_path, telegram(fake)) as d:
        say(d, text, "after")
        pump(d, lambda: fake.texts(CHAT)[-1:] == ["after"])
        parts = fake.texts(CHAT)[:-1]
        assert len(parts) >= 3 and "".join(parts) == text
        assert all(utf16_units(p) <= 4096 for p in parts)


def test_429_waits_retry_after_before_the_next_try(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.fail(Fault(429, retry_after=2))
    with running(tmp_path, telegram(fake)) as d:
        say(d, "one", "two")
        pump(d, lambda: len(fake.texts(CHAT)) == 2)
        assert fake.texts(CHAT) == ["one", "two"]
        (t429, _, code), (t_next, _, _) = fake.attempts[0], fake.attempts[1]
        assert code == 429 and t_next - t429 >= 2.0, fake.attempts


def test_5xx_and_timeouts_are_retried_with_growing_backoff(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.fail(Fault(500), Fault(502), Fault(0, hang_s=2.0))
    with running(tmp_path, {**telegram(fake), "timeout_s": 1.0}) as d:
        say(d, "hello")
        pump(d, lambda: fake.attempts and fake.attempts[0][2] == 500 and d.notify.runtime[f"telegram:{CHAT}"].errors)
        status = d.notify.status(d)["destinations"][f"telegram:{CHAT}"]
        assert "HTTP 500" in status["last_error"] and status["pending"] == 1  # kept and visible
        pump(d, lambda: fake.texts(CHAT))
        assert fake.texts(CHAT) == ["hello"]
        times = [t for t, _, _ in fake.attempts]
        assert [code for _, _, code in fake.attempts] == [500, 502, 0, 200]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps[0] >= 1.0 and gaps[1] >= 2.0 and gaps[2] >= 1.0 + 4.0, gaps  # backoff 1, 2, 4 s (+ the timeout)
        pump(d, lambda: d.notify.status(d)["destinations"][f"telegram:{CHAT}"]["consecutive_errors"] == 0)


def test_webhook_posts_discord_and_slack_json_and_retries(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.fail(Fault(500), Fault(429, retry_after=1))
    with running(tmp_path, {"webhook": {"max_chars": 200, "interval_s": 0.0}, "summary_interval_hours": 0}) as d:
        long = "\n".join(f"fill {i} " + "y" * 30 for i in range(20))
        say(d, "short", long)
        pump(d, lambda: d.notify.runtime["webhook"].errors)
        error = d.notify.status(d)["destinations"]["webhook"]["last_error"]
        assert "HTTP 500" in error and "SECRET-PATH" not in error  # the URL is a secret
        pump(d, lambda: not outbox_of(tmp_path))
        posts = fake.webhook_posts
        assert posts[0] == {"content": "short", "text": "short"}
        assert all(set(p) == {"content", "text"} and p["content"] == p["text"] and len(p["text"]) <= 200
                   for p in posts)
        assert "".join(p["text"] for p in posts[1:]) == long


def outbox_of(folder: Path) -> list:
    state = load_state(folder / "state.json")
    return state.outbox if state else []


def test_undeliverable_messages_are_kept_bounded_and_counted(tmp_path: Path, fake: FakeTelegram,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO_TRADER_TELEGRAM_TOKEN")
    with running(tmp_path, {**telegram(fake), "max_messages": 10}) as d:
        say(d, *[f"m{i}" for i in range(15)])
        d.notify.tick(d)
        status = d.notify.status(d)
        assert status["outbox_messages"] == 10 and status["dropped"] == 5
        dest = status["destinations"][f"telegram:{CHAT}"]
        assert dest["pending"] == 10 and "GO_TRADER_TELEGRAM_TOKEN is not set" in dest["last_error"]
        assert d.snapshot.status_body and b'"dropped":5' in d.snapshot.status_body or d._publish() is None
        d._publish()
        assert b'"dropped":5' in d.snapshot.status_body
        monkeypatch.setenv("GO_TRADER_TELEGRAM_TOKEN", TOKEN)
        d.notify.runtime[f"telegram:{CHAT}"].next_attempt_mono = 0.0
        pump(d, lambda: len(fake.texts(CHAT)) == 10)
        assert fake.texts(CHAT) == [f"m{i}" for i in range(5, 15)]


@pytest.mark.slow
def test_kill_9_between_queueing_and_sending_delivers_every_message_exactly_once(tmp_path: Path,
                                                                                 fake: FakeTelegram) -> None:
    from collections import Counter

    from scheduler.state_store import read_trade_log
    from tests.integration.harness import DaemonProcess, wait_for

    def config(interval_s: int) -> Path:
        return write_config(tmp_path, [spot("s1", interval_seconds=interval_s)], interval_seconds=interval_s,
                            notifications=telegram(fake, chat_interval_s=0.4), runner={"timeout_s": 10})

    env = {"ALTERNATE_PERIOD_S": "1", "GO_TRADER_TELEGRAM_TOKEN": TOKEN}  # a fill every cycle
    state_path = tmp_path / "state.json"
    # 1. the channel is down: messages are queued and saved, then the daemon dies unsent
    fake.fail(*[Fault(503)] * 100_000)
    d = DaemonProcess(config(1), env)
    wait_for(lambda: sum(m.kind == "cycle" for m in outbox_of(tmp_path)) >= 6, 90, "queued messages")
    d.kill()
    d.wait()
    assert not any(fake.sent.values())
    with fake.lock:
        fake.faults.clear()
    # 2. killed right after sends: the delivery journal says what was confirmed
    for _ in range(3):
        d = DaemonProcess(config(1), env)
        before = len(fake.texts(CHAT))
        wait_for(lambda b=before: len(fake.texts(CHAT)) >= b + 2, 60, "sends")
        time.sleep(0.1)
        d.kill()
        d.wait()
    # 3. a last run with nothing due delivers the rest, and stops cleanly
    d = DaemonProcess(config(600), env)
    d.port()  # serving: its signal handlers are in place
    wait_for(lambda: not [m for m in outbox_of(tmp_path) if m.kind == "cycle"], 60, "an empty outbox")
    d.signal(15)
    assert d.wait() == 0
    texts = fake.texts(CHAT)
    cycles = Counter(int(t.split()[2].rstrip(":")) for t in texts if t.startswith("go-trader cycle "))
    filled = {t.cycle for t in read_trade_log(state_path)}
    assert len(filled) >= 6, "too few fills for the test to mean anything"
    assert set(cycles) == filled and set(cycles.values()) == {1}, cycles  # every one, exactly once
    assert texts[-1].startswith("go-trader stopped")
    assert not (tmp_path / "state.notify-acks.jsonl").exists()


def test_a_halt_is_told_from_memory_and_saved_with_the_first_save_that_works(tmp_path: Path,
                                                                            fake: FakeTelegram) -> None:
    with running(tmp_path, telegram(fake)) as d:
        d._halt("test: the disk is full", d.state.model_copy(deep=True))  # as _commit does when save_state fails
        pump(d, lambda: any("TRADING STOPPED" in t for t in fake.texts(CHAT)))
        assert not [m for m in outbox_of(tmp_path) if m.kind == "halt"] and d.halted  # nothing could be saved
        d._retry_save()
        assert d.halted is None
        pump(d, lambda: any("trading resumes" in t for t in fake.texts(CHAT)))
        pump(d, lambda: not outbox_of(tmp_path))
        assert sum("TRADING STOPPED" in t for t in fake.texts(CHAT)) == 1


def test_a_periodic_summary_lists_every_strategy(tmp_path: Path, fake: FakeTelegram) -> None:
    with running(tmp_path, {**telegram(fake), "summary_interval_hours": 0.0005},  # every 1.8 s
                 [spot("alpha"), spot("beta")]) as d:
        d.run_cycle(force=True)
        pump(d, lambda: any(t.startswith("go-trader summary") for t in fake.texts(CHAT)))
        summary = next(t for t in fake.texts(CHAT) if t.startswith("go-trader summary"))
        assert "Account: $" in summary and "• alpha: $" in summary and "• beta: $" in summary
        assert "holding BTC/USDT" in summary


@pytest.mark.parametrize("mode", ["fork", "subprocess"])
def test_delivery_jobs_fork_from_a_zygote_with_only_the_delivery_module_preloaded(tmp_path: Path,
                                                                                  fake: FakeTelegram,
                                                                                  mode: str) -> None:
    """A delivery costs a fork, not a python start (runner.mode "subprocess": a plain python);
    the zygote is its own process: the delivery module is never imported into the daemon."""
    from scheduler.runner import ForkLauncher, SubprocessLauncher

    with running(tmp_path, telegram(fake), runner={"mode": mode}) as d:
        say(d, "one")
        pump(d, lambda: fake.texts(CHAT) == ["one"])
        launcher = d.notify._launchers["deliver"]
        say(d, "two")  # through the same guardian
        pump(d, lambda: fake.texts(CHAT) == ["one", "two"])
        assert d.notify._launchers["deliver"] is launcher
        argv = launcher._proc.args  # type: ignore[attr-defined]
    if mode == "fork":
        assert type(launcher) is ForkLauncher and argv[-2:] == ["--preload", "scheduler.notify.deliver"]
    else:
        assert type(launcher) is SubprocessLauncher
