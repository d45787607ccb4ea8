"""state.json on disk (REFERENCE section 8): round trip, 0600, last-good copy, refusals, one writer,
and the trade log's repair."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.engine.errors import StateError
from scheduler.engine.models import (
    SCHEMA_VERSION,
    Block,
    LastCheck,
    Position,
    RiskState,
    Sleeve,
    State,
    Trade,
    new_sleeve,
)
from scheduler.state_store import (
    StateLock,
    append_trades,
    last_good_path,
    load_state,
    read_trade_log,
    repair_trade_log,
    save_state,
    trade_log_path,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def trade(seq: int, sid: str = "s1", side: str = "buy") -> Trade:
    return Trade(seq=seq, cycle=seq, strategy_id=sid, symbol="BTC/USDT", side=side, quantity=0.5,  # type: ignore[arg-type]
                 quote_price=100.0, fill_price=100.05, notional_usd=50.025, fee_usd=0.050025,
                 realized_pnl_usd=None if side == "buy" else -0.1, reason="signal", at=T0 + timedelta(minutes=seq))


def sample_state() -> State:
    state = State(cycle_count=7, last_cycle_at=T0, next_trade_seq=4)
    s1 = new_sleeve("s1", "spot", 1000.0)
    s1.cash_usd = 949.924975
    s1.positions["BTC/USDT"] = Position(symbol="BTC/USDT", quantity=0.5, entry_price=100.05,
                                        cost_basis_usd=50.075025, entry_fee_usd=0.050025, opened_at=T0,
                                        stop_price=90.0, mark_price=101.0, mark_at=T0)
    s1.trades = [trade(1), trade(2, side="sell"), trade(3)]
    s1.trade_count = 3
    block = Block(code="MAX_DRAWDOWN", detail="x", since=T0, until=T0 + timedelta(hours=24))
    # schema v1 had RiskState.block; v2 has RiskState.blocks keyed by reason code
    where = {"blocks": {block.code: block}} if "blocks" in RiskState.model_fields else {"block": block}
    s1.risk = RiskState(peak_equity_usd=1001.5, drawdown_pct=0.25, consecutive_losses=1, losses=1, **where)
    s1.last_run_at = T0
    s1.last_check = LastCheck(at=T0, ok=True, signal=1, price=101.0, candle_at=T0, indicators={"roc": 6.1})
    state.sleeves["s1"] = s1
    state.sleeves["opt"] = new_sleeve("opt", "options", 2000.0)
    return state


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


# ---------------------------------------------------------------------------------------------
# Save and load


def test_missing_file_is_a_fresh_start(path: Path) -> None:
    assert load_state(path) is None
    assert not path.exists()


def test_round_trip(path: Path) -> None:
    state = sample_state()
    save_state(path, state)
    loaded = load_state(path)
    assert loaded == state
    assert loaded is not None
    assert loaded.sleeves["s1"].positions["BTC/USDT"].cost_basis_usd == 50.075025
    risk = loaded.sleeves["s1"].risk.model_dump()
    saved_block = risk["blocks"]["MAX_DRAWDOWN"] if "blocks" in risk else risk["block"]
    assert saved_block["until"] == T0 + timedelta(hours=24)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_saved_file_mode_is_0600(path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        save_state(path, sample_state())
        save_state(path, sample_state())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(last_good_path(path).stat().st_mode) == 0o600


def test_no_temp_files_left_behind(path: Path) -> None:
    save_state(path, sample_state())
    save_state(path, sample_state())
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "state.json.last-good"]


def test_last_good_copy_holds_the_previous_content(path: Path) -> None:
    first = sample_state()
    save_state(path, first)
    assert not last_good_path(path).exists()
    first_bytes = path.read_bytes()
    second = sample_state()
    second.cycle_count = 8
    save_state(path, second)
    assert last_good_path(path) == path.with_name("state.json.last-good")
    assert last_good_path(path).read_bytes() == first_bytes
    assert load_state(last_good_path(path)) == first
    assert load_state(path) == second
    third = sample_state()
    third.cycle_count = 9
    save_state(path, third)
    assert load_state(last_good_path(path)) == second


# ---------------------------------------------------------------------------------------------
# Refusals: the file is left byte-for-byte untouched and the message says what to do


def _refused(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    os.chmod(path, 0o600)
    before = path.stat()
    with pytest.raises(StateError) as info:
        load_state(path)
    assert path.read_bytes() == content
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (before.st_mtime_ns, before.st_ino, before.st_size)
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]  # nothing written beside it
    return str(info.value)


def _restore_hint(path: Path) -> str:
    """With no previous copy, the only hint is to move everything aside together (nothing deleted)."""
    return (f"to start over instead, move the state and its whole history aside together, which deletes "
            f"nothing: mkdir {path.parent / 'old'} && mv {path} {path.parent / 'old'}/")


def test_corrupt_json_is_refused(path: Path) -> None:
    msg = _refused(path, b"this is not json {")
    assert msg.startswith(f"state file {path} is corrupt (not valid JSON: ")
    assert "it was left untouched" in msg
    assert msg.endswith(_restore_hint(path))


def test_truncated_file_is_refused(path: Path) -> None:
    full = sample_state().model_dump_json(indent=1).encode()
    msg = _refused(path, full[: len(full) // 2])
    assert msg.startswith(f"state file {path} is corrupt (not valid JSON: ")
    assert msg.endswith(_restore_hint(path))


def test_empty_file_is_refused(path: Path) -> None:
    msg = _refused(path, b"")
    assert msg.startswith(f"state file {path} is corrupt")


def test_non_utf8_file_is_refused(path: Path) -> None:
    msg = _refused(path, b"\xff\xfe{}")
    assert msg.startswith(f"state file {path} is corrupt (not UTF-8 text, as go-trader writes it: byte 0xff at "
                          "offset 0)")


def test_a_key_given_twice_is_refused(path: Path) -> None:
    text = sample_state().model_dump_json()
    msg = _refused(path, ('{"cycle_count": 1, ' + text[1:]).encode())
    assert msg.startswith(f"state file {path} is corrupt (the key 'cycle_count' appears twice in one object)")


def test_a_sleeve_under_another_id_is_a_schema_violation(path: Path) -> None:
    doc = json.loads(sample_state().model_dump_json())
    doc["sleeves"]["other"] = doc["sleeves"].pop("s1")
    msg = _refused(path, json.dumps(doc).encode())
    assert "sleeves['other'] holds the sleeve of 's1'" in msg, msg


def test_schema_violation_is_refused(path: Path) -> None:
    doc = json.loads(sample_state().model_dump_json())
    doc["sleeves"]["s1"]["positions"]["BTC/USDT"]["quantity"] = -1
    msg = _refused(path, json.dumps(doc).encode())
    assert msg.startswith(f"state file {path} does not match the schema (")
    assert "sleeves.s1.positions.BTC/USDT.quantity: Input should be greater than 0" in msg
    assert msg.endswith(_restore_hint(path))


def test_unknown_key_is_a_schema_violation(path: Path) -> None:
    doc = json.loads(sample_state().model_dump_json())
    doc["kill_switch"] = True
    msg = _refused(path, json.dumps(doc).encode())
    assert "kill_switch: Extra inputs are not permitted" in msg


def test_naive_time_is_a_schema_violation(path: Path) -> None:
    doc = json.loads(sample_state().model_dump_json())
    doc["last_cycle_at"] = "2024-05-01T12:00:00"
    msg = _refused(path, json.dumps(doc).encode())
    assert msg.startswith(f"state file {path} does not match the schema (last_cycle_at: ")


def test_non_object_top_level_is_refused(path: Path) -> None:
    msg = _refused(path, b"[]")
    assert msg.startswith(f"state file {path} is corrupt (the top level is a list, not an object)")


def test_newer_schema_version_is_refused(path: Path) -> None:
    doc = json.loads(sample_state().model_dump_json())
    doc["schema_version"] = SCHEMA_VERSION + 1
    doc["something_new"] = {"a": 1}  # a newer file may hold keys this version does not know
    msg = _refused(path, json.dumps(doc).encode())
    assert msg.startswith(f"state file {path} has schema version {SCHEMA_VERSION + 1}, newer than this "
                          f"go-trader understands ({SCHEMA_VERSION}); upgrade go-trader; it was left untouched")


def test_unreadable_file_is_refused(path: Path) -> None:
    path.mkdir()  # reading a directory fails with an OSError other than FileNotFoundError
    with pytest.raises(StateError) as info:
        load_state(path)
    assert str(info.value).startswith(f"cannot read state file {path}: ")
    assert "; give --state-file the state file, not a folder" in str(info.value)  # not "fix its permissions"


# ---------------------------------------------------------------------------------------------
# Property: save/load round-trips any valid state

utc_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                         timezones=st.just(UTC))
money = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)


@st.composite
def sleeves(draw: st.DrawFn, sid: str) -> Sleeve:
    capital = draw(positive)
    sleeve = new_sleeve(sid, draw(st.sampled_from(["spot", "options"])), capital)
    sleeve.cash_usd = draw(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
    for sym in draw(st.lists(st.sampled_from(["BTC/USDT", "ETH/USDT", "SOL/USDT"]), unique=True, max_size=3)):
        sleeve.positions[sym] = Position(
            symbol=sym, quantity=draw(positive), entry_price=draw(positive), cost_basis_usd=draw(positive),
            entry_fee_usd=draw(st.floats(min_value=0, max_value=1e6)), opened_at=draw(utc_times),
            stop_price=draw(st.none() | positive), mark_price=draw(st.none() | positive),
            mark_at=draw(st.none() | utc_times),
        )
    sleeve.realized_pnl_usd = draw(money)
    sleeve.risk = RiskState(peak_equity_usd=draw(positive), drawdown_pct=draw(st.none() | st.floats(0, 100)),
                            consecutive_losses=draw(st.integers(0, 50)))
    sleeve.last_run_at = draw(st.none() | utc_times)
    return sleeve


@st.composite
def states(draw: st.DrawFn) -> State:
    state = State(cycle_count=draw(st.integers(0, 10**9)), last_cycle_at=draw(st.none() | utc_times),
                  next_trade_seq=draw(st.integers(1, 10**9)))
    for sid in draw(st.lists(ids, unique=True, max_size=4)):
        state.sleeves[sid] = draw(sleeves(sid))
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states())
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, state: State) -> None:
    path = tmp_path_factory.mktemp("rt") / "state.json"
    save_state(path, state)
    loaded = load_state(path)
    assert loaded == state
    assert loaded is not None and loaded.model_dump(mode="json") == state.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------
# One writer


def test_second_holder_is_refused_naming_the_pid(path: Path) -> None:
    first = StateLock(path)
    first.acquire()
    try:
        assert first.path.read_text() == str(os.getpid())
        # A second open file description on the same lock file: flock treats it as another holder.
        with pytest.raises(StateError) as info:
            StateLock(path).acquire()
        assert str(info.value) == (f"another go-trader (pid {os.getpid()}) is using state file {path}; "
                                   "stop it first, or give this one its own --state-file")
    finally:
        first.release()


def test_second_process_is_refused_naming_the_holder_pid(path: Path) -> None:
    child = ("import sys; from pathlib import Path; from scheduler.state_store import StateLock; "
             "from scheduler.engine.errors import StateError\n"
             "try:\n    StateLock(Path(sys.argv[1])).acquire()\nexcept StateError as e:\n"
             "    print(e); sys.exit(3)\n")
    with StateLock(path):
        proc = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True,
                              timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == (f"another go-trader (pid {os.getpid()}) is using state file {path}; "
                                   "stop it first, or give this one its own --state-file")


def test_lock_is_free_again_after_release(path: Path) -> None:
    with StateLock(path) as lock:
        assert lock.path == path.with_name("state.json.lock")
    with StateLock(path):  # does not raise
        pass
    second = StateLock(path)
    second.acquire()
    second.release()
    assert path.with_name("state.json.lock").read_text() == str(os.getpid())


# ---------------------------------------------------------------------------------------------
# Trade log


def _state_with(seqs: list[int], next_seq: int) -> State:
    state = State(next_trade_seq=next_seq)
    sleeve = new_sleeve("s1", "spot", 1000.0)
    sleeve.trades = [trade(s) for s in seqs]
    state.sleeves["s1"] = sleeve
    return state


def test_trade_log_path(path: Path) -> None:
    assert trade_log_path(path) == path.with_name("state.trades.jsonl")


def test_append_and_read_trade_log(path: Path) -> None:
    append_trades(path, [trade(1), trade(2)])
    append_trades(path, [])
    append_trades(path, [trade(3, side="sell")])
    assert [t.seq for t in read_trade_log(path)] == [1, 2, 3]
    assert read_trade_log(path)[2] == trade(3, side="sell")
    assert stat.S_IMODE(trade_log_path(path).stat().st_mode) == 0o600


def test_missing_trade_log_reads_empty(path: Path) -> None:
    assert read_trade_log(path) == []


def test_repair_appends_fills_missing_from_the_log(path: Path) -> None:
    append_trades(path, [trade(1)])
    state = _state_with([1, 2, 3], next_seq=4)
    assert repair_trade_log(path, state) == (2, 0)
    assert read_trade_log(path) == [trade(1), trade(2), trade(3)]
    assert repair_trade_log(path, state) == (0, 0)  # idempotent
    assert len(trade_log_path(path).read_text().splitlines()) == 3


def test_repair_creates_the_log_from_state_when_it_holds_every_fill(path: Path) -> None:
    state = _state_with([1, 2], next_seq=3)
    assert repair_trade_log(path, state) == (2, 0)
    assert [t.seq for t in read_trade_log(path)] == [1, 2]


def test_a_hole_in_the_history_is_refused_not_papered_over(path: Path) -> None:
    state = _state_with([5, 6], next_seq=7)  # fills 1..4 are in no file any more
    with pytest.raises(StateError, match=r"fills 1\.\.4 are in neither the trade log"):
        repair_trade_log(path, state)
    assert not trade_log_path(path).exists()


def test_repair_merges_fills_of_every_sleeve_in_seq_order(path: Path) -> None:
    state = _state_with([1, 3], next_seq=5)
    other = new_sleeve("s2", "spot", 1000.0)
    other.trades = [trade(2, sid="s2"), trade(4, sid="s2")]
    state.sleeves["s2"] = other
    append_trades(path, [trade(1)])
    assert repair_trade_log(path, state) == (3, 0)
    assert [(t.seq, t.strategy_id) for t in read_trade_log(path)] == [(1, "s1"), (2, "s2"), (3, "s1"), (4, "s2")]


def test_a_state_behind_the_log_is_refused_and_the_log_kept(path: Path) -> None:
    append_trades(path, [trade(s) for s in (1, 2, 3, 4, 5)])
    before = trade_log_path(path).read_bytes()
    state = _state_with([1, 2, 3], next_seq=4)
    with pytest.raises(StateError, match=r"behind the trade log: the log holds fills 4\.\.5"):
        repair_trade_log(path, state)
    assert trade_log_path(path).read_bytes() == before  # committed fills are never removed


def test_repair_sets_a_torn_last_line_aside_and_completes_the_log(path: Path) -> None:
    append_trades(path, [trade(1), trade(2)])
    torn = trade(3).model_dump_json()[:40]
    with trade_log_path(path).open("a") as f:
        f.write(torn)
    assert [t.seq for t in read_trade_log(path)] == [1, 2]  # the torn line is ignored on read
    state = _state_with([1, 2, 3], next_seq=4)
    assert repair_trade_log(path, state) == (1, len(torn))
    text = trade_log_path(path).read_text()
    assert torn not in text.splitlines()
    assert [t.seq for t in read_trade_log(path)] == [1, 2, 3]
    assert text.endswith("\n") and len(text.splitlines()) == 3
    kept = trade_log_path(path).with_name("state.trades.jsonl.torn")
    assert kept.read_text() == torn + "\n"  # set aside, not deleted


def test_a_record_whose_newline_was_cut_is_kept(path: Path) -> None:
    append_trades(path, [trade(1)])
    with trade_log_path(path).open("a") as f:
        f.write(trade(2).model_dump_json())  # complete record, no newline
    state = _state_with([1, 2, 3], next_seq=4)
    assert repair_trade_log(path, state) == (1, 0)
    assert [t.seq for t in read_trade_log(path)] == [1, 2, 3]
    assert trade_log_path(path).read_text().endswith("\n")


def test_corrupt_line_in_the_middle_is_an_error(path: Path) -> None:
    append_trades(path, [trade(1)])
    with trade_log_path(path).open("a") as f:
        f.write("garbage\n")
    append_trades(path, [trade(2)])
    with pytest.raises(StateError) as info:
        read_trade_log(path)
    assert str(info.value).startswith(f"trade log {trade_log_path(path)} line 2 is corrupt: ")
