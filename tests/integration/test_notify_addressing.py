"""Telegram commands addressed to a bot by name (/close@some_bot): only this bot's run, through
the real poller process and the daemon's control path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler.state_store import audit_log_path, load_state
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.integration.harness import spot
from tests.integration.test_notify import CHAT, fake, pump, running, telegram  # noqa: F401 - a fixture

GROUP, MEMBER = -1003, 7


def _commands(fake: FakeTelegram, **telegram_extra: object) -> dict:  # noqa: F811
    return telegram(fake, commands={"chat_ids": [CHAT, GROUP], "user_ids": [MEMBER], "poll_timeout_s": 1},
                    **telegram_extra)


def _done(tmp_path: Path, last: int) -> bool:
    return (load_state(tmp_path / "state.json").notify.telegram_offset or 0) == last + 1


def test_with_a_known_username_only_this_bots_commands_run(tmp_path: Path, fake: FakeTelegram) -> None:  # noqa: F811
    with running(tmp_path, _commands(fake, bot_username="Trader_Bot"), [spot("alpha")]) as d:
        group = {"user_id": MEMBER, "chat_type": "supergroup"}
        fake.add_update("/long@otherbot BTC/USDT alpha", GROUP, **group)
        fake.add_update("/pnl@otherbot", GROUP, **group)
        fake.add_update("/pnl@trader_bot", GROUP, **group)  # usernames are case-insensitive
        last = fake.add_update("/long@TRADER_BOT BTC/USDT alpha", GROUP, **group)
        pump(d, lambda: _done(tmp_path, last) and len(fake.texts(GROUP)) >= 2)
        answers = fake.texts(GROUP)
        assert len(answers) == 2 and answers[0].startswith("alpha: $") and answers[1].startswith("alpha: BUY")
        assert len(d.state.sleeves["alpha"].trades) == 1  # the /long for the other bot did not trade
    audit = [json.loads(line)["action"] for line in audit_log_path(tmp_path / "state.json").read_text().splitlines()]
    assert audit == ["telegram /pnl", "telegram /long BTC/USDT alpha"]


def test_without_a_username_named_trades_are_refused_and_reads_answered(tmp_path: Path,
                                                                        fake: FakeTelegram) -> None:  # noqa: F811
    with running(tmp_path, _commands(fake), [spot("alpha")]) as d:
        group = {"user_id": MEMBER, "chat_type": "supergroup"}
        fake.add_update("/close@otherbot BTC x", GROUP, **group)
        fake.add_update("/long@otherbot BTC/USDT alpha", CHAT)
        fake.add_update("/weather@otherbot", GROUP, **group)  # another bot's command: no answer
        fake.add_update("/pnl@mybot", CHAT)
        last = fake.add_update("/long BTC/USDT alpha", CHAT)  # bare: everyone's, this bot's too
        answers = ("not traded: /long@otherbot", "alpha: $", "alpha: BUY")
        pump(d, lambda: _done(tmp_path, last) and fake.texts(GROUP)
             and all(any(t.startswith(a) for t in fake.texts(CHAT)) for a in answers))
        [group_answer] = fake.texts(GROUP)
        assert group_answer.startswith("not traded: /close@otherbot is addressed to a bot by name")
        assert "notifications.telegram.bot_username" in group_answer
        assert [t for t in fake.texts(CHAT) if t.startswith(answers)] == [  # in order, once each
            next(t for t in fake.texts(CHAT) if t.startswith(a)) for a in answers]
        assert len(d.state.sleeves["alpha"].trades) == 1
    audit = [json.loads(line)["action"] for line in audit_log_path(tmp_path / "state.json").read_text().splitlines()]
    assert "telegram /close@otherbot BTC x" in audit and not any("weather" in a for a in audit)


def test_the_username_is_learned_from_getme_without_a_config_key(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GO_TRADER_TELEGRAM_TOKEN", TOKEN)
    with FakeTelegram(username="Trader_Bot") as f, running(tmp_path, _commands(f), [spot("alpha")]) as d:
        f.add_update("/long@otherbot BTC/USDT alpha", CHAT)  # another bot's: no answer, no trade
        last = f.add_update("/pnl@trader_bot", CHAT)
        pump(d, lambda: _done(tmp_path, last) and f.texts(CHAT))
        assert len(f.texts(CHAT)) == 1 and f.texts(CHAT)[0].startswith("alpha: $")
        assert d.notify.bot_username == "Trader_Bot" and not d.state.sleeves["alpha"].trades
