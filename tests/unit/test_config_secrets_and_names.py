"""Config messages never echo a secret pasted into a field (token_env, url_env, api_base, or
anywhere else), and every name rule matches the whole value ("mom\\n" is not "mom")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler import cli
from scheduler.config import ConfigError, load_config, redact_secrets, status_problems

BOT_TOKEN = "123456789:AAHLEAKME5xxxxxxxxxxxxxxxxxxxxxxxxx"
HOOK = "https://discord.com/api/webhooks/1/LEAKME4"
LEAKS = ("LEAKME", "AAHLEAK")


def _spot(sid: str = "a", symbol: str = "BTC/USDT") -> dict[str, Any]:
    return {"id": sid, "type": "spot", "script": "check_strategy.py", "args": ["sma_crossover", symbol, "1h"],
            "capital": 1000}


def _write(folder: Path, **doc: Any) -> Path:
    body = {"strategies": [_spot()], **doc}
    (folder / "config.json").write_text(json.dumps(body))
    return folder / "config.json"


def _problems(folder: Path, **doc: Any) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(_write(folder, **doc))
    return "\n".join(e.value.problems)


def _no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, text


@pytest.mark.parametrize(("channel", "key", "value", "looks"), [
    ("telegram", "token_env", BOT_TOKEN, "looks like a Telegram bot token"),
    ("telegram", "token_env", "123456:AAHLEAKME5", "looks like a Telegram bot token"),
    ("webhook", "url_env", HOOK, "looks like a URL"),
    ("webhook", "url_env", "LEAKME not a name", "is not an environment variable name"),
])
def test_a_secret_in_a_variable_name_field_is_described_never_echoed(tmp_path: Path, channel: str, key: str,
                                                                      value: str, looks: str) -> None:
    text = _problems(tmp_path, notifications={channel: {"chat_ids": [111], key: value} if channel == "telegram"
                                              else {key: value}})
    _no_leak(text)
    assert f"notifications.{channel}.{key}: the value ({len(value)} characters, not shown" in text
    assert looks in text and "environment variable" in text


@pytest.mark.parametrize("api_base", [
    "api.telegram.org/bot123456:AAHLEAKME6",  # invalid: no scheme
    "https://api.telegram.org/bot123456:AAHLEAKME6",  # a valid URL with the token in its path
    "https://api.telegram.org/botAAHLEAKME6:x",
    "https://user:LEAKME@api.telegram.org",  # credentials in the authority
    "ftp://LEAKME",
])
def test_an_unusable_api_base_is_refused_without_showing_it(tmp_path: Path, api_base: str) -> None:
    text = _problems(tmp_path, notifications={"telegram": {"chat_ids": [1], "api_base": api_base}})
    _no_leak(text)
    assert "notifications.telegram.api_base: the value" in text and "https://api.telegram.org" in text


@pytest.mark.parametrize("api_base", ["https://api.telegram.org", "http://127.0.0.1:18301", "http://[::1]:8081/",
                                      "https://proxy.example/telegram/"])
def test_a_plain_api_base_is_accepted(tmp_path: Path, api_base: str) -> None:
    tg = load_config(_write(tmp_path, notifications={"telegram": {"chat_ids": [1], "api_base": api_base}}))
    assert tg.notifications.telegram is not None and tg.notifications.telegram.api_base == api_base.rstrip("/")


def test_pydantic_errors_under_notifications_do_not_show_string_input(tmp_path: Path) -> None:
    text = _problems(tmp_path, notifications={"telegram": {"chat_ids": [BOT_TOKEN], "group_interval_s": HOOK,
                                                           "bot_username": BOT_TOKEN}})
    _no_leak(text)
    assert "notifications.telegram.chat_ids[0]: expected an integer, got a string of" in text
    assert "notifications.telegram.group_interval_s: expected a number" in text
    assert "notifications.telegram.bot_username: the value" in text


def test_a_token_pasted_anywhere_else_is_redacted_from_every_message(tmp_path: Path) -> None:
    text = _problems(tmp_path, strategies=[_spot(BOT_TOKEN), _spot("b", HOOK)])
    _no_leak(text)
    assert "strategies[0].id: id '<a bot token, not shown>'" in text
    assert redact_secrets("port 127.0.0.1:18301, at 12:30, line 3:14") == "port 127.0.0.1:18301, at 12:30, line 3:14"


def test_validate_config_prints_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, notifications={
        "telegram": {"chat_ids": [111], "token_env": BOT_TOKEN, "api_base": "api.telegram.org/bot123456:AAHLEAKME6"},
        "webhook": {"url_env": HOOK}})
    assert cli.main(["validate-config", "--config", str(config)]) == 2
    out = capsys.readouterr()
    _no_leak(out.out + out.err)
    assert out.err.count("not shown") == 3


# -- B: names match as a whole (re.match with "$" accepts a final "\n") ----------------------------
@pytest.mark.parametrize(("strategy", "fragment"), [
    (_spot("mom\n"), "strategies[0].id: id 'mom\\n' must be"),
    (_spot("scheduler\n"), "strategies[0].id: id 'scheduler\\n' must be"),
    (_spot("a", "BTC/USDT\n"), "symbol 'BTC/USDT\\n' must look like"),
])
def test_a_trailing_newline_never_passes_a_name_rule(tmp_path: Path, strategy: dict, fragment: str) -> None:
    assert fragment in _problems(tmp_path, strategies=[strategy])


@pytest.mark.parametrize("section", [
    {"telegram": {"chat_ids": [1], "token_env": "GO_TRADER_TELEGRAM_TOKEN\n"}},
    {"webhook": {"url_env": "GO_TRADER_WEBHOOK_URL\n"}},
    {"telegram": {"chat_ids": [1], "api_base": "https://api.telegram.org\n"}},
    {"telegram": {"chat_ids": [1], "bot_username": "my_trader_bot\n"}},
])
def test_a_trailing_newline_never_passes_a_notifications_rule(tmp_path: Path, section: dict) -> None:
    assert "notifications." in _problems(tmp_path, notifications=section)


def test_a_status_token_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))
    assert status_problems(config, {"GO_TRADER_STATUS_TOKEN": "s3cret\n"})
    assert status_problems(config, {"GO_TRADER_STATUS_TOKEN": "s3cret"}) == []


def test_bot_username_is_kept_without_its_at(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, notifications={"telegram": {"chat_ids": [1], "bot_username": "@My_Bot"}}))
    assert config.notifications.telegram is not None and config.notifications.telegram.bot_username == "My_Bot"
