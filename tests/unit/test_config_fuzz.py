"""Hostile config documents: each bad input class ends in a ConfigError naming its JSON path,
never another exception; every numeric setting has an upper bound; random mutations of a
valid config only ever raise ConfigError."""

from __future__ import annotations

import codecs
import copy
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import scheduler.config as cfg
from scheduler.config import (
    MAX_INTERVAL_S,
    Config,
    check_startup,
    load_config,
    parse_config,
    path_text_problem,
    status_problems,
)
from scheduler.engine.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

VALID: dict[str, Any] = {
    "interval_seconds": 600, "log_dir": "logs", "state_file": "state.json",
    "market": {"source": "synthetic", "seed": 42},
    "status": {"host": "127.0.0.1", "port": 0},
    "strategies": [{"id": "a", "type": "spot", "script": "check_strategy.py",
                    "args": ["sma_crossover", "BTC/USDT", "1h"], "capital": 1000}],
}


def _text(doc: dict[str, Any] | None = None) -> str:
    return json.dumps(VALID if doc is None else doc)


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID with the value at a dotted path ("strategies.0.interval_seconds") replaced."""
    doc = copy.deepcopy(VALID)
    node: Any = doc
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[last] = value
    return doc


def _problems_of_bytes(tmp_path: Path, data: bytes) -> list[str]:
    path = tmp_path / "config.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def _splice(extra: str) -> bytes:
    """VALID's text with ``extra`` (a '"key": value' member) added at the top level."""
    return (_text()[:-1] + ", " + extra + "}").encode()


# ---------------------------------------------------------------------------------------------
# The document: one row per bad input class, with the path (or place) its message must name

DOCUMENT_CASES = [
    ("utf-16 with BOM", _text().encode("utf-16"), ["config.json: the file is UTF-16-encoded", "save it as UTF-8"]),
    ("utf-16-le no BOM", _text().encode("utf-16-le"), ["the file looks UTF-16-LE-encoded", "save it as UTF-8"]),
    ("utf-32 with BOM", _text().encode("utf-32"), ["the file is UTF-32-encoded"]),
    ("latin-1 in a value", _text(_with("log_dir", "PLACEHOLDER")).replace("PLACEHOLDER", "l\xe9gs").encode("latin-1"),
     ["log_dir: this text is not valid UTF-8", "byte 0xe9"]),
    ("latin-1 in a key", _splice('"caf\xe9": 1').replace(b"caf\xc3\xa9", b"caf\xe9"), ["not valid UTF-8", "byte 0xe9"]),
    ("invalid byte outside a string", _text().encode().replace(b"{", b"{\xff", 1), ["not valid JSON", "byte 0xff"]),
    ("nested 1000 deep", _splice('"deep": ' + "[" * 1000 + "]" * 1000), ["deep[0][0]", "nested more than 64 levels"]),
    ("objects nested deep", _splice('"o": ' + '{"k": ' * 200 + "1" + "}" * 200), ["o.k.k.k", "nested more than 64"]),
    ("5000-digit integer", _splice('"interval_seconds2": ' + "9" * 5000),
     ["interval_seconds2: an integer of 5000 digits"]),
    ("4301-digit negative integer in a list", json.dumps(_with("strategies.0.args", ["X"])).replace(
        '"X"', "-" + "1" * 4301).encode(), ["strategies[0].args[0]: an integer of 4301 digits"]),
    ("NaN literal", _text(_with("interval_seconds", "NAN")).replace('"NAN"', "NaN").encode(),
     ["interval_seconds: NaN is not a JSON number"]),
    ("Infinity literal", _text(_with("strategies.0.capital", "INF")).replace('"INF"', "Infinity").encode(),
     ["strategies[0].capital: Infinity is not a JSON number"]),
    ("-Infinity literal", _text(_with("risk.max_position_usd", "INF")).replace('"INF"', "-Infinity").encode(),
     ["risk.max_position_usd: -Infinity is not a JSON number"]),
    ("float overflowing to inf", _text(_with("risk.max_position_usd", "INF")).replace('"INF"', "1e400").encode(),
     ["risk.max_position_usd: 1e400 is too large"]),
    ("duplicate top-level key", _splice('"interval_seconds": 60'), ["interval_seconds: key 'interval_seconds' appears more than once"]),
    ("duplicate nested key", _text().replace('"seed": 42', '"seed": 42, "seed": 7').encode(),
     ["market.seed: key 'seed' appears more than once in market"]),
    ("duplicate key in a strategy", _text().replace('"capital": 1000', '"capital": 1000, "capital": 5').encode(),
     ["strategies[0].capital: key 'capital' appears more than once in strategies[0]"]),
]


@pytest.mark.parametrize("name,data,expected", DOCUMENT_CASES, ids=[c[0] for c in DOCUMENT_CASES])
def test_bad_document_is_a_config_error_naming_where(tmp_path: Path, name: str, data: bytes,
                                                     expected: list[str]) -> None:
    text = "\n".join(_problems_of_bytes(tmp_path, data))
    for part in expected:
        assert part in text, (part, text)


def test_problems_are_listed_in_the_configs_order_numbers_as_numbers(tmp_path: Path) -> None:
    doc = copy.deepcopy(VALID)
    doc["strategies"] = [{**VALID["strategies"][0], "id": f"s{i}", "capital": -1 if i in (3, 14) else 1000}
                         for i in range(15)]
    problems = _problems_of_bytes(tmp_path, json.dumps(doc).encode())
    assert [p.split(":")[0] for p in problems] == ["strategies[3].capital", "strategies[14].capital"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(codecs.BOM_UTF8 + _text().encode())
    assert load_config(path).interval_seconds == 600


def test_nesting_at_the_limit_parses_and_is_judged_by_the_schema(tmp_path: Path) -> None:
    depth = cfg.MAX_JSON_DEPTH - 1  # the top-level object is one level
    problems = _problems_of_bytes(tmp_path, _splice('"x": ' + "[" * depth + "]" * depth))
    assert problems == ["x: unknown key 'x' in (top level); allowed keys: " + ", ".join(Config.model_fields)]


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    problems = _problems_of_bytes(tmp_path, _splice('"x": "' + "[{" * 500 + '\\"' + "[" * 500 + '"'))
    assert len(problems) == 1 and problems[0].startswith("x: unknown key 'x'")


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    with open(path, "wb") as f:
        f.truncate(cfg.MAX_CONFIG_BYTES + 10)  # sparse: no disk used
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "larger than 16 MiB" in info.value.problems[0]


def test_a_folder_as_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "cannot read config file" in info.value.problems[0]


# ---------------------------------------------------------------------------------------------
# Paths, host, ids: the pure checks in the schema


@pytest.fixture
def checkers(tmp_path: Path) -> Path:
    folder = tmp_path / "checkers"
    folder.mkdir()
    (folder / "check_strategy.py").write_text("")
    return folder


def _problems(doc: dict[str, Any], checkers: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=checkers.parent, checkers_dir=checkers)
    return info.value.problems


@pytest.mark.parametrize("key", ["state_file", "log_dir", "checkers_dir", "market.root", "market.markets_cache"])
@pytest.mark.parametrize("value,expected", [
    ("st\x00ate", "contains a NUL character"),
    ("x" * 256, "is 256 bytes long"),
    ("a/" + "é" * 128 + "/b", "is 256 bytes long"),  # bytes, not characters
    ("/".join(["d" * 200] * 21), "the path is 4220 bytes long"),
    ("", "the path is empty"),
    ("bad\ud800name", "cannot be encoded"),
])
def test_unusable_path_text_is_refused_at_its_path(checkers: Path, key: str, value: str, expected: str) -> None:
    if key.startswith("market."):
        source = "files" if key == "market.root" else "ccxt"
        doc = _with("market", {"source": source, key.split(".")[1]: value})
    else:
        doc = _with(key, value)
    problems = _problems(doc, checkers)
    assert any(p.startswith(f"{key}: ") and expected in p for p in problems), problems


def test_state_file_name_leaves_room_for_suffixes(checkers: Path) -> None:
    (problem,) = _problems(_with("state_file", "s" * 220), checkers)
    assert problem.startswith("state_file: ") and "at most 215 bytes" in problem and "appends up to 40" in problem
    parse_config(_with("state_file", "s" * 215), base_dir=checkers.parent, checkers_dir=checkers)


def test_a_nul_in_checkers_dir_does_not_break_the_script_check(tmp_path: Path) -> None:
    doc = _with("checkers_dir", "che\x00ckers")
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=tmp_path)
    assert [p.split(":")[0] for p in info.value.problems] == ["checkers_dir"]


@pytest.mark.parametrize("script", ["x" * 300 + ".py", "a\x00.py"])
def test_an_impossible_script_name_is_a_config_error(checkers: Path, script: str) -> None:
    (problem,) = _problems(_with("strategies.0.script", script), checkers)
    assert problem.startswith("strategies[0].script: ")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "10.1.2.3", "fe80::1%eth0"])
def test_ip_literals_and_localhost_are_valid_hosts(checkers: Path, host: str) -> None:
    config = parse_config(_with("status.host", host), base_dir=checkers.parent, checkers_dir=checkers)
    assert config.status.host == host


@pytest.mark.parametrize("host", ["", " ", "exa mple", "example.com", "127.1", "[::1]", "localhost.", "0.0.0.0:80",
                                  "h\x00st"])
def test_host_names_that_need_a_resolver_are_refused(checkers: Path, host: str) -> None:
    (problem,) = _problems(_with("status.host", host), checkers)
    assert problem.startswith("status.host: host ") and "must be 'localhost' or an IP address" in problem


@pytest.mark.parametrize("host,needs_token", [("127.0.0.1", False), ("127.8.9.1", False), ("::1", False),
                                              ("localhost", False), ("0.0.0.0", True), ("::", True),
                                              ("192.168.1.5", True)])
def test_non_loopback_host_needs_the_token(checkers: Path, host: str, needs_token: bool) -> None:
    config = parse_config(_with("status.host", host), base_dir=checkers.parent, checkers_dir=checkers)
    problems = status_problems(config, {})
    assert bool(problems) == needs_token
    if needs_token:
        assert problems[0].startswith(f"status.host: binding the status server to {host} (not loopback)")
        assert "GO_TRADER_STATUS_TOKEN" in problems[0]
    assert status_problems(config, {"GO_TRADER_STATUS_TOKEN": "t0ken"}) == []


@pytest.mark.parametrize("token", [" lead", "trail ", "tab\there", "caf\u00e9", "new\nline"])
def test_a_token_no_client_can_send_is_refused_without_showing_it(checkers: Path, token: str) -> None:
    config = parse_config(VALID, base_dir=checkers.parent, checkers_dir=checkers)
    (problem,) = status_problems(config, {"GO_TRADER_STATUS_TOKEN": token})
    assert problem.startswith("GO_TRADER_STATUS_TOKEN: ") and token.strip() not in problem


@pytest.mark.parametrize("sid", ["scheduler", "Scheduler"])
def test_strategy_id_scheduler_would_share_the_scheduler_log(checkers: Path, sid: str) -> None:
    (problem,) = _problems(_with("strategies.0.id", sid), checkers)
    assert problem.startswith("strategies[0].id: ") and "scheduler.log" in problem


# ---------------------------------------------------------------------------------------------
# check_startup: what the file system says, before anything is written


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _startup_problems(tmp_path: Path, checkers: Path, doc: dict[str, Any], **paths: Path) -> list[str]:
    config = parse_config(doc, base_dir=tmp_path, checkers_dir=checkers)
    state = paths.get("state", tmp_path / config.state_file)
    logs = paths.get("logs", tmp_path / config.log_dir)
    before = _listing(tmp_path)
    try:
        check_startup(config, tmp_path / "config.json", state_path=state, log_dir=logs, env={})
    except ConfigError as e:
        return e.problems
    finally:
        assert _listing(tmp_path) == before  # it looks, never writes
    return []


def test_startup_accepts_fresh_paths(tmp_path: Path, checkers: Path) -> None:
    assert _startup_problems(tmp_path, checkers, VALID) == []


def test_startup_refuses_log_dir_that_is_a_file(tmp_path: Path, checkers: Path) -> None:
    (problem,) = _startup_problems(tmp_path, checkers, _with("log_dir", "/dev/null"))
    assert problem == "log_dir: /dev/null exists and is not a folder; choose a folder (it is created if missing)"


def test_startup_refuses_state_file_that_is_a_folder(tmp_path: Path, checkers: Path) -> None:
    (tmp_path / "state.json").mkdir()
    (problem,) = _startup_problems(tmp_path, checkers, VALID)
    assert problem.startswith(f"state_file: {tmp_path / 'state.json'} is a folder; name a file in it")


def test_startup_refuses_a_device_as_state_file(tmp_path: Path, checkers: Path) -> None:
    (problem,) = _startup_problems(tmp_path, checkers, _with("state_file", "/dev/null"))
    assert problem.startswith("state_file: /dev/null exists and is not a regular file")


def test_a_dangling_link_as_the_state_file_is_named_as_one(tmp_path: Path, checkers: Path) -> None:
    (tmp_path / "link.json").symlink_to(tmp_path / "gone.json")
    (problem,) = _startup_problems(tmp_path, checkers, _with("state_file", "link.json"))
    assert problem == f"state_file: {tmp_path / 'link.json'} is a symbolic link to nothing ({tmp_path / 'gone.json'}); " \
        "name a real file", problem


def test_startup_refuses_a_file_where_a_folder_is_needed(tmp_path: Path, checkers: Path) -> None:
    (tmp_path / "plain").write_text("")
    problems = _startup_problems(tmp_path, checkers, _with("state_file", "plain/sub/state.json"))
    assert problems == [f"state_file: {tmp_path / 'plain'} exists and is not a folder, so "
                        f"{tmp_path / 'plain/sub/state.json'} cannot be created; choose a path inside a folder"]


def test_startup_labels_command_line_overrides(tmp_path: Path, checkers: Path) -> None:
    config = parse_config(VALID, base_dir=tmp_path, checkers_dir=checkers)
    with pytest.raises(ConfigError) as info:
        check_startup(config, tmp_path / "config.json", state_path=tmp_path / ("y" * 250), log_dir=Path("/dev/null"),
                      state_label="--state-file", log_label="--log-dir")
    assert [p.split(":")[0] for p in info.value.problems] == ["--state-file", "--log-dir"]


@pytest.mark.parametrize("state_file", ["logs", "logs/scheduler.log", "logs/events.jsonl", "logs/a.log",
                                        "logs/a.log.3", "logs/scheduler.log.last-good"[:-10]])
def test_startup_refuses_state_that_collides_with_the_logs(tmp_path: Path, checkers: Path, state_file: str) -> None:
    problems = _startup_problems(tmp_path, checkers, _with("state_file", state_file))
    assert len(problems) == 1 and problems[0].startswith("state_file: "), problems


def test_state_inside_the_log_folder_is_fine_without_a_collision(tmp_path: Path, checkers: Path) -> None:
    assert _startup_problems(tmp_path, checkers, _with("state_file", "logs/state.json")) == []


def test_startup_refuses_market_root_that_is_a_file(tmp_path: Path, checkers: Path) -> None:
    (tmp_path / "data").write_text("")
    (problem,) = _startup_problems(tmp_path, checkers, _with("market", {"source": "files", "root": "data"}))
    assert problem.startswith(f"market.root: {tmp_path / 'data'} is not a folder")


def test_startup_refuses_a_files_market_root_that_does_not_exist(tmp_path: Path, checkers: Path) -> None:
    (problem,) = _startup_problems(tmp_path, checkers, _with("market", {"source": "files", "root": "nowhere"}))
    assert problem.startswith(f"market.root: there is no folder {tmp_path / 'nowhere'}, so every check would fail")
    assert "go-trader download-data --root" in problem
    (tmp_path / "nowhere").mkdir()
    assert _startup_problems(tmp_path, checkers, _with("market", {"source": "files", "root": "nowhere"})) == []


def test_startup_refuses_markets_cache_that_is_a_folder(tmp_path: Path, checkers: Path) -> None:
    (tmp_path / "cache").mkdir()
    (problem,) = _startup_problems(tmp_path, checkers, _with("market", {"source": "ccxt", "markets_cache": "cache"}))
    assert problem.startswith(f"market.markets_cache: {tmp_path / 'cache'} is a folder")


def test_path_text_problem_uses_the_given_limits() -> None:
    assert path_text_problem("a" * 20, name_max=16) is not None
    assert path_text_problem("a" * 16, name_max=16) is None
    assert path_text_problem("/a/b", path_max=4) is not None


# ---------------------------------------------------------------------------------------------
# Every number has an upper bound far from overflow


def _numeric_fields(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> FieldInfo of every int/float setting reachable from ``model``."""
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        members = [a for a in (ann, *args) if isinstance(a, type)]
        for sub in members:
            if issubclass(sub, BaseModel):
                found.update(_numeric_fields(sub, f"{prefix}{name}."))
        nested = [m for a in args for m in getattr(a, "__args__", ()) if isinstance(m, type) and issubclass(m, BaseModel)]
        for sub in nested:  # Annotated unions (sizing, market)
            found.update(_numeric_fields(sub, f"{prefix}{name}."))
        if any(m in (int, float) for m in members) and name not in ("params",):
            found[f"{prefix}{name}"] = info
    return found


def _upper_bound(info: Any) -> float | None:
    for m in info.metadata:
        for attr in ("le", "lt"):
            if getattr(m, attr, None) is not None:
                return float(getattr(m, attr))
    return None


# market.* settings live in market/specs.py (owned outside scheduler/config.py); none of them
# can overflow the daemon's own arithmetic (they are compared, never turned into dates or sleeps).
UNBOUNDED_ELSEWHERE: set[str] = set()


def test_every_numeric_setting_has_an_upper_bound() -> None:
    fields = _numeric_fields(Config)
    assert {"interval_seconds", "strategies.capital", "strategies.interval_seconds", "risk.max_position_usd",
            "logging.max_bytes", "strategies.sizing.usd", "runner.timeout_s"} <= set(fields)
    unbounded = {path for path, info in fields.items() if _upper_bound(info) is None}
    assert unbounded <= UNBOUNDED_ELSEWHERE, sorted(unbounded - UNBOUNDED_ELSEWHERE)
    for path, info in fields.items():
        bound = _upper_bound(info)
        assert bound is None or bound <= 2**40, (path, bound)


@pytest.mark.parametrize("path", ["interval_seconds", "strategies.0.interval_seconds"])
def test_interval_bound_keeps_date_arithmetic_and_sleeps_safe(checkers: Path, path: str) -> None:
    config = parse_config(_with(path, MAX_INTERVAL_S), base_dir=checkers.parent, checkers_dir=checkers)
    interval = config.interval_for(config.strategies[0])
    assert datetime.max.replace(tzinfo=UTC) - datetime.now(UTC) > timedelta(seconds=interval) * 1000
    (problem,) = _problems(_with(path, MAX_INTERVAL_S + 1), checkers)
    assert problem.startswith(path.replace(".0.", "[0].") + ": Input should be less than or equal to 2592000")


@pytest.mark.parametrize("path,value", [
    ("interval_seconds", 10**30), ("strategies.0.interval_seconds", 10**20), ("strategies.0.capital", 1e300),
    ("risk.max_position_usd", 1e300), ("risk.reconcile_tolerance_usd", 1e300), ("logging.max_bytes", 10**20),
    ("strategies.0.sizing", {"mode": "fixed_usd", "usd": 1e300}), ("strategies.0.params", {"fast": 10**20}),
    ("strategies.0.params", {"fast": 1e300}), ("runner.timeout_s", 1e30), ("status.port", 10**10),
])
def test_huge_numbers_are_config_errors(checkers: Path, path: str, value: Any) -> None:
    problems = _problems(_with(path, value), checkers)
    assert any(p.startswith(path.replace(".0.", "[0].")) for p in problems), problems


# ---------------------------------------------------------------------------------------------
# Random mutations: only ever a Config or a ConfigError

JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=300)
               | st.sampled_from(["", "\x00", "/dev/null", "::1", "0.0.0.0", "x" * 300, "..", "~", "/",
                                  "api_key", "scheduler", "check_strategy.py", "\udc80"]))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=12)


def _paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths_of(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths_of(v, (*prefix, i))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths_of(doc)
        where = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not where:
            continue
        parent: Any = doc
        for part in where[:-1]:
            parent = parent[part]
        if action == "replace":
            parent[where[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # byte-level damage too
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.binary(max_size=8)) + data[pos + draw(st.integers(0, 4)):]
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_documents())
def test_random_mutations_only_ever_raise_config_error(tmp_path: Path, data: bytes) -> None:
    folder = tmp_path / f"case-{os.urandom(4).hex()}"
    folder.mkdir()
    path = folder / "config.json"
    path.write_bytes(data)
    try:
        config = load_config(path)
        check_startup(config, path, state_path=folder / "state.json", log_dir=folder / "logs", env={})
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        "\n".join(e.problems).encode("utf-8", "backslashreplace")  # printable on any terminal
    assert _listing(folder) == ["config.json"]


def test_the_shipped_configs_still_pass_startup(tmp_path: Path) -> None:
    for name in ("config.json", "config.demo.json"):
        config = load_config(REPO_ROOT / name)
        check_startup(config, REPO_ROOT / name, state_path=tmp_path / "state.json", log_dir=tmp_path / "logs",
                      env={})


def test_the_synthetic_market_refuses_symbols_it_does_not_model(checkers: Path) -> None:
    doc = {"market": {"source": "synthetic"}, "strategies": [
        {"id": "x", "type": "spot", "script": "check_strategy.py", "args": ["sma_crossover", "BTC/USDX", "1h"],
         "capital": 100}]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=checkers.parent, checkers_dir=checkers)
    assert "the synthetic market models only BTC/USDT, ETH/USDT, SOL/USDT, not 'BTC/USDX'" in str(info.value)


def test_a_key_of_another_market_source_is_named_as_such(checkers: Path) -> None:
    doc = {"market": {"source": "ccxt", "seed": 42}, "strategies": [
        {"id": "x", "type": "spot", "script": "check_strategy.py", "args": ["sma_crossover", "BTC/USDT", "1h"],
         "capital": 100}]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=checkers.parent, checkers_dir=checkers)
    assert "did you mean 'seed'" not in str(info.value)
    assert "it is not a setting of this kind of market" in str(info.value)
