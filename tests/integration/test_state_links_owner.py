"""Hard links at the files go-trader writes in place are refused (F4); the CLI's control
commands check the owner before they create or lock anything (F5) and report a lock error as
what it is, not as a running daemon (F6)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.engine.errors import StateError, StateSaveError
from scheduler.engine.models import AuditRecord
from scheduler.logs import LogDirError, Logs
from scheduler.state_store import (
    LockHeld,
    StateLock,
    append_audit,
    append_trades,
    audit_log_path,
    refuse_links,
    repair_trade_log,
    save_state,
    trade_log_path,
)
from tests.integration.harness import REPO, run_cli, spot, write_config
from tests.integration.test_unwritable import listing, read_only
from tests.unit.test_state_safety import fill, state_with

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another user")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


def _victim(folder: Path) -> Path:
    victim = folder / "victim.txt"
    victim.write_text("precious\n")
    return victim


# -- F4: hard links ---------------------------------------------------------------------------
def test_a_hard_linked_lock_file_is_refused_and_left_alone(path: Path) -> None:
    victim = _victim(path.parent)
    os.link(victim, path.with_name("state.json.lock"))
    with pytest.raises(StateError, match=r"has 2 hard links") as e:
        StateLock(path).acquire()
    assert not isinstance(e.value, LockHeld)
    assert victim.read_text() == "precious\n"  # not truncated, no pid written into it
    with pytest.raises(StateError, match=r"state.json.lock has 2 hard links"):
        refuse_links(path)


def test_the_lock_file_is_opened_without_truncating_it(path: Path) -> None:
    with StateLock(path):
        pid = path.with_name("state.json.lock").read_text()
        with pytest.raises(LockHeld, match=f"pid {pid}"):
            StateLock(path).acquire()
        assert path.with_name("state.json.lock").read_text() == pid  # the holder's pid survives the try


@pytest.mark.parametrize("which", ["trade log", "audit log"])
def test_a_hard_linked_log_of_the_state_is_refused_and_left_alone(path: Path, which: str) -> None:
    save_state(path, state_with(1))
    victim = _victim(path.parent)
    target = trade_log_path(path) if which == "trade log" else audit_log_path(path)
    os.link(victim, target)
    with pytest.raises(StateError, match=r"has 2 hard links"):
        refuse_links(path)
    with pytest.raises(StateSaveError, match=rf"{which} .*has 2 hard links"):
        if which == "trade log":
            append_trades(path, [fill(1)])
        else:
            append_audit(path, AuditRecord(at=datetime.now(UTC), action="reset_kill_switch", scope="account",
                                           by="alice", detail="test", before={}))
    assert victim.read_text() == "precious\n"


def test_a_hard_linked_trade_log_is_not_repaired_in_place(path: Path) -> None:
    state = state_with(1)
    save_state(path, state)
    victim = path.parent / "victim.jsonl"
    victim.write_text(fill(1).model_dump_json() + '\n{"torn')
    os.link(victim, trade_log_path(path))
    kept = victim.read_bytes()
    with pytest.raises(StateSaveError, match=r"has 2 hard links"):
        repair_trade_log(path, state)
    assert victim.read_bytes() == kept  # not truncated through the other name


def test_a_hard_linked_log_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "logs").mkdir()
    os.link(victim, tmp_path / "logs" / "scheduler.log")
    with pytest.raises(LogDirError, match=r"scheduler.log has 2 hard links"):
        Logs(tmp_path / "logs", 1_000_000, 2, stdout=False)
    assert victim.read_text() == "precious\n"
    os.unlink(tmp_path / "logs" / "scheduler.log")
    os.link(victim, tmp_path / "logs" / "events.jsonl")
    with pytest.raises(LogDirError, match=r"events.jsonl has 2 hard links"):
        Logs(tmp_path / "logs", 1_000_000, 2, stdout=False)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("name", ["state.trades.jsonl", "state.audit.jsonl", "state.json.lock", "logs/alpha.log"])
def test_the_daemon_refuses_to_start_with_a_hard_link_at_a_file_it_writes(tmp_path: Path, name: str) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    assert run_cli("--config", str(config), "--once").returncode == 0
    victim = _victim(tmp_path)
    (tmp_path / name).unlink(missing_ok=True)
    os.link(victim, tmp_path / name)
    result = run_cli("--config", str(config), "--once")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "has 2 hard links" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert victim.read_text() == "precious\n"


# -- F5, F6: the control commands' owner check and lock errors ---------------------------------
@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder under /tmp that another user can reach (pytest's own tmp is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="go-trader-review-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_nobody(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           sys.executable, "-m", "scheduler", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "GO_TRADER_STATUS_TOKEN"})


def _nobodys_state(folder: Path) -> Path:
    """A config whose state and logs (folder/state, folder/logs) belong to nobody, after one cycle
    (run as root, then handed over: checkers cannot be started as nobody from this checkout)."""
    config = write_config(folder, [spot("alpha", "check_hold.py")], state_file="state/state.json")
    for sub in ("state", "logs"):
        (folder / sub).mkdir(mode=0o755)
    config.chmod(0o644)
    result = run_cli("--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    for sub in ("state", "logs"):
        for p in [folder / sub, *(folder / sub).rglob("*")]:
            os.chown(p, NOBODY, NOBODY)
    return config


@as_root
def test_a_control_command_run_as_root_on_a_users_state_creates_nothing(shared_folder: Path) -> None:
    config = _nobodys_state(shared_folder)
    (shared_folder / "state" / "state.json.lock").unlink()  # as after a reboot, or never there
    before = listing(shared_folder)
    for command in (["reset-breaker", "--strategy", "alpha"], ["reset-kill-switch"], ["reconcile"],
                    ["trade", "--strategy", "alpha", "close"]):
        result = run_cli(*command, "--config", str(config), env={"GO_TRADER_STATUS_TOKEN": "t0ken"})
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "belongs to user nobody" in result.stderr and "run it as the owner" in result.stderr, result.stderr
        assert "running daemon" not in result.stderr
        assert listing(shared_folder) == before, command  # no lock file, no log, no state change
    # so the owner (the service's user) can still take the lock and use its state
    result = _as_nobody("reset-breaker", "--config", str(config), "--strategy", "alpha", "--by", "owner")
    assert result.returncode == 0, (result.stdout, result.stderr)


@as_root
def test_a_lock_file_the_user_cannot_open_is_reported_as_such(shared_folder: Path) -> None:
    config = _nobodys_state(shared_folder)
    lock = shared_folder / "state" / "state.json.lock"
    lock.unlink()
    lock.write_text("")  # root's, 0600: the leftover of a root run
    lock.chmod(0o600)
    result = _as_nobody("reset-breaker", "--config", str(config), "--strategy", "alpha")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "permission denied" in result.stderr and "belongs to user root" in result.stderr, result.stderr
    assert "running daemon" not in result.stderr and "Traceback" not in result.stderr


def test_a_read_only_state_folder_is_reported_as_such(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")], state_file="state/state.json")
    (tmp_path / "state").mkdir()
    assert run_cli("--config", str(config), "--once").returncode == 0
    (tmp_path / "state" / "state.json.lock").unlink()
    with read_only(tmp_path / "state"):
        result = run_cli("reset-breaker", "--config", str(config), "--strategy", "alpha")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "running daemon" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert ("read-only" in result.stderr) if os.geteuid() == 0 else ("permission denied" in result.stderr)


def test_a_link_at_the_lock_is_reported_as_a_link(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    assert run_cli("--config", str(config), "--once").returncode == 0
    victim = _victim(tmp_path)
    (tmp_path / "state.json.lock").unlink()
    (tmp_path / "state.json.lock").symlink_to(victim)
    result = run_cli("reset-breaker", "--config", str(config), "--strategy", "alpha")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "symbolic link" in result.stderr and "running daemon" not in result.stderr, result.stderr
    assert victim.read_text() == "precious\n"


def test_a_held_lock_still_means_a_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    assert run_cli("--config", str(config), "--once").returncode == 0
    with StateLock(tmp_path / "state.json"):
        result = run_cli("reset-breaker", "--config", str(config), "--strategy", "alpha")
    assert result.returncode == 1 and "a running daemon holds" in result.stderr, result.stderr
    assert json.loads((tmp_path / "state.json").read_text())["schema_version"] >= 1
