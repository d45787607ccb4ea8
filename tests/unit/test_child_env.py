"""Checkers get only what they need from the scheduler's environment (hardening item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler import runner
from scheduler.runner import ForkLauncher, Job, SubprocessLauncher, run_jobs

FAULTS = Path(__file__).resolve().parents[1] / "fault_checkers"

SECRETS = {
    "GO_TRADER_STATUS_TOKEN": "status-token-value",
    "GO_TRADER_EXCHANGE_API_KEY": "exchange-key-value",
    "GO_TRADER_EXCHANGE_SECRET": "exchange-secret-value",
    "GO_TRADER_EXCHANGE_PASSWORD": "exchange-password-value",
    "GO_TRADER_TELEGRAM_TOKEN": "telegram-token-value",
    "GO_TRADER_TELEGRAM_CHAT_ID": "telegram-chat-value",
    "AWS_SECRET_ACCESS_KEY": "aws-value",
    "GITHUB_TOKEN": "github-value",
    "NOTIFY_SOCKET": "/run/systemd/notify",  # a checker must not talk to systemd for the daemon
    "SOME_UNRELATED_VARIABLE": "unrelated-value",
}
CONTEXT = {"GO_TRADER_NOW_MS": "1700000000000", "GO_TRADER_CACHE_DIR": "/tmp/cache"}


def test_the_allow_list_keeps_what_checkers_read_and_nothing_secret():
    parent = {"PATH": "/usr/bin", "HOME": "/home/x", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
              "TMPDIR": "/tmp", "PYTHONHASHSEED": "0", **CONTEXT, **SECRETS}
    env = runner.child_env(parent)
    for name in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONHASHSEED", *CONTEXT):
        assert env[name] == parent[name]
    assert not set(SECRETS) & set(env)
    assert all(env[k] == v for k, v in runner.CHILD_ENV.items())


def test_extra_names_pass_through_but_never_secret_looking_ones():
    parent = {"GO_TRADER_CHECKER_ENV": "MY_FLAG, GO_TRADER_STATUS_TOKEN MY_API_KEY LC_TOKEN",
              "MY_FLAG": "1", "GO_TRADER_STATUS_TOKEN": "t", "MY_API_KEY": "k", "LC_TOKEN": "x"}
    env = runner.child_env(parent)
    assert env["MY_FLAG"] == "1"
    assert {"GO_TRADER_STATUS_TOKEN", "MY_API_KEY", "LC_TOKEN"}.isdisjoint(env)


@pytest.mark.parametrize("launcher_class", [ForkLauncher, SubprocessLauncher], ids=["fork", "subprocess"])
def test_a_checker_sees_none_of_the_daemons_secrets(monkeypatch, launcher_class):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    launcher = launcher_class()  # the daemon makes its launcher per cycle, from its environment then
    try:
        job = Job("env", (), script=FAULTS / "check_env_dump.py", env={"GO_TRADER_MARKET": "{}", **CONTEXT})
        result = run_jobs(launcher, [job])[0]
    finally:
        launcher.close()
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert not set(SECRETS) & set(seen)
    assert not any(value in json.dumps(seen) for value in SECRETS.values())
    assert seen["GO_TRADER_MARKET"] == "{}" and seen["LANG"] == "C.UTF-8"
    assert all(seen[k] == v for k, v in CONTEXT.items())
