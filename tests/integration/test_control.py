"""A person's controls, through the real CLI and HTTP: resets with their audit trail, manual
trades sized by the backend, and reconciliation catching a corrupted state.json."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.clock import SystemClock
from scheduler.config import load_config
from scheduler.daemon import Daemon
from scheduler.engine import risk
from scheduler.state_store import audit_log_path, load_state, save_state
from tests.integration.harness import (
    REPO,
    DaemonProcess,
    run_cli,
    spot,
    state_doc,
    wait_for,
    write_config,
)

TOKEN = "t0ken"


def _post(port: int, path: str, body: dict, token: str | None = TOKEN) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        doc = json.load(e)
        e.close()
        return e.code, doc


def _blocked_state(folder: Path, config: Path) -> None:
    """A saved state whose 'alpha' sleeve is blocked by the drawdown kill switch."""
    d = Daemon(load_config(config), config, clock=SystemClock(), state_path=folder / "state.json",
               log_dir=folder / "logs", stdout_logs=False)
    d.open()
    d.close()
    state = load_state(folder / "state.json")
    now = datetime.now(UTC)
    risk.add_block(state.sleeves["alpha"].risk.blocks, "MAX_DRAWDOWN", "test: 61% below peak", now, None)
    state.sleeves["alpha"].risk.peak_equity_usd = 2600.0
    state.sleeves["alpha"].risk.consecutive_losses = 3
    save_state(folder / "state.json", state)


def test_reset_breaker_from_the_cli_with_no_daemon_running(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    _blocked_state(tmp_path, config)
    result = run_cli("reset-breaker", "--config", str(config), "--strategy", "alpha", "--by", "alice")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ok"] is True and out["scope"] == "alpha" and out["by"] == "alice (cli)"
    assert "lifted MAX_DRAWDOWN on alpha" in out["detail"] and "no position was opened or closed" in out["detail"]
    state = load_state(tmp_path / "state.json")
    sleeve = state.sleeves["alpha"]
    assert sleeve.risk.blocks == {} and sleeve.risk.consecutive_losses == 0
    assert sleeve.risk.peak_equity_usd == 1000.0  # rebased to the current equity
    audit = [json.loads(x) for x in audit_log_path(tmp_path / "state.json").read_text().splitlines()]
    assert len(audit) == 1 and audit[0]["by"] == "alice (cli)" and audit[0]["action"] == "reset_breaker"
    assert audit[0]["before"]["blocks"]["MAX_DRAWDOWN"]["detail"] == "test: 61% below peak"
    assert audit[0]["before"]["peak_equity_usd"] == 2600.0 and audit[0]["before"]["consecutive_losses"] == 3
    assert state.account.audit[-1].action == "reset_breaker"

    unknown = run_cli("reset-breaker", "--config", str(config), "--strategy", "nope")
    assert unknown.returncode == 1 and "unknown strategy 'nope'" in unknown.stdout


def test_controls_over_http_and_the_cli_talking_to_a_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py"), spot("beta", "check_hold.py")])
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": TOKEN}) as d:
        wait_for(lambda: (state_doc(tmp_path) or {}).get("cycle_count") == 1, what="the first cycle")
        port = d.port()
        assert _post(port, "/reset-kill-switch", {}, token=None)[0] == 401
        assert _post(port, "/reset-kill-switch", {}, token="wrong")[0] == 401
        assert _post(port, "/nope", {})[0] == 404
        code, doc = _post(port, "/reset-kill-switch", {"by": "bob"})
        assert code == 200 and doc["scope"] == "account" and doc["by"] == "bob (http 127.0.0.1)"
        assert "the kill switch was not active" in doc["detail"]

        # a manual entry: the backend sizes it (95 % of the sleeve's cash, cut to 20 % of the 2,000 USD
        # account by the position cap); the caller cannot
        code, doc = _post(port, "/trade", {"strategy": "alpha", "action": "enter", "quantity": "10"})
        assert code == 400 and "the backend sizes manual trades" in doc["error"]
        code, doc = _post(port, "/trade", {"strategy": "alpha", "action": "enter", "by": "carol"})
        assert code == 200 and doc["ok"] is True, doc
        fill = next(e for e in doc["events"] if e["kind"] == "fill")
        assert fill["reason"] == "manual" and fill["side"] == "buy"
        assert fill["capped_by"] == "MAX_POSITION_PCT"
        # at most the cap, short of it by less than one amount step (1e-5 BTC) and the fee
        assert 400.0 - fill["fill_price"] * 1e-5 - 0.5 < fill["notional_usd"] <= 400.0
        code, doc = _post(port, "/trade", {"strategy": "alpha", "action": "enter"})
        assert code == 200 and doc["ok"] is False and "nothing to do" in doc["detail"]
        code, doc = _post(port, "/trade", {"strategy": "alpha", "action": "close"})
        assert code == 200 and doc["ok"] is True
        assert next(e for e in doc["events"] if e["kind"] == "fill")["side"] == "sell"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            status = json.load(r)
        alpha = next(s for s in status["strategies"] if s["id"] == "alpha")
        assert alpha["trade_count"] == 2 and alpha["positions"] == []

        # the CLI finds the daemon holding the state and sends the command over HTTP
        result = run_cli("reset-breaker", "--config", str(config), "--strategy", "beta", "--by", "dave",
                         env={"GO_TRADER_STATUS_TOKEN": TOKEN})
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["by"] == "dave (cli) (http 127.0.0.1)"
        no_token = run_cli("reset-kill-switch", "--config", str(config), env={"GO_TRADER_STATUS_TOKEN": ""})
        assert no_token.returncode == 1 and "a running daemon holds" in no_token.stderr
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    audit = [json.loads(x) for x in audit_log_path(tmp_path / "state.json").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["reset_kill_switch", "reset_breaker"]
    trades = [json.loads(x) for x in (tmp_path / "state.trades.jsonl").read_text().splitlines()]
    assert [t["reason"] for t in trades] == ["manual", "manual"]


def test_control_endpoints_are_off_without_a_token(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": ""}) as d:
        code, doc = _post(d.port(), "/reset-kill-switch", {}, token=None)
        assert code == 403 and "GO_TRADER_STATUS_TOKEN" in doc["error"]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


def test_reconcile_finds_a_corrupted_state(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha"), spot("beta")])
    assert run_cli("--config", str(config), "--once").returncode == 0
    clean = run_cli("reconcile", "--config", str(config))
    assert clean.returncode == 0 and json.loads(clean.stdout)["differences"] == []
    doc = json.loads((tmp_path / "state.json").read_text())
    doc["sleeves"]["alpha"]["cash_usd"] += 100.0
    doc["sleeves"]["beta"]["positions"]["BTC/USDT"]["quantity"] *= 2
    (tmp_path / "state.json").write_text(json.dumps(doc))
    result = run_cli("reconcile", "--config", str(config))
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False and len(out["differences"]) == 2
    assert any(d.startswith("alpha.cash_usd: state.json says") for d in out["differences"])
    assert any(d.startswith("beta.positions[BTC/USDT]") for d in out["differences"])
    assert "Reconciliation found 2 difference(s)" in (tmp_path / "logs" / "scheduler.log").read_text()
    # the daemon, and a command that would change the books, refuse to start on them: nothing written
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "state.json.lock"}
    for argv in (("--config", str(config), "--once"),
                 ("trade", "--config", str(config), "--strategy", "alpha", "enter"),
                 ("reset-kill-switch", "--config", str(config))):
        refused = run_cli(*argv)
        assert refused.returncode == 1, (argv, refused.stderr)
        assert "disagrees with its trade log" in refused.stderr and "alpha.cash_usd" in refused.stderr, argv
        assert "go-trader reconcile" in refused.stderr, argv
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "state.json.lock"}
    assert after == before


def test_a_trade_retried_with_its_request_id_is_answered_not_run_twice(tmp_path: Path) -> None:
    """A trade whose answer was lost (a cut connection, a crash after the save) is answerable:
    the same request id, even after a restart, returns the first answer and trades nothing more."""
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    assert run_cli("--config", str(config), "--once").returncode == 0  # a state to trade in
    first = run_cli("trade", "--config", str(config), "--strategy", "alpha", "enter", "--request-id", "req-1")
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)  # stdout is exactly the JSON document
    assert answer["ok"] is True and answer["request_id"] == "req-1" and "replayed" not in answer
    again = run_cli("trade", "--config", str(config), "--strategy", "alpha", "enter", "--request-id", "req-1")
    replay = json.loads(again.stdout)
    assert replay["replayed"] is True and replay["events"] == answer["events"]
    state = load_state(tmp_path / "state.json")
    assert state.sleeves["alpha"].trade_count == 1  # one fill, not two
    other = run_cli("reset-kill-switch", "--config", str(config), "--request-id", "req-1")
    assert other.returncode == 1 and "already used for another request (trade " in other.stdout
    closing = run_cli("trade", "--config", str(config), "--strategy", "alpha", "close", "--request-id", "req-1")
    assert closing.returncode == 1 and "already used for another request" in json.loads(closing.stdout)["error"]
    assert load_state(tmp_path / "state.json").sleeves["alpha"].trade_count == 1  # the close did not run either
    fresh = run_cli("trade", "--config", str(config), "--strategy", "alpha", "close")
    out = json.loads(fresh.stdout)
    assert out["ok"] is True and len(out["request_id"]) == 32  # a new random id, printed


def test_a_manual_trade_on_an_options_strategy_says_what_manual_trades_are_for(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"id": "alpha", "type": "spot", "script": "check_strategy.py",
                                      "args": ["rsi", "BTC/USDT", "1h"], "capital": 1000},
                                     {"id": "cc", "type": "options", "script": "check_options.py",
                                      "args": ["covered_calls", "BTC"], "capital": 5000}],
                          checkers_dir=str(REPO / "checkers"))
    assert run_cli("--config", str(config), "--once").returncode == 0
    result = run_cli("trade", "--config", str(config), "--strategy", "cc", "enter")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error.startswith("strategy 'cc' is an options strategy: manual trades enter and close a spot strategy's symbol")
    assert error.endswith("spot strategies: alpha")


def test_a_command_whose_save_fails_is_pending_then_committed_and_logged_when_a_save_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer says the change is pending (not that it failed); once a save works, what it did
    is logged: the fill in the strategy's log and events.jsonl, the reset in the audit log."""
    import scheduler.daemon as daemon_module
    from scheduler.control import Command
    from scheduler.engine.errors import StateSaveError

    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    d = Daemon(load_config(config), config, clock=SystemClock(), state_path=tmp_path / "state.json",
               log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    try:
        real_save = daemon_module.save_state

        def full(path: Path, state: object) -> None:
            raise StateSaveError(f"could not save state to {path}: [Errno 28] No space left on device")

        monkeypatch.setattr(daemon_module, "save_state", full)
        trade = Command("trade", {"strategy": "alpha", "action": "enter", "request_id": "full1"}, "alice")
        d._commands.put(trade)
        d.process_commands()
        assert trade.result["ok"] is False and trade.result["pending"] is True
        assert trade.result["request_id"] == "full1" and "takes effect when a save succeeds" in trade.result["error"]
        reset = Command("reset_breaker", {"strategy": "alpha", "request_id": "rb1"}, "bob")
        d._commands.put(reset)
        d.process_commands()
        assert "halted" in reset.result["error"] and "pending" not in reset.result  # refused while halted
        events = tmp_path / "logs" / "events.jsonl"
        assert '"kind": "fill"' not in (events.read_text() if events.exists() else "")  # not committed yet
        monkeypatch.setattr(daemon_module, "save_state", real_save)
        d._retry_save()
        assert d.halted is None and "full1" in load_state(tmp_path / "state.json").requests
        assert '"fill"' in events.read_text()
        assert "Manual enter of BTC/USDT requested by alice" in (tmp_path / "logs" / "alpha.log").read_text()
        replay = d.execute("trade", {"strategy": "alpha", "action": "enter", "request_id": "full1"}, "alice")
        assert replay["replayed"] is True and replay["ok"] is True
        monkeypatch.setattr(daemon_module, "save_state", full)
        with pytest.raises(StateSaveError):
            d.execute("reset_breaker", {"strategy": "alpha"}, "bob")
        monkeypatch.setattr(daemon_module, "save_state", real_save)
        d._retry_save()
        assert "reset_breaker" in audit_log_path(tmp_path / "state.json").read_text()
        assert "AUDIT reset_breaker [alpha] by bob" in (tmp_path / "logs" / "scheduler.log").read_text()
    finally:
        d.close()


def test_the_resets_check_their_fields_and_errors_keep_their_quotes(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", "check_hold.py")])
    assert run_cli("--config", str(config), "--once").returncode == 0
    d = Daemon(load_config(config), config, clock=SystemClock(), state_path=tmp_path / "state.json",
               log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    try:
        from scheduler.control import Command

        answers = []
        for kind, args in (("reset_kill_switch", {"strategy": "alpha"}), ("reset_breaker", {"junk": "x"}),
                           ("reset_breaker", {}), ("trade", {"strategy": "alpha", "action": "buy"}),
                           ("trade", {"strategy": "nope", "action": "enter"})):
            c = Command(kind, args, "bob")
            d._commands.put(c)
            d.process_commands()
            answers.append(c.result["error"])
        assert answers[0].startswith("unexpected fields ['strategy'] for reset_kill_switch: it takes no fields")
        assert answers[1].startswith("unexpected fields ['junk'] for reset_breaker: it takes strategy")
        assert answers[2].startswith("strategy is missing")
        assert answers[3] == "action must be 'enter' or 'close', got 'buy'"
        assert answers[4].startswith("unknown spot strategy 'nope'; known: alpha")
        assert load_state(tmp_path / "state.json").account.audit == []  # nothing was reset
    finally:
        d.close()
