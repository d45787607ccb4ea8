"""The outbox's pure bookkeeping, its texts, the state schema v5, and the notifications config."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config import ConfigError, load_config, notification_problems
from scheduler.engine.errors import StateError
from scheduler.engine.models import SCHEMA_VERSION, LastCheck, State, new_sleeve
from scheduler.engine.step import Event
from scheduler.notify import messages, outbox
from scheduler.notify.commands import Command, Update, allowed, parse, resolve
from scheduler.notify.text import split_text, utf16_units
from scheduler.state_store import load_state, save_state

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DESTS = {"telegram:1": True, "telegram:2": True, "telegram:9": False}


def test_enqueue_ack_and_prune_deliver_every_message_once_per_destination() -> None:
    s = State()
    ids = [outbox.enqueue(s, "cycle", f"m{i}", NOW).id for i in range(5)]
    answer = outbox.enqueue(s, "answer", "only for 9", NOW, to="telegram:9").id
    assert ids == [1, 2, 3, 4, 5] and answer == 6 and s.notify.next_id == 7
    assert [m.id for m in outbox.pending(s, "telegram:9", False)] == [6]
    assert outbox.acknowledge(s, "telegram:1", True, 3) and not outbox.acknowledge(s, "telegram:1", True, 2)  # never back
    outbox.prune(s, DESTS)
    assert [m.id for m in s.outbox] == ids + [answer]  # telegram:2 has none yet
    outbox.acknowledge(s, "telegram:2", True, 5)
    outbox.acknowledge(s, "telegram:1", True, 5)
    outbox.prune(s, DESTS)
    assert [m.id for m in s.outbox] == [answer]
    outbox.acknowledge(s, "telegram:9", False, 6)
    outbox.prune(s, DESTS)
    assert s.outbox == [] and s.notify.cursors["telegram:1"].delivered_total == 5
    assert s.notify.cursors["telegram:9"].delivered_total == 1  # its own message only, not the 5 broadcasts


def test_parts_of_a_split_message_are_remembered_and_a_full_outbox_counts_what_it_drops() -> None:
    s = State()
    for i in range(12):
        outbox.enqueue(s, "cycle", f"m{i}", NOW)
    assert outbox.acknowledge(s, "telegram:1", True, None, partial_id=1, chars_sent=2)
    assert outbox.cursor(s, "telegram:1").chars_sent == 2
    assert not outbox.acknowledge(s, "telegram:1", True, None, partial_id=5, chars_sent=1)  # not its next message
    assert outbox.trim(s, 10, DESTS) == 2
    assert s.notify.dropped == 2 and [m.id for m in s.outbox][0] == 3
    assert outbox.cursor(s, "telegram:1").chars_sent == 0  # its next message went: start the next afresh
    assert [m.id for m in outbox.pending(s, "telegram:1", True)] == list(range(3, 13))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "\n", " ", "é", "😀", "\u2028", "\x00"])), st.integers(2, 50))
def test_split_never_drops_a_character_and_keeps_every_part_within_the_limit(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert "".join(parts) == text
    assert all(utf16_units(p) <= limit for p in parts)
    assert all(parts) or parts == [""]


def test_split_at_telegrams_4096_cuts_after_a_line_break() -> None:
    text = "\n".join(f"line {i} " + "😀" * 30 for i in range(400))
    parts = split_text(text, 4096)
    assert len(parts) > 1 and "".join(parts) == text
    assert all(p.endswith("\n") for p in parts[:-1]) and all(utf16_units(p) <= 4096 for p in parts)


def test_a_burst_of_fills_is_one_message_with_a_line_each() -> None:
    prev, new = State(cycle_count=4), State(cycle_count=5)
    events = [Event("fill", f"s{i}", NOW, {"side": "buy", "quantity": 0.5, "symbol": "BTC/USDT", "fill_price": 100.0,
                                            "fee_usd": 0.05, "reason": "signal"}) for i in range(30)]
    events += [Event("rejected", "s1", NOW, {"code": "MAX_EXPOSURE", "detail": "over the cap"}),
               Event("block", "account", NOW, {"code": "DAILY_LOSS", "detail": "-5%", "until": None}),
               Event("unblock", "s2", NOW, {"code": "LOSS_STREAK"}), Event("hold", "s3", NOW, {})]
    text = messages.commit_message(prev, new, events, 3)
    assert text is not None
    lines = text.splitlines()
    assert lines[0] == "go-trader cycle 5: 30 fills" and len(lines) == 1 + 33
    assert "s1: entry rejected [MAX_EXPOSURE]" in text and "ALL strategies: entries BLOCKED [DAILY_LOSS]" in text
    assert messages.commit_message(prev, new, [Event("hold", "s3", NOW, {})], 3) is None


def test_the_third_consecutive_check_failure_and_the_recovery_make_a_line() -> None:
    prev = State(sleeves={"a": new_sleeve("a", "spot", 100)})
    said = []
    for i, ok in enumerate([False, False, False, False, True]):
        new = prev.model_copy(deep=True)
        new.sleeves["a"].last_check = LastCheck(at=NOW.replace(minute=i), ok=ok, error=None if ok else "boom",
                                                error_class=None if ok else "transient")
        said.append(messages.check_streak_lines(prev, new, 3))
        prev = new
    assert said[:2] == [[], []] and said[3] == []
    assert said[2] == ["a: 3 consecutive check failures (transient): boom"]
    assert said[4] == ["a: checks work again after 4 consecutive failures"]
    assert prev.notify.failure_streaks == {}


def test_commands_are_allowed_only_from_listed_chats_and_in_groups_from_listed_users() -> None:
    from scheduler.config import TelegramCommandsConfig

    rules = TelegramCommandsConfig(chat_ids=[7, -100], user_ids=[5])
    assert allowed(Update(1, 7, "private", 7, "a", "/status"), rules)
    assert not allowed(Update(1, 8, "private", 8, "a", "/status"), rules)
    assert allowed(Update(1, -100, "supergroup", 5, "a", "/status"), rules)
    assert not allowed(Update(1, -100, "supergroup", 6, "a", "/status"), rules)
    assert not allowed(Update(1, 7, "group", 6, "a", "/status"), rules)  # a group chat: the user must be listed
    assert parse("/long@my_bot btc/usdt fast") == Command("long", ["btc/usdt", "fast"], "my_bot")
    assert parse("/pnl") == Command("pnl", []) and parse("hello") is None


def test_resolve_names_the_strategy_or_says_which_to_choose(tmp_path: Path) -> None:
    cfg = _config(tmp_path, strategies=[_spot("a", "BTC/USDT"), _spot("b", "BTC/USDT"), _spot("c", "ETH/USDT")])
    config = load_config(cfg)
    state = State(sleeves={s.id: new_sleeve(s.id, "spot", 1000) for s in config.strategies})
    assert resolve(config.strategies, state, "long", ["eth"]) == ("c", "ETH/USDT")
    assert resolve(config.strategies, state, "long", ["BTC/USDT", "b"]) == ("b", "BTC/USDT")
    assert "2 strategies trade BTC/USDT: a, b" in str(resolve(config.strategies, state, "long", ["BTCUSDT"]))
    assert "c trades ETH/USDT" in str(resolve(config.strategies, state, "long", ["BTC/USDT", "c"]))
    assert "usage" in str(resolve(config.strategies, state, "close", []))


# -- state schema v5 ------------------------------------------------------------------------------
def test_a_v4_state_loads_with_an_empty_outbox(tmp_path: Path) -> None:
    doc = json.loads(State(sleeves={"a": new_sleeve("a", "spot", 100)}).model_dump_json())
    doc["schema_version"] = 4
    del doc["outbox"], doc["notify"]
    (tmp_path / "state.json").write_text(json.dumps(doc))
    state = load_state(tmp_path / "state.json")
    assert state is not None and state.schema_version == SCHEMA_VERSION == 6 and state.outbox == []
    assert state.notify.next_id == 1


def test_a_state_with_an_outbox_round_trips(tmp_path: Path) -> None:
    s = State()
    outbox.enqueue(s, "cycle", "hello 😀", NOW)
    outbox.enqueue(s, "answer", "yes", NOW, to="telegram:5")
    outbox.acknowledge(s, "webhook", True, 1)
    s.notify.telegram_offset, s.notify.ignored_chats, s.notify.last_summary_at = 1234, [99], NOW
    save_state(tmp_path / "state.json", s)
    assert load_state(tmp_path / "state.json") == s


@pytest.mark.parametrize("bad", [
    {"id": 0, "at": "2026-01-01T00:00:00Z", "kind": "cycle", "text": "x"},
    {"id": "1", "at": "2026-01-01T00:00:00Z", "kind": "cycle", "text": "x"},
    {"id": 1, "at": "2026-01-01T00:00:00", "kind": "cycle", "text": "x"},  # naive time
    {"id": 1, "at": "2026-01-01T00:00:00Z", "kind": "cycle", "text": ""},
    {"id": 1, "at": "2026-01-01T00:00:00Z", "kind": "cycle", "text": "x", "extra": 1},
    {"id": 1, "at": "2026-01-01T00:00:00Z", "kind": "cycle"},
])
def test_strict_load_refuses_a_malformed_outbox_entry(tmp_path: Path, bad: dict) -> None:
    doc = json.loads(State().model_dump_json())
    doc["outbox"] = [bad]
    (tmp_path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(StateError, match="outbox"):
        load_state(tmp_path / "state.json")


def test_strict_load_refuses_a_malformed_cursor(tmp_path: Path) -> None:
    doc = json.loads(State().model_dump_json())
    doc["notify"]["cursors"] = {"telegram:1": {"delivered_id": -1}}
    (tmp_path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(StateError, match="notify"):
        load_state(tmp_path / "state.json")


# -- config -------------------------------------------------------------------------------------
def _spot(sid: str, symbol: str) -> dict:
    return {"id": sid, "type": "spot", "script": "check_strategy.py", "args": ["sma_crossover", symbol, "1h"],
            "capital": 1000}


def _config(folder: Path, **doc: object) -> Path:
    body = {"strategies": [_spot("a", "BTC/USDT")], **doc}
    (folder / "config.json").write_text(json.dumps(body))
    return folder / "config.json"


def test_notifications_are_off_by_default_and_take_names_of_variables_not_secrets(tmp_path: Path) -> None:
    assert not load_config(_config(tmp_path)).notifications.enabled
    n = load_config(_config(tmp_path, notifications={"telegram": {"chat_ids": [1]}, "webhook": {}})).notifications
    assert n.enabled and n.telegram is not None and n.telegram.token_env == "GO_TRADER_TELEGRAM_TOKEN"
    for inline in ({"telegram": {"chat_ids": [1], "token": "123:abc"}}, {"telegram": {"bot_token": "123:abc"}},
                   {"webhook": {"url": "https://discord.com/api/webhooks/1/SECRET"}},
                   {"webhook": {"webhook_url": "https://hooks.slack.com/SECRET"}}):
        with pytest.raises(ConfigError) as e:
            load_config(_config(tmp_path, notifications=inline))
        text = str(e.value)
        assert "secrets must not be stored in the config file" in text and "SECRET" not in text and "abc" not in text
        assert "environment variable" in text


@pytest.mark.parametrize(("section", "fragment"), [
    ({"telegram": {"chat_ids": [1], "token_env": "not a name"}}, "is not an environment variable name"),
    ({"telegram": {"chat_ids": [1], "api_base": "ftp://x"}}, "http:// or https://"),
    ({"telegram": {"chat_ids": ["1"]}}, "chat_ids"),
    ({"telegram": {"chat_ids": [1], "chat_interval_s": True}}, "boolean"),
    ({"summary_interval_hours": "24"}, "without quotes"),
    ({"telegram": {"chat_ids": [1]}, "colour": "red"}, "unknown key 'colour'"),
])
def test_a_bad_notifications_section_is_refused_with_its_path(tmp_path: Path, section: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match="notifications") as e:
        load_config(_config(tmp_path, notifications=section))
    assert fragment in str(e.value)


def test_the_start_checks_name_the_missing_variable_never_a_value(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, notifications={"telegram": {"chat_ids": [1]},
                                                         "webhook": {"url_env": "HOOK"}}))
    problems = notification_problems(config, {"HOOK": "not-a-url"})
    assert len(problems) == 2 and "GO_TRADER_TELEGRAM_TOKEN" in problems[0] and "not-a-url" not in problems[1]
    assert notification_problems(config, {"GO_TRADER_TELEGRAM_TOKEN": "1:x", "HOOK": "https://h/1"}) == []
    (bad,) = notification_problems(config, {"GO_TRADER_TELEGRAM_TOKEN": "1:x", "HOOK": "http://[::1/hooks/SECRET"})
    assert "holds a malformed URL (Invalid IPv6 URL" in bad and "SECRET" not in bad, bad
