"""Free text in control requests (who asked, names) that cannot be saved is refused at the
boundary: HTTP 400 naming the field, CLI exit 2. Accepted, it made the next save of the state
fail, and trading halted for good."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scheduler.clock import SystemClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from scheduler.state_store import audit_log_path, load_state
from tests.integration.harness import DaemonProcess, run_cli, spot, wait_for, write_config
from tests.integration.test_control import TOKEN, _blocked_state, _post

#: text no UTF-8 file can hold, or that would break a log line
BAD_TEXT = ["\ud800", "x\udfffy", "\udcff", "alice\nbob", "tab\there", "\x00", "a\u2028b", "x" * 1000]


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    _blocked_state(tmp_path, config)
    return config


def test_the_engine_refuses_unsavable_text_before_it_runs_anything(blocked: Path) -> None:
    folder = blocked.parent
    before = (folder / "state.json").read_bytes()
    d = Daemon(load_config(blocked), blocked, clock=SystemClock(), state_path=folder / "state.json",
               log_dir=folder / "logs", stdout_logs=False)
    d.open()
    try:
        for bad in BAD_TEXT:
            with pytest.raises(ValueError, match=r"^by must be .*printable text"):
                d.execute("reset_breaker", {"strategy": "alpha"}, bad)
            with pytest.raises(ValueError, match=r"^strategy must be "):
                d.execute("reset_breaker", {"strategy": bad}, "alice")
            with pytest.raises(ValueError, match=r"^symbol must be "):
                d.execute("trade", {"strategy": "alpha", "action": "enter", "symbol": bad}, "alice")
        assert (folder / "state.json").read_bytes() == before and not audit_log_path(folder / "state.json").exists()
        assert not d.halted
        assert d.execute("reset_breaker", {"strategy": "alpha"}, "alice \u00e9\u4e2d (cli)")["ok"] is True
    finally:
        d.close()
    assert load_state(folder / "state.json").account.audit[-1].by == "alice \u00e9\u4e2d (cli)"


@pytest.mark.parametrize("field", ["--by", "--strategy"])
@pytest.mark.parametrize("bad", [os.fsdecode(b"\xff"), os.fsdecode(b"\xed\xa0\x80"), "a\nb"],
                         ids=["latin-1-byte", "utf-8-encoded-surrogate", "newline"])
def test_the_cli_refuses_unsavable_text_with_exit_2(blocked: Path, field: str, bad: str) -> None:
    folder = blocked.parent
    before = (folder / "state.json").read_bytes()
    args = {"--by": "alice", "--strategy": "alpha", field: bad}
    result = run_cli("reset-breaker", "--config", str(blocked), *[x for kv in args.items() for x in kv])
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert f"{field} must be 1 to" in result.stderr and "printable text" in result.stderr, result.stderr
    assert (folder / "state.json").read_bytes() == before and not audit_log_path(folder / "state.json").exists()


def test_the_cli_refuses_a_bad_request_id_with_exit_2(blocked: Path) -> None:
    result = run_cli("reset-breaker", "--config", str(blocked), "--strategy", "alpha", "--request-id", "a b")
    assert result.returncode == 2 and "request_id must be 1 to 64 letters" in result.stderr, result.stderr


def test_http_refuses_unsavable_text_with_400_and_trading_goes_on(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")], interval_seconds=600)
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": TOKEN}) as d:
        port = d.port()
        wait_for(lambda: d.get("/health", TOKEN)[0] == 200, what="the first cycle")
        for bad in BAD_TEXT:
            for path, body, field in [("/reset-breaker", {"strategy": "alpha", "by": bad}, "by"),
                                      ("/reset-kill-switch", {"by": bad}, "by"),
                                      ("/reset-breaker", {"strategy": bad}, "strategy"),
                                      ("/trade", {"strategy": "alpha", "action": "enter", "symbol": bad}, "symbol"),
                                      ("/trade", {"strategy": "alpha", "action": bad}, "action"),
                                      ("/reset-kill-switch", {"note": bad}, "note")]:
                code, doc = _post(port, path, body)
                assert code == 400, (path, body, code, doc)
                assert doc["error"].startswith(f"{field} must be 1 to") and "printable text" in doc["error"], doc
            code, doc = _post(port, "/reset-kill-switch", {bad: "x"})  # a field's name is text too
            assert code == 400 and doc["error"].startswith("a field name must be 1 to"), (bad, code, doc)
        assert d.get("/health", TOKEN) == (200, {"status": "ok"})
        code, doc = _post(port, "/reset-breaker", {"strategy": "alpha", "by": "zo\u00eb"})
        assert code == 200 and doc["ok"] is True and doc["by"].startswith("zo\u00eb (http "), doc
        # the longest name the CLI takes still fits once the CLI and the server tag it
        name = "n" * 100
        result = run_cli("reset-kill-switch", "--config", str(config), "--by", name,
                         env={"GO_TRADER_STATUS_TOKEN": TOKEN})
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert json.loads(result.stdout)["by"].startswith(f"{name} (cli) (http 127.0.0.1)")
        assert run_cli("reset-kill-switch", "--config", str(config), "--by", name + "n").returncode == 2
        assert d.get("/health", TOKEN) == (200, {"status": "ok"})
    audit = [json.loads(x) for x in audit_log_path(tmp_path / "state.json").read_text().splitlines()]
    assert [a["by"].split(" (")[0] for a in audit] == ["zo\u00eb", name]
