"""State safety: no committed fill is ever lost, no invalid value loads or is written,
no link is followed, and the recovery hints lose nothing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.engine.errors import StateError, StateSaveError
from scheduler.engine.models import SCHEMA_VERSION, State, Trade, new_sleeve
from scheduler.state_store import (
    StateLock,
    append_trades,
    check_owner,
    last_good_path,
    load_state,
    read_trade_log,
    repair_trade_log,
    save_state,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def fill(seq: int) -> Trade:
    return Trade(seq=seq, cycle=seq, strategy_id="s1", symbol="BTC/USDT", side="buy", quantity=0.5,
                 quote_price=100.0, fill_price=100.05, notional_usd=50.025, fee_usd=0.05, reason="signal",
                 at=T0 + timedelta(minutes=seq))


def state_with(n_fills: int) -> State:
    state = State(next_trade_seq=n_fills + 1)
    sleeve = new_sleeve("s1", "spot", 1000.0)
    sleeve.trades = [fill(s) for s in range(1, n_fills + 1)]
    sleeve.trade_count = n_fills
    state.sleeves["s1"] = sleeve
    return state


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


def refused_untouched(path: Path) -> str:
    before = {p.name: p.read_bytes() for p in path.parent.iterdir() if p.is_file()}
    with pytest.raises(StateError) as info:
        state = load_state(path)
        repair_trade_log(path, state or State())
    assert {p.name: p.read_bytes() for p in path.parent.iterdir() if p.is_file()} == before
    return str(info.value)


# -- 1. a state behind the trade log is refused, whatever made it so ---------------------------

def test_state_replaced_by_empty_object_is_refused(path: Path) -> None:
    save_state(path, state_with(3))
    append_trades(path, [fill(1), fill(2), fill(3)])
    path.write_text("{}")
    msg = refused_untouched(path)
    assert "no valid schema_version (got missing" in msg
    assert [t.seq for t in read_trade_log(path)] == [1, 2, 3]


def test_state_with_version_but_no_fills_is_behind_the_log(path: Path) -> None:
    append_trades(path, [fill(1), fill(2)])
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    msg = refused_untouched(path)
    assert "behind the trade log: the log holds fills 1..2 that the state does not" in msg


def test_missing_state_with_a_trade_log_is_refused(path: Path) -> None:
    append_trades(path, [fill(1)])
    msg = refused_untouched(path)
    assert "behind the trade log" in msg


def test_next_trade_seq_edited_down_is_refused(path: Path) -> None:
    save_state(path, state_with(3))
    append_trades(path, [fill(1), fill(2), fill(3)])
    doc = json.loads(path.read_text())
    doc["next_trade_seq"] = 2
    path.write_text(json.dumps(doc))
    msg = refused_untouched(path)
    assert "the log holds fills 2..3" in msg or "disagree" in msg


def test_restoring_the_last_good_copy_after_corruption_loses_nothing(path: Path) -> None:
    """The daemon's own hint after a corrupt state.json: it must never cost a committed fill."""
    save_state(path, state_with(2))
    append_trades(path, [fill(1), fill(2)])
    save_state(path, state_with(3))  # last-good now holds 2 fills, state.json 3
    append_trades(path, [fill(3)])
    path.write_text("{ corrupt")
    msg = refused_untouched(path)
    assert f"the previous copy {last_good_path(path)} lacks fills 3..3" in msg
    assert f"cp {last_good_path(path)} {path}'" not in msg  # not offered: it would lose fill 3
    # a user who copies it anyway is refused, and the log keeps fill 3
    path.write_bytes(last_good_path(path).read_bytes())
    assert "behind the trade log" in refused_untouched(path)
    assert [t.seq for t in read_trade_log(path)] == [1, 2, 3]


def test_the_last_good_copy_is_offered_when_it_holds_every_fill(path: Path) -> None:
    save_state(path, state_with(2))
    save_state(path, state_with(2))
    append_trades(path, [fill(1), fill(2)])
    path.write_text("{ corrupt")
    msg = refused_untouched(path)
    assert f"'cp {last_good_path(path)} {path}'" in msg


def test_no_previous_copy_is_not_named(path: Path) -> None:
    path.write_text("{ corrupt")
    msg = refused_untouched(path)
    assert "last-good" not in msg
    assert "which deletes nothing" in msg


def test_a_state_from_another_history_is_refused(path: Path) -> None:
    append_trades(path, [fill(1)])
    other = state_with(1)
    other.sleeves["s1"].trades[0] = fill(1).model_copy(update={"quantity": 9.0})
    save_state(path, other)
    assert "different histories" in refused_untouched(path)


def test_new_fills_never_reuse_logged_seq_numbers(path: Path) -> None:
    save_state(path, state_with(3))
    append_trades(path, [fill(1), fill(2), fill(3)])
    state = load_state(path)
    assert state is not None and repair_trade_log(path, state) == (0, 0)
    assert state.next_trade_seq == 4


# -- 2. strict validation at load, and nothing written that load would refuse -------------------

@pytest.mark.parametrize("version", ['"99"', "3.0", "2.0", "0", "-1", "true", "null", '"2"'])
def test_bad_schema_versions_are_refused(path: Path, version: str) -> None:
    doc = state_with(0).model_dump_json()
    path.write_text(doc.replace(f'"schema_version":{SCHEMA_VERSION}', f'"schema_version":{version}'))
    msg = refused_untouched(path)
    assert "schema_version" in msg or "schema version" in msg


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(path: Path, literal: str) -> None:
    doc = json.loads(state_with(0).model_dump_json())
    doc["sleeves"]["s1"]["realized_pnl_usd"] = "__X__"
    path.write_text(json.dumps(doc).replace('"__X__"', literal))
    refused_untouched(path)


def test_negative_cash_is_refused(path: Path) -> None:
    doc = json.loads(state_with(0).model_dump_json())
    doc["sleeves"]["s1"]["cash_usd"] = -5.0
    path.write_text(json.dumps(doc))
    assert "cash_usd" in refused_untouched(path)


@pytest.mark.parametrize("field,value", [("cycle_count", '"3"'), ("cycle_count", "true"), ("next_trade_seq", "1.0")])
def test_coerced_types_are_refused(path: Path, field: str, value: str) -> None:
    doc = json.loads(state_with(0).model_dump_json())
    doc[field] = "__X__"
    path.write_text(json.dumps(doc).replace('"__X__"', value))
    assert field in refused_untouched(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_save_refuses_a_state_load_would_refuse(path: Path, bad: float) -> None:
    save_state(path, state_with(0))
    before = path.read_bytes()
    state = state_with(0)
    state.sleeves["s1"].cash_usd = bad  # engine models are not validated on assignment
    with pytest.raises(StateSaveError, match="would not load again"):
        save_state(path, state)
    assert path.read_bytes() == before


def test_saved_state_always_loads_back(path: Path) -> None:
    state = state_with(2)
    save_state(path, state)
    assert load_state(path) == state


# -- 3. links are never followed; files keep their owner ---------------------------------------

def test_a_symlinked_state_file_is_refused_and_nothing_is_created_beside_the_target(tmp_path: Path) -> None:
    target_dir = tmp_path / "elsewhere"
    target_dir.mkdir()
    target = target_dir / "precious"
    target.write_text("do not touch")
    link = tmp_path / "state.json"
    link.symlink_to(target)
    with pytest.raises(StateError, match="is a symbolic link"):
        load_state(link)
    assert sorted(p.name for p in target_dir.iterdir()) == ["precious"]
    assert target.read_text() == "do not touch"


def test_a_dangling_symlink_is_refused_not_a_fresh_start(path: Path) -> None:
    path.symlink_to(path.parent / "gone.json")
    with pytest.raises(StateError, match="is a symbolic link"):
        load_state(path)


@pytest.mark.parametrize("companion", ["state.json.lock", "state.trades.jsonl", "state.json.last-good"])
def test_a_symlinked_companion_file_is_refused(path: Path, companion: str) -> None:
    victim = path.parent / "victim"
    victim.write_text("x")
    (path.parent / companion).symlink_to(victim)
    with pytest.raises(StateError, match="is a symbolic link"):
        load_state(path)
    assert victim.read_text() == "x"


def test_the_lock_is_never_taken_through_a_link(path: Path) -> None:
    victim = path.parent / "victim"
    victim.write_text("x")
    (path.parent / "state.json.lock").symlink_to(victim)
    with pytest.raises(StateError, match="cannot create lock file"):
        StateLock(path).acquire()
    assert victim.read_text() == "x"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_file_owned_by_another_user_is_refused(path: Path) -> None:
    save_state(path, state_with(0))
    os.chown(path, 65534, 65534)
    with pytest.raises(StateError, match=r"belongs to .*run it as the owner"):
        check_owner(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_new_state_in_a_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "service-state"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    with pytest.raises(StateError, match=r"the state folder .* belongs to .*run it as the owner"):
        check_owner(folder / "state.json")


def test_a_shared_sticky_folder_is_not_an_owner_problem(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    if os.geteuid() == 0:
        os.chown(folder, 65534, 65534)
    check_owner(folder / "state.json")


def test_own_files_pass_the_owner_check(path: Path) -> None:
    save_state(path, state_with(1))
    append_trades(path, [fill(1)])
    check_owner(path)


def test_a_field_write_lands_and_a_write_to_no_field_is_refused() -> None:
    """models._State's fast __setattr__: a field's write is what pydantic's would be (the value,
    the fields-set, the dump, a copy); any other name gets pydantic's refusal."""
    sleeve = new_sleeve("s1", "spot", 1000.0)
    sleeve.risk.consecutive_losses = 3
    sleeve.cash_usd = 250.0
    assert sleeve.cash_usd == 250.0 and "consecutive_losses" in sleeve.risk.model_fields_set
    assert sleeve.model_dump()["cash_usd"] == 250.0 and sleeve.model_copy(deep=True).risk.consecutive_losses == 3
    assert State.model_validate_json(State(sleeves={"s1": sleeve}).model_dump_json()).sleeves["s1"] == sleeve
    with pytest.raises(ValueError, match='has no field "cash"'):
        sleeve.cash = 1.0  # type: ignore[attr-defined]
    assert "cash" not in sleeve.__dict__
