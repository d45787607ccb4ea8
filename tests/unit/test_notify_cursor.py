"""Delivery cursors: a part-sent message is remembered by its characters, only for the destination's
own next message; each destination counts its own deliveries; v5 cursors and journals still load."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.engine.errors import StateError
from scheduler.engine.models import SCHEMA_VERSION, State
from scheduler.notify import outbox
from scheduler.notify.service import apply_journal, read_journal
from scheduler.state_store import load_state

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DESTS = {"telegram:111": True, "telegram:-222": False, "webhook": True}


def test_a_partial_broadcast_counts_when_another_chats_answer_is_older() -> None:
    s = State()
    answer = outbox.enqueue(s, "answer", "for 111 only", NOW, to="telegram:111").id
    broadcast = outbox.enqueue(s, "cycle", "x" * 900, NOW).id
    assert outbox.acknowledge(s, "webhook", True, None, partial_id=broadcast, chars_sent=400)
    assert outbox.cursor(s, "webhook").chars_sent == 400  # the answer is not the webhook's
    assert [m.id for m in outbox.pending(s, "webhook", True)] == [broadcast]
    assert not outbox.acknowledge(s, "telegram:111", True, None, partial_id=broadcast, chars_sent=400)  # 111's next is the answer
    assert outbox.acknowledge(s, "webhook", True, broadcast)
    assert outbox.cursor(s, "webhook").delivered_total == 1 and outbox.cursor(s, "webhook").chars_sent == 0
    assert answer < broadcast


def test_each_destination_counts_only_its_own_messages() -> None:
    s = State()
    for i in range(3):
        outbox.enqueue(s, "answer", f"a{i}", NOW, to="telegram:-222")
    outbox.enqueue(s, "cycle", "b", NOW)
    last = outbox.enqueue(s, "answer", "c", NOW, to="telegram:111").id
    outbox.acknowledge(s, "telegram:111", True, last)
    outbox.acknowledge(s, "telegram:-222", False, last)
    outbox.acknowledge(s, "webhook", True, last)
    assert {d: outbox.cursor(s, d).delivered_total for d in DESTS} == {"telegram:111": 2, "telegram:-222": 3,
                                                                     "webhook": 1}


def test_journal_entries_fold_per_destination_and_the_older_form_is_read_safely(tmp_path: Path) -> None:
    s = State()
    one = outbox.enqueue(s, "cycle", "a" * 500, NOW).id
    two = outbox.enqueue(s, "cycle", "b" * 500, NOW).id
    journal = tmp_path / "j"
    lines = [{"d": "webhook", "id": one, "chars": 500, "of": 500},
             {"d": "webhook", "id": two, "chars": 200, "of": 500},
             {"d": "gone", "id": two, "chars": 500, "of": 500},  # no longer configured: left out
             {"d": "telegram:111", "id": one, "parts": 2, "of": 2},  # the older form, whole
             {"d": "telegram:111", "id": two, "parts": 1, "of": 3}]  # the older form, a part: sent again whole
    journal.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"d": "webh')  # a torn last line
    assert apply_journal(s, read_journal(journal), DESTS)
    assert (outbox.cursor(s, "webhook").delivered_id, outbox.cursor(s, "webhook").chars_sent) == (one, 200)
    assert (outbox.cursor(s, "telegram:111").delivered_id, outbox.cursor(s, "telegram:111").chars_sent) == (one, 0)
    assert "gone" not in s.notify.cursors


def test_a_v5_cursor_that_counted_parts_loads_and_sends_that_message_again_whole(tmp_path: Path) -> None:
    s = State()
    outbox.enqueue(s, "cycle", "m", NOW)
    doc = json.loads(s.model_dump_json())
    doc["schema_version"] = 5
    doc["notify"]["cursors"] = {"webhook": {"delivered_id": 0, "parts_sent": 2, "delivered_total": 7}}
    (tmp_path / "state.json").write_text(json.dumps(doc))
    state = load_state(tmp_path / "state.json")
    assert state is not None and state.schema_version == SCHEMA_VERSION == 6
    c = state.notify.cursors["webhook"]
    assert (c.delivered_id, c.chars_sent, c.delivered_total) == (0, 0, 7)


def test_an_older_state_of_the_wrong_shape_is_refused_with_the_restore_hint_not_a_traceback(tmp_path: Path) -> None:
    for doc in ({"schema_version": 1, "sleeves": []}, {"schema_version": 1, "sleeves": {"a": 5}},
                {"schema_version": 1, "sleeves": {"a": {"risk": {"block": "x"}}}},
                {"schema_version": 5, "sleeves": {}, "notify": {"cursors": []}},
                {"schema_version": 5, "sleeves": {}, "notify": []}):
        (tmp_path / "state.json").write_text(json.dumps(doc))
        with pytest.raises(StateError, match="does not match the schema.*left untouched"):
            load_state(tmp_path / "state.json")
