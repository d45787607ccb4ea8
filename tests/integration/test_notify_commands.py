"""Telegram commands through the real poller process and the daemon's control path: allow-listed
chats and users only, /long sized by the backend through the risk rules, replays never trade
twice, every command audited."""

from __future__ import annotations

import json
from pathlib import Path

from scheduler.engine import risk
from scheduler.notify import messages
from scheduler.state_store import audit_log_path, load_state
from tests.fake_telegram import FakeTelegram
from tests.integration.harness import spot
from tests.integration.test_notify import CHAT, fake, pump, running, telegram  # noqa: F401 - a fixture

GROUP, MEMBER, STRANGER = -1002, 7, 555


def test_commands_from_allow_listed_chats_go_through_the_control_path(tmp_path: Path, fake: FakeTelegram) -> None:  # noqa: F811
    cfg = telegram(fake, commands={"chat_ids": [CHAT, GROUP], "user_ids": [MEMBER], "poll_timeout_s": 1})
    strategies = [spot("alpha"), spot("beta")]
    with running(tmp_path, cfg, strategies) as d:
        risk.add_block(d.state.sleeves["beta"].risk.blocks, "MAX_DRAWDOWN", "test: 61% below peak",
                       d.clock.now(), None)
        first = fake.add_update("/status", CHAT)
        fake.add_update("/long BTC/USDT alpha", CHAT)
        fake.add_update("/long BTC/USDT beta", CHAT)
        fake.add_update("/long BTC/USDT alpha", STRANGER)
        fake.add_update("/status", STRANGER)
        fake.add_update("/status", GROUP, user_id=8, chat_type="supergroup")  # a group member not listed
        fake.add_update("/pnl", GROUP, user_id=MEMBER, chat_type="supergroup", username="bob")
        last = fake.add_update("/long BTC", CHAT)  # two strategies trade it: the answer says which to name
        pump(d, lambda: any(t.startswith("2 strategies") for t in fake.texts(CHAT)) and fake.texts(GROUP))
        answers = fake.texts(CHAT)
        status, alpha, beta, which = (next(a for a in answers if a.startswith(p)) for p in
                                      ("go-trader: running", "alpha: BUY", "beta: not traded", "2 strategies"))
        assert "account equity" in status
        [trade] = d.state.sleeves["alpha"].trades
        assert trade.reason == "manual" and trade.side == "buy" and f"{messages.quantity(trade.quantity)} BTC/USDT" in alpha
        assert "MAX_DRAWDOWN" in beta and not d.state.sleeves["beta"].trades  # the block answers, nothing trades
        assert "/long BTC alpha" in which
        assert fake.texts(GROUP) == [next(t for t in fake.texts(GROUP))] and "alpha:" in fake.texts(GROUP)[0]
        assert STRANGER not in fake.sent and 8 not in fake.sent
        log = (tmp_path / "logs" / "scheduler.log").read_text()
        assert log.count(f"ignored a message from chat {STRANGER}") == 1  # logged once per chat
        assert f"ignored a message from chat {GROUP}" in log
        pump(d, lambda: (load_state(tmp_path / "state.json").notify.telegram_offset or 0) == last + 1)

        # a poll answered again (the offset lost, as after a crash before its save): no second trade
        d.state.notify.telegram_offset = first
        if d.notify._poll is not None:  # the running long-poll session asks from the newer offset: end it
            d.notify._poll.stop.set()
        sent = len(fake.texts(CHAT))
        pump(d, lambda: len(fake.texts(CHAT)) >= sent + 4)
        again = next(a for a in fake.texts(CHAT)[sent:] if a.startswith("alpha:"))
        assert "answered before" in again and len(d.state.sleeves["alpha"].trades) == 1

    audit = [json.loads(line) for line in audit_log_path(tmp_path / "state.json").read_text().splitlines()]
    longs = [a for a in audit if a["action"] == "telegram /long BTC/USDT alpha"]
    assert longs and longs[0]["by"] == f"telegram user {CHAT} (alice) in chat {CHAT}" and "BUY" in longs[0]["detail"]
    assert any(a["action"] == "telegram /pnl" and "(bob) in chat" in a["by"] for a in audit)
    assert not any(str(STRANGER) in a["by"] for a in audit)


def test_a_restart_neither_replays_nor_skips_commands(tmp_path: Path, fake: FakeTelegram) -> None:  # noqa: F811
    cfg = telegram(fake, commands={"chat_ids": [CHAT], "poll_timeout_s": 1})
    with running(tmp_path, cfg, [spot("alpha")]) as d:
        fake.add_update("/long BTC/USDT", CHAT)
        pump(d, lambda: any(t.startswith("alpha: BUY") for t in fake.texts(CHAT)))
        pump(d, lambda: load_state(tmp_path / "state.json").notify.telegram_offset)
    (tmp_path / "daemon2").mkdir()
    with running(tmp_path, cfg, [spot("alpha")]) as d:
        fake.add_update("/positions", CHAT)
        pump(d, lambda: any("BTC/USDT @" in t for t in fake.texts(CHAT)))
        assert len(d.state.sleeves["alpha"].trades) == 1
        assert sum(t.startswith("alpha: BUY") for t in fake.texts(CHAT)) == 1
