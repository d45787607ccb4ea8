"""The real CLI against hostile configs: every bad input class ends in exit status 2, a message
naming where the problem is, no traceback, and not one file written, for both
``validate-config`` and ``--once``. Commands that read or change a saved state refuse a
missing one without creating anything. ``--help`` lists every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import REPO, spot, write_config

SECRET_VALUE = "SUPERSECRETVALUE-7c1d9e"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``go-trader ARGS`` with GO_TRADER_STATUS_TOKEN unset unless ``env`` sets it."""
    base = {k: v for k, v in os.environ.items() if k != "GO_TRADER_STATUS_TOKEN"}
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})})


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _config(folder: Path, **overrides: Any) -> Path:
    return write_config(folder, [spot("alpha", "check_hold.py")], **overrides)


def _edit_text(folder: Path, edit: Callable[[str], str], **overrides: Any) -> Path:
    path = _config(folder, **overrides)
    path.write_text(edit(path.read_text()))
    return path


def _splice(member: str) -> Callable[[str], str]:
    return lambda text: text.rstrip()[:-1] + ", " + member + "}"


def _bytes(folder: Path, edit: Callable[[bytes], bytes], **overrides: Any) -> Path:
    path = _config(folder, **overrides)
    path.write_bytes(edit(path.read_bytes()))
    return path


def _state_dir(folder: Path) -> Path:
    (folder / "state.json").mkdir()
    return _config(folder)


def _strategy_override(**fields: Any) -> Callable[[Path], Path]:
    return lambda f: write_config(f, [spot("alpha", "check_hold.py", **fields)])


#: (name, make the config in the folder, what stderr must name)
BAD_CONFIGS: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    ("not utf-8", lambda f: _bytes(f, lambda b: b.replace(b'"logs"', b'"l\xe9gs"'), log_dir="logs"),
     ["log_dir: this text is not valid UTF-8", "byte 0xe9"]),
    ("utf-16", lambda f: _bytes(f, lambda b: b.decode().encode("utf-16")), ["config.json: the file is UTF-16"]),
    ("nested 1000 deep", lambda f: _edit_text(f, _splice('"deep": ' + "[" * 1000 + "]" * 1000)),
     ["deep[0][0][0]", "nested more than 64 levels"]),
    ("5000-digit integer", lambda f: _edit_text(f, lambda t: t.replace('"interval_seconds": 600',
                                                                       '"interval_seconds": ' + "7" * 5000)),
     ["interval_seconds: an integer of 5000 digits"]),
    ("NaN literal", lambda f: _edit_text(f, lambda t: t.replace('"interval_seconds": 600', '"interval_seconds": NaN')),
     ["interval_seconds: NaN is not a JSON number"]),
    ("duplicate keys", lambda f: _edit_text(f, _splice('"interval_seconds": 60')),
     ["interval_seconds: key 'interval_seconds' appears more than once"]),
    ("state_file name too long", lambda f: _config(f, state_file="s" * 300), ["state_file: the name 's"]),
    ("log_dir component too long", lambda f: _config(f, log_dir="logs/" + "l" * 256 + "/x"), ["log_dir: the name 'l"]),
    ("NUL in state_file", lambda f: _config(f, state_file="st\x00ate.json"), ["state_file: the path contains a NUL"]),
    ("log_dir is /dev/null", lambda f: _config(f, log_dir="/dev/null"), ["log_dir: /dev/null exists and is not a folder"]),
    ("state_file is a folder", _state_dir, ["state_file: ", "state.json is a folder"]),
    ("state_file under a file", lambda f: _config(f, state_file="config.json/state.json"),
     ["state_file: ", "config.json exists and is not a folder"]),
    ("state_file collides with a log", lambda f: _config(f, state_file="logs/scheduler.log"),
     ["state_file: ", "both as a log and as state"]),
    ("interval 1e30", lambda f: _edit_text(f, lambda t: t.replace('"interval_seconds": 600', '"interval_seconds": 1e30')),
     ["interval_seconds: "]),
    ("interval 10**30", lambda f: _config(f, interval_seconds=10**30), ["interval_seconds: an integer of 31 digits"]),
    ("interval above 30 days", lambda f: _config(f, interval_seconds=30 * 86400 + 1),
     ["interval_seconds: Input should be less than or equal to 2592000"]),
    ("strategy interval 10**15", _strategy_override(interval_seconds=10**15), ["strategies[0].interval_seconds: "]),
    ("capital 1e300", _strategy_override(capital=1e300), ["strategies[0].capital: "]),
    ("0.0.0.0 without a token", lambda f: _config(f, status={"host": "0.0.0.0"}),
     ["status.host: binding the status server to 0.0.0.0 (not loopback) needs a bearer token"]),
    (":: without a token", lambda f: _config(f, status={"host": "::"}), ["status.host: binding the status server to ::"]),
    ("host name", lambda f: _config(f, status={"host": "example.com"}), ["status.host: host 'example.com' must be"]),
    ("host with a space", lambda f: _config(f, status={"host": "exa mple"}), ["status.host: host 'exa mple'"]),
    ("empty host", lambda f: _config(f, status={"host": ""}), ["status.host: host ''"]),
    ("strategy id scheduler", lambda f: write_config(f, [spot("scheduler", "check_hold.py")]),
     ["strategies[0].id: id 'scheduler' is taken"]),
    ("strategy id Account", lambda f: write_config(f, [spot("Account", "check_hold.py")]),
     ["strategies[0].id: id 'account' is taken: it names the whole account"]),
    ("secret in params", _strategy_override(params={"api_key": SECRET_VALUE}),
     ["strategies[0].params.api_key: secrets must not be stored"]),
    ("secret at the top", lambda f: _config(f, password=SECRET_VALUE), ["password: secrets must not be stored"]),
]


@pytest.mark.parametrize("command", [["validate-config"], ["--once"]], ids=["validate-config", "once"])
@pytest.mark.parametrize("name,make,expected", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_exits_2_naming_the_path_and_writes_nothing(tmp_path: Path, name: str,
                                                               make: Callable[[Path], Path], expected: list[str],
                                                               command: list[str]) -> None:
    config = make(tmp_path)
    before = listing(tmp_path)
    result = run(*command, "--config", str(config))
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("go-trader: configuration error")
    for part in expected:
        assert part in result.stderr, (part, result.stderr)
    assert SECRET_VALUE not in result.stderr + result.stdout
    assert listing(tmp_path) == before


def test_ipv6_loopback_is_accepted_by_validate_config(tmp_path: Path) -> None:
    config = _config(tmp_path, status={"host": "::1"})
    result = run("validate-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["config.json"]


def test_non_loopback_with_a_token_is_accepted(tmp_path: Path) -> None:
    config = _config(tmp_path, status={"host": "0.0.0.0"})
    assert run("validate-config", "--config", str(config), env={"GO_TRADER_STATUS_TOKEN": "t0ken"}).returncode == 0


def test_no_status_server_skips_the_bind_check(tmp_path: Path) -> None:
    config = _config(tmp_path, status={"host": "0.0.0.0"})
    result = run("--config", str(config), "--once", "--no-status-server")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "state.json").is_file()


@pytest.mark.parametrize("flag,value,label", [
    ("--state-file", "DIR", "--state-file: "),
    ("--state-file", "s" * 250, "--state-file: the name"),
    ("--log-dir", "/dev/null", "--log-dir: /dev/null exists and is not a folder"),
])
def test_command_line_paths_are_checked_before_start(tmp_path: Path, flag: str, value: str, label: str) -> None:
    config = _config(tmp_path)
    if value == "DIR":
        (tmp_path / "dir").mkdir()
        value = str(tmp_path / "dir")
    elif not value.startswith("/"):
        value = str(tmp_path / value)
    before = listing(tmp_path)
    result = run("--config", str(config), "--once", flag, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert label in result.stderr
    assert listing(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# A missing state file: only the daemon starts a fresh one

STATE_COMMANDS = [
    ["status"],
    ["reconcile"],
    ["reset-breaker", "--strategy", "alpha"],
    ["reset-kill-switch"],
    ["trade", "--strategy", "alpha", "enter"],
]


@pytest.mark.parametrize("command", STATE_COMMANDS, ids=[c[0] for c in STATE_COMMANDS])
@pytest.mark.parametrize("where", ["config", "flag"])
def test_a_missing_state_file_is_an_error_and_nothing_is_created(tmp_path: Path, command: list[str],
                                                                  where: str) -> None:
    config = _config(tmp_path)
    state = tmp_path / ("state.json" if where == "config" else "elsewhere.json")
    extra = ["--state-file", str(state)] if where == "flag" else []
    before = listing(tmp_path)
    result = run(command[0], "--config", str(config), *extra, *command[1:])
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"state file {state} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    answer = json.loads(result.stdout)  # the command's one JSON document, a failure's too
    assert answer["ok"] is False and f"state file {state} does not exist" in answer["error"]
    assert listing(tmp_path) == before


def test_a_folder_given_as_the_state_file_says_so(tmp_path: Path) -> None:
    result = run("status", "--config", str(_config(tmp_path)), "--state-file", str(tmp_path))
    assert result.returncode == 1 and "give --state-file the state file, not a folder" in result.stderr
    assert json.loads(result.stdout)["ok"] is False


def test_status_after_a_cycle_still_works(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert run("--config", str(config), "--once").returncode == 0
    result = run("status", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert [s["id"] for s in json.loads(result.stdout)["strategies"]] == ["alpha"]


# ---------------------------------------------------------------------------------------------
# Help

COMMAND_NAMES = ["validate-config", "status", "list-strategies", "download-data", "reset-breaker",
                 "reset-kill-switch", "trade", "reconcile", "help"]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"]])
def test_help_lists_every_command(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    for name in COMMAND_NAMES:
        assert f"\n  {name} " in result.stdout, name
    assert "--once" in result.stdout


@pytest.mark.parametrize("name", [n for n in COMMAND_NAMES if n != "help"])
def test_help_command_shows_that_commands_options(name: str) -> None:
    result = run("help", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert all(word not in result.stdout.lower() for word in ("backtester", "reference section", "the lead"))


@pytest.mark.parametrize("name,hint", [("stauts", "did you mean 'status'?"), ("frobnicate", "commands: ")])
def test_unknown_command_is_named(name: str, hint: str) -> None:
    for args in ([name], ["help", name]):
        result = run(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"unknown command {name!r}" in result.stderr and hint in result.stderr


def test_no_user_facing_text_mentions_project_internals() -> None:
    for module in ("scheduler/config.py", "scheduler/cli.py"):
        text = (REPO / module).read_text().lower()
        for word in ("backtester", "reference section", "the lead"):
            assert word not in text, (module, word)


@pytest.mark.parametrize(("kind", "script", "args"), [
    ("spot", "check_options.py", ["sma_crossover", "BTC/USDT", "1h"]),
    ("spot", "check_price.py", ["sma_crossover", "BTC/USDT", "1h"]),
    ("options", "check_strategy.py", ["vol_mean_reversion", "BTC"]),
])
def test_a_strategy_on_the_other_types_checker_is_refused(tmp_path: Path, kind: str, script: str, args: list) -> None:
    doc = json.loads(write_config(tmp_path, []).read_text())
    doc.pop("checkers_dir")  # the project's own checkers
    doc["strategies"] = [{"id": "x", "type": kind, "script": script, "args": args, "capital": 1000}]
    (tmp_path / "config.json").write_text(json.dumps(doc))
    result = run("validate-config", "--config", str(tmp_path / "config.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"script {script!r} cannot run a {kind} strategy" in result.stderr, result.stderr


def test_a_state_file_that_ends_in_a_slash_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = run("--config", str(config), "--once", "--state-file", f"{tmp_path}/x/")
    assert result.returncode == 2 and "names a folder (it ends in a slash)" in result.stderr, result.stderr
    assert not (tmp_path / "x").exists()
