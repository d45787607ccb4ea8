"""config.json validation: every rule, its message and its JSON path."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import Config, StrategyConfig, load_config, parse_config
from scheduler.engine.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The original go-trader's config shape, verbatim.
ORIGINAL: dict[str, Any] = {
    "interval_seconds": 600,
    "log_dir": "logs",
    "state_file": "state.json",
    "strategies": [
        {"id": "momentum-btc", "type": "spot", "script": "check_strategy.py",
         "args": ["momentum", "BTC/USDT", "1h"], "capital": 1000, "max_drawdown_pct": 60}
    ],
}


@pytest.fixture
def checkers(tmp_path: Path) -> Path:
    """A checkers folder holding check_strategy.py and check_options.py only."""
    folder = tmp_path / "checkers"
    folder.mkdir()
    for name in ("check_strategy.py", "check_options.py"):
        (folder / name).write_text("print('{}')\n")
    return folder


def raw_config(**top: Any) -> dict[str, Any]:
    raw = copy.deepcopy(ORIGINAL)
    raw.update(top)
    return raw


def strategy(**fields: Any) -> dict[str, Any]:
    s = copy.deepcopy(ORIGINAL["strategies"][0])
    s.update(fields)
    return s


def options_strategy(**fields: Any) -> dict[str, Any]:
    s = {"id": "vmr-btc", "type": "options", "script": "check_options.py",
         "args": ["vol_mean_reversion", "BTC"], "capital": 1000}
    s.update(fields)
    return s


def parse(raw: Any, checkers_dir: Path) -> Config:
    return parse_config(raw, base_dir=checkers_dir.parent, checkers_dir=checkers_dir)


def problems_of(raw: Any, checkers_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw, checkers_dir)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def only_problem(raw: Any, checkers_dir: Path) -> str:
    problems = problems_of(raw, checkers_dir)
    assert len(problems) == 1, problems
    return problems[0]


# ---------------------------------------------------------------------------------------------
# The original shape and the shipped configs


def test_original_config_validates_unchanged(checkers: Path) -> None:
    raw = copy.deepcopy(ORIGINAL)
    config = parse(raw, checkers)
    assert raw == ORIGINAL  # parsing does not mutate the caller's document
    assert config.interval_seconds == 600
    assert config.log_dir == "logs"
    assert config.state_file == "state.json"
    (s,) = config.strategies
    assert (s.id, s.type, s.script, s.args) == ("momentum-btc", "spot", "check_strategy.py",
                                                ["momentum", "BTC/USDT", "1h"])
    assert s.capital == 1000.0
    assert s.max_drawdown_pct == 60.0
    assert s.drawdown_pct == 60.0
    assert s.interval_seconds == 0
    assert config.interval_for(s) == 600
    assert s.strategy_name == "momentum"
    assert s.symbols == ("BTC/USDT",)
    assert s.timeframe == "1h"


def test_original_config_validates_against_the_real_checkers_folder() -> None:
    config = parse_config(copy.deepcopy(ORIGINAL), base_dir=REPO_ROOT)
    assert [s.id for s in config.strategies] == ["momentum-btc"]


@pytest.mark.parametrize("name", ["config.json", "config.demo.json"])
def test_shipped_configs_validate_with_22_strategies(name: str) -> None:
    config = load_config(REPO_ROOT / name)
    assert len(config.strategies) == 22
    assert len({s.id for s in config.strategies}) == 22
    kinds = [s.type for s in config.strategies]
    assert "spot" in kinds and "options" in kinds
    pairs = [s for s in config.strategies if s.strategy_name == "pairs_spread"]
    assert pairs and all(len(s.args) == 4 and s.timeframe == "1d" for s in pairs)


# ---------------------------------------------------------------------------------------------
# ids


@pytest.mark.parametrize("bad_id", ["", " ", "-leading-dash", "has space", "a/b", "x" * 65])
def test_id_must_be_a_nonempty_safe_name(checkers: Path, bad_id: str) -> None:
    msg = only_problem(raw_config(strategies=[strategy(id=bad_id)]), checkers)
    assert msg.startswith("strategies[0].id: id ")
    assert repr(bad_id) in msg
    assert "must be 1-64 characters" in msg


def test_id_missing_is_reported_with_its_path(checkers: Path) -> None:
    s = strategy()
    del s["id"]
    assert only_problem(raw_config(strategies=[s]), checkers) == "strategies[0].id: required key is missing"


def test_duplicate_id_names_the_first_index(checkers: Path) -> None:
    raw = raw_config(strategies=[
        strategy(id="a"), strategy(id="dup"), strategy(id="b"), strategy(id="dup"),
    ])
    assert only_problem(raw, checkers) == (
        "strategies[3].id: duplicate id 'dup' (first used at strategies[1]); ids must be unique"
    )


def test_every_repeat_of_an_id_is_reported_against_the_first(checkers: Path) -> None:
    raw = raw_config(strategies=[strategy(id="x"), strategy(id="x"), strategy(id="x")])
    assert problems_of(raw, checkers) == [
        "strategies[1].id: duplicate id 'x' (first used at strategies[0]); ids must be unique",
        "strategies[2].id: duplicate id 'x' (first used at strategies[0]); ids must be unique",
    ]


def test_at_least_one_strategy(checkers: Path) -> None:
    msg = only_problem(raw_config(strategies=[]), checkers)
    assert msg.startswith("strategies: the list is empty; it needs at least one entry (a strategy")


@pytest.mark.parametrize(("change", "problem"), [
    ({"market": {"source": "yahoo"}}, "market.source: 'yahoo' is not one of 'synthetic', 'files', 'ccxt'"),
    ({"market": {"seed": 1}}, "market.source: required key is missing; it says which kind of market this is"),
    ({"risk": 5}, "risk: expected an object {...} of settings, got 5"),
    ({"market": "x"}, "market: expected an object {...} of settings, got 'x'"),
])
def test_a_wrong_kind_or_shape_of_section_is_said_in_words(checkers: Path, change: dict, problem: str) -> None:
    assert only_problem(raw_config(**change), checkers).startswith(problem)


# ---------------------------------------------------------------------------------------------
# script


@pytest.mark.parametrize("script", [
    "../check_strategy.py", "sub/check_strategy.py", "/abs/check_strategy.py", "sub\\check_strategy.py",
    "check..py", "check_strategy.sh", "check_strategy", ".check_strategy.py",
])
def test_script_must_be_a_bare_py_file_name(checkers: Path, script: str) -> None:
    msg = only_problem(raw_config(strategies=[strategy(script=script)]), checkers)
    assert msg.startswith(f"strategies[0].script: script {script!r} must be a bare file name ending in .py")
    assert "no path separators or '..'" in msg


def test_script_must_exist_in_the_checkers_folder(checkers: Path) -> None:
    msg = only_problem(raw_config(strategies=[strategy(script="check_missing.py")]), checkers)
    assert msg.startswith(f"strategies[0].script: no checker 'check_missing.py' in {checkers}")
    assert "available: check_options.py, check_strategy.py" in msg


def test_script_that_is_a_directory_is_not_a_checker(checkers: Path) -> None:
    (checkers / "check_dir.py").mkdir()
    msg = only_problem(raw_config(strategies=[strategy(script="check_dir.py")]), checkers)
    assert msg.startswith("strategies[0].script: no checker 'check_dir.py'")


def test_script_found_in_a_custom_checkers_folder(checkers: Path) -> None:
    (checkers / "check_mine.py").write_text("")
    config = parse(raw_config(strategies=[strategy(script="check_mine.py")]), checkers)
    assert config.strategies[0].script == "check_mine.py"


def test_checkers_dir_key_is_resolved_against_base_dir(tmp_path: Path, checkers: Path) -> None:
    (checkers / "check_only_here.py").write_text("")
    raw = raw_config(checkers_dir="checkers", strategies=[strategy(script="check_only_here.py")])
    config = parse_config(raw, base_dir=tmp_path)
    assert config.checkers_dir == "checkers"
    with pytest.raises(ConfigError) as info:  # the default folder does not have it
        parse_config(raw_config(strategies=[strategy(script="check_only_here.py")]), base_dir=tmp_path)
    assert info.value.problems[0].startswith("strategies[0].script: no checker 'check_only_here.py'")


# ---------------------------------------------------------------------------------------------
# type, capital, drawdown, interval


def test_type_must_be_spot_or_options(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[strategy(type="futures")]), checkers) == (
        "strategies[0].type: Input should be 'spot' or 'options' (got 'futures'); 'spot' or 'options'"
    )


@pytest.mark.parametrize("capital", [0, -1, -0.01])
def test_capital_must_be_positive(checkers: Path, capital: float) -> None:
    assert only_problem(raw_config(strategies=[strategy(capital=capital)]), checkers) == (
        f"strategies[0].capital: Input should be greater than 0 (got {capital!r}); "
        "capital is the strategy's starting cash in USD, a number > 0"
    )


@pytest.mark.parametrize("capital", [float("inf"), float("nan")])
def test_capital_must_be_finite(checkers: Path, capital: float) -> None:
    msg = only_problem(raw_config(strategies=[strategy(capital=capital)]), checkers)
    assert msg.startswith("strategies[0].capital: Input should be a finite number")


def test_capital_missing(checkers: Path) -> None:
    s = strategy()
    del s["capital"]
    assert only_problem(raw_config(strategies=[s]), checkers) == (
        "strategies[0].capital: required key is missing "
        "(capital is the strategy's starting cash in USD, a number > 0)"
    )


def test_tiny_positive_capital_is_accepted(checkers: Path) -> None:
    assert parse(raw_config(strategies=[strategy(capital=0.01)]), checkers).strategies[0].capital == 0.01


@pytest.mark.parametrize("pct,expected", [
    (0, "strategies[0].max_drawdown_pct: Input should be greater than 0 (got 0)"),
    (-5, "strategies[0].max_drawdown_pct: Input should be greater than 0 (got -5)"),
    (100.0001, "strategies[0].max_drawdown_pct: Input should be less than or equal to 100 (got 100.0001)"),
    (float("nan"), "strategies[0].max_drawdown_pct: Input should be less than or equal to 100 (got nan)"),
])
def test_max_drawdown_pct_range(checkers: Path, pct: float, expected: str) -> None:
    msg = only_problem(raw_config(strategies=[strategy(max_drawdown_pct=pct)]), checkers)
    assert msg == expected + "; a percentage in (0, 100]; omit it for the default (spot 60, options 40)"


@pytest.mark.parametrize("pct", [0.001, 25, 100])
def test_max_drawdown_pct_bounds_accepted(checkers: Path, pct: float) -> None:
    s = parse(raw_config(strategies=[strategy(max_drawdown_pct=pct)]), checkers).strategies[0]
    assert s.max_drawdown_pct == pct
    assert s.drawdown_pct == pct


def test_drawdown_defaults_spot_60_options_40(checkers: Path) -> None:
    spot = strategy()
    del spot["max_drawdown_pct"]
    raw = raw_config(strategies=[spot, options_strategy()])
    s, o = parse(raw, checkers).strategies
    assert (s.max_drawdown_pct, s.drawdown_pct) == (None, 60.0)
    assert (o.max_drawdown_pct, o.drawdown_pct) == (None, 40.0)


def test_options_strategy_with_explicit_drawdown_keeps_it(checkers: Path) -> None:
    o = parse(raw_config(strategies=[options_strategy(max_drawdown_pct=15)]), checkers).strategies[0]
    assert o.drawdown_pct == 15.0
    assert o.symbols == () and o.timeframe is None and o.strategy_name == "vol_mean_reversion"


def test_interval_negative_rejected(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[strategy(interval_seconds=-1)]), checkers) == (
        "strategies[0].interval_seconds: Input should be greater than or equal to 0 (got -1); "
        "seconds between runs; 0 or absent on a strategy means the global interval"
    )


def test_interval_fractional_rejected(checkers: Path) -> None:
    msg = only_problem(raw_config(strategies=[strategy(interval_seconds=1.5)]), checkers)
    assert msg.startswith("strategies[0].interval_seconds: Input should be a valid integer")


def test_interval_zero_or_absent_means_the_global_one(checkers: Path) -> None:
    raw = raw_config(interval_seconds=900, strategies=[
        strategy(id="zero", interval_seconds=0), strategy(id="absent"), strategy(id="own", interval_seconds=60),
    ])
    config = parse(raw, checkers)
    assert [config.interval_for(s) for s in config.strategies] == [900, 900, 60]


def test_global_interval_must_be_at_least_one(checkers: Path) -> None:
    msg = only_problem(raw_config(interval_seconds=0), checkers)
    assert msg.startswith("interval_seconds: Input should be greater than or equal to 1 (got 0)")


# ---------------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_strategy_key_with_did_you_mean(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[strategy(capitol=5)]), checkers) == (
        "strategies[0].capitol: unknown key 'capitol' in strategies[0]; did you mean 'capital'?"
    )


def test_unknown_top_level_key_with_did_you_mean(checkers: Path) -> None:
    assert only_problem(raw_config(intervl_seconds=5), checkers) == (
        "intervl_seconds: unknown key 'intervl_seconds' in (top level); did you mean 'interval_seconds'?"
    )


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(checkers: Path) -> None:
    msg = only_problem(raw_config(zzzz=1), checkers)
    assert msg.startswith("zzzz: unknown key 'zzzz' in (top level); allowed keys: interval_seconds, log_dir,")
    assert "strategies" in msg


def test_unknown_nested_section_key(checkers: Path) -> None:
    assert only_problem(raw_config(market={"source": "ccxt", "exchang": "binance"}), checkers) == (
        "market.exchang: unknown key 'exchang' in market; did you mean 'exchange'?"
    )
    assert only_problem(raw_config(runner={"timeout": 5}), checkers) == (
        "runner.timeout: unknown key 'timeout' in runner; did you mean 'timeout_s'?"
    )


# ---------------------------------------------------------------------------------------------
# Secrets


STATUS_ADVICE = "remove it and set the environment variable GO_TRADER_STATUS_TOKEN instead"
EXCHANGE_ADVICE = ("remove it: paper trading needs no exchange credentials and go-trader reads none "
                   "(live trading is not supported yet)")
TELEGRAM_ADVICE = ("remove it, put the bot token in an environment variable and name that variable in "
                   "notifications.telegram.token_env (default GO_TRADER_TELEGRAM_TOKEN)")


@pytest.mark.parametrize("where,key,advice", [
    ("top", "bot_token", TELEGRAM_ADVICE),
    ("top", "api_key", EXCHANGE_ADVICE),
    ("top", "status_token", STATUS_ADVICE),
    ("top", "api_secret", EXCHANGE_ADVICE),
    ("top", "password", EXCHANGE_ADVICE),
    ("top", "exchange_api_key", EXCHANGE_ADVICE),
    ("top", "API-Key", EXCHANGE_ADVICE),
    ("strategy", "api_key", EXCHANGE_ADVICE),
    ("strategy", "secret", EXCHANGE_ADVICE),
    ("status", "token", STATUS_ADVICE),
    ("runner", "apikey", EXCHANGE_ADVICE),
])
def test_secret_in_file_refused_with_advice(checkers: Path, where: str, key: str, advice: str) -> None:
    raw = raw_config()
    if where == "top":
        raw[key], path = "s3cr3t", key
    elif where == "strategy":
        raw["strategies"][0][key], path = "s3cr3t", f"strategies[0].{key}"
    else:
        raw[where] = {key: "s3cr3t"}
        path = f"{where}.{key}"
    problems = problems_of(raw, checkers)
    expected = f"{path}: secrets must not be stored in the config file; {advice}"
    # The secret is reported once; no second "unknown key" complaint for the same path.
    assert problems == [expected]
    assert all("s3cr3t" not in p for p in problems)


def test_secret_messages_name_only_variables_that_are_read(checkers: Path) -> None:
    """Only variables go-trader reads are suggested (the status token and the notification
    channels' defaults); no message may suggest another variable works."""
    import scheduler.config as config_module

    read = {"GO_TRADER_STATUS_TOKEN", "GO_TRADER_TELEGRAM_TOKEN", "GO_TRADER_WEBHOOK_URL"}
    for kind, advice in config_module._SECRET_ADVICE.items():
        named = set(re.findall(r"GO_TRADER_[A-Z_]+", advice))
        assert named <= read, (kind, advice)
    source = Path(config_module.__file__).read_text()
    assert "GO_TRADER_EXCHANGE" not in source  # exchange keys: nothing reads them yet


def test_secret_in_the_market_section_is_refused(checkers: Path) -> None:
    raw = raw_config(market={"source": "ccxt", "secret": "s3cr3t"})
    problems = problems_of(raw, checkers)
    assert f"market.secret: secrets must not be stored in the config file; {EXCHANGE_ADVICE}" in problems
    assert all("s3cr3t" not in p for p in problems)


def test_secret_nested_in_an_unknown_section_is_named(checkers: Path) -> None:
    raw = raw_config(telegram={"bot_token": "123:abc", "chat_id": 5})
    problems = problems_of(raw, checkers)
    assert f"telegram.bot_token: secrets must not be stored in the config file; {TELEGRAM_ADVICE}" in problems
    assert any(p.startswith("telegram: unknown key 'telegram' in (top level)") for p in problems)
    assert all("123:abc" not in p for p in problems)


def test_secret_inside_a_list_is_found(checkers: Path) -> None:
    raw = raw_config(strategies=[strategy(), strategy(id="two", extra=[{"api_secret": "x"}])])
    problems = problems_of(raw, checkers)
    assert (f"strategies[1].extra[0].api_secret: secrets must not be stored in the config file; "
            f"{EXCHANGE_ADVICE}") in problems


def test_telegram_bot_token_is_refused(checkers: Path) -> None:
    problems = problems_of(raw_config(telegram_bot_token="123:abc"), checkers)
    assert problems == [f"telegram_bot_token: secrets must not be stored in the config file; {TELEGRAM_ADVICE}"]


@pytest.mark.parametrize("value", ["SUPERSECRETVALUE-91f3", 12345678901, ["SUPERSECRETVALUE-91f3"],
                                   {"x": "SUPERSECRETVALUE-91f3"}])
@pytest.mark.parametrize("where", ["params", "strategy", "market", "status"])
def test_a_secret_value_is_never_echoed(checkers: Path, where: str, value: Any) -> None:
    """Whatever the value's type, no message about a secret-looking key shows it (the params
    key used to be refused and then described by the number check, value and all)."""
    raw = raw_config()
    if where == "params":
        raw["strategies"][0]["params"] = {"api_key": value}
        path = "strategies[0].params.api_key"
    elif where == "strategy":
        raw["strategies"][0]["password"] = value
        path = "strategies[0].password"
    elif where == "market":
        raw["market"] = {"source": "ccxt", "api_secret": value}
        path = "market.api_secret"
    else:
        raw["status"] = {"token": value}
        path = "status.token"
    problems = problems_of(raw, checkers)
    assert [p for p in problems if p.startswith(path)] == [
        next(p for p in problems if p.startswith(f"{path}: secrets must not be stored"))]
    text = "\n".join(problems)
    assert "SUPERSECRETVALUE" not in text and "12345678901" not in text


# ---------------------------------------------------------------------------------------------
# Spot and options args


@pytest.mark.parametrize("args", [["momentum", "BTC/USDT"], ["momentum"], [],
                                  ["momentum", "BTC/USDT", "1h", "ETH/USDT", "SOL/USDT"]])
def test_spot_args_length(checkers: Path, args: list[str]) -> None:
    assert only_problem(raw_config(strategies=[strategy(args=args)]), checkers) == (
        f"strategies[0].args: spot args must be [strategy, symbol, timeframe] or [..., symbol_b], got {args!r}"
    )


def test_fourth_arg_only_for_pairs_spread(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[strategy(args=["momentum", "BTC/USDT", "1h", "ETH/USDT"])]),
                        checkers) == "strategies[0].args: momentum takes no second symbol; remove 'ETH/USDT'"


def test_pairs_spread_needs_and_accepts_symbol_b(checkers: Path) -> None:
    ok = parse(raw_config(strategies=[strategy(args=["pairs_spread", "BTC/USDT", "1d", "ETH/USDT"])]), checkers)
    assert ok.strategies[0].symbols == ("BTC/USDT", "ETH/USDT")
    assert only_problem(raw_config(strategies=[strategy(args=["pairs_spread", "BTC/USDT", "1d"])]), checkers) == (
        "strategies[0].args: pairs_spread needs a second symbol: [pairs_spread, BTC/USDT, 1d, SYMBOL_B]"
    )
    assert only_problem(raw_config(strategies=[strategy(args=["pairs_spread", "BTC/USDT", "1d", "BTC/USDT"])]),
                        checkers) == "strategies[0].args: pairs_spread: symbol_b must differ from symbol (BTC/USDT)"


@pytest.mark.parametrize("symbol", ["btc/usdt", "BTC-USDT", "BTCUSDT", "BTC/", "B/USDT", "BTC/USDT "])
def test_spot_symbol_format(checkers: Path, symbol: str) -> None:
    assert only_problem(raw_config(strategies=[strategy(args=["momentum", symbol, "1h"])]), checkers) == (
        f"strategies[0].args: symbol {symbol!r} must look like 'BTC/USDT' (upper case BASE/QUOTE)"
    )


def test_symbol_b_format_is_checked_too(checkers: Path) -> None:
    msg = only_problem(raw_config(strategies=[strategy(args=["pairs_spread", "BTC/USDT", "1d", "eth"])]), checkers)
    assert msg == "strategies[0].args: symbol 'eth' must look like 'BTC/USDT' (upper case BASE/QUOTE)"


@pytest.mark.parametrize("tf", ["2d", "1H", "60m", "", "1M"])
def test_spot_timeframe(checkers: Path, tf: str) -> None:
    msg = only_problem(raw_config(strategies=[strategy(args=["momentum", "BTC/USDT", tf])]), checkers)
    assert msg.startswith(f"strategies[0].args: args[2]: timeframe {tf!r} is not one of 1m, 3m, 5m,")


def test_unknown_spot_strategy_did_you_mean(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[strategy(args=["momentom", "BTC/USDT", "1h"])]), checkers) == (
        "strategies[0].args: args[0]: unknown spot strategy 'momentom'; did you mean 'momentum'?"
    )


def test_options_args_shape(checkers: Path) -> None:
    cfg = parse(raw_config(strategies=[options_strategy(args=["wheel", "ETH"])]), checkers)
    assert cfg.strategies[0].args == ["wheel", "ETH"]
    assert only_problem(raw_config(strategies=[options_strategy(args=["wheel"])]), checkers) == (
        "strategies[0].args: options args must be [strategy, underlying], got ['wheel']"
    )
    assert only_problem(raw_config(strategies=[options_strategy(args=["wheel", "BTC", "1h"])]), checkers) == (
        "strategies[0].args: options args must be [strategy, underlying], got ['wheel', 'BTC', '1h']"
    )
    assert only_problem(raw_config(strategies=[options_strategy(args=["wheel", "DOGE"])]), checkers) == (
        "strategies[0].args: args[1]: underlying 'DOGE' must be one of BTC, ETH"
    )
    msg = only_problem(raw_config(strategies=[options_strategy(args=["momentum", "BTC"])]), checkers)
    assert msg.startswith("strategies[0].args: args[0]: unknown options strategy 'momentum'; known: ")


def test_spot_args_on_an_options_strategy_rejected(checkers: Path) -> None:
    msg = only_problem(raw_config(strategies=[options_strategy(args=["momentum", "BTC/USDT", "1h"])]), checkers)
    assert msg.startswith("strategies[0].args: options args must be [strategy, underlying]")


# ---------------------------------------------------------------------------------------------
# params


def test_params_override_accepted(checkers: Path) -> None:
    cfg = parse(raw_config(strategies=[strategy(params={"period": 10, "threshold_pct": 2.5})]), checkers)
    assert cfg.strategies[0].params == {"period": 10, "threshold_pct": 2.5}


@pytest.mark.parametrize("args,params,expected", [
    (["momentum", "BTC/USDT", "1h"], {"perod": 10},
     "unknown parameter 'perod' for momentum (known: period, threshold_pct)"),
    (["momentum", "BTC/USDT", "1h"], {"period": 1.5},
     "parameter 'period' of momentum must be an integer, got 1.5"),
    (["momentum", "BTC/USDT", "1h"], {"period": -3},
     "parameter 'period' of momentum must be > 0, got -3"),
    (["sma_crossover", "BTC/USDT", "1h"], {"fast": 60},
     "sma_crossover needs fast < slow, got fast=60, slow=50"),
    (["rsi", "BTC/USDT", "1h"], {"overbought": 100},
     "parameter 'overbought' of rsi is an RSI level and must be < 100, got 100"),
    (["edge70", "BTC/USDT", "1d"], {"stop_pct": 150},
     "parameter 'stop_pct' of edge70 is how far below the entry its stop sits, in percent, and must be < 100 "
     "(the stop would be at or below 0), got 150"),
    (["bollinger_bands", "BTC/USDT", "1h"], {"period": 1},
     "parameter 'period' of bollinger_bands must be >= 2 (a sample std needs two bars), got 1"),
])
def test_params_validated_against_the_catalog(checkers: Path, args: list[str], params: dict[str, float],
                                              expected: str) -> None:
    raw = raw_config(strategies=[strategy(args=args, params=params)])
    assert only_problem(raw, checkers) == f"strategies[0].params: {expected}"


def test_options_params_are_checked_against_the_strategy(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[options_strategy(params={"x": 1})]), checkers).startswith(
        "strategies[0].params: vol_mean_reversion has no parameter 'x'; its parameters are ")
    assert only_problem(raw_config(strategies=[options_strategy(params={"sell_above_rank": 120})]), checkers) == (
        "strategies[0].params: sell_above_rank 120.0; expected an IV rank in [0, 100]")
    assert only_problem(raw_config(strategies=[options_strategy(params={"buy_below_rank": "low"})]), checkers) == (
        "strategies[0].params: buy_below_rank 'low'; expected a finite number")
    cfg = parse(raw_config(strategies=[options_strategy(params={"sell_above_rank": 60, "dte_tolerance_days": 14})]),
                checkers)
    assert cfg.strategies[0].params == {"sell_above_rank": 60, "dte_tolerance_days": 14}


def test_a_word_is_refused_as_a_spot_parameter(checkers: Path) -> None:
    assert only_problem(raw_config(strategies=[strategy(params={"fast": "x"})]), checkers) == (
        "strategies[0].params: parameter 'fast' must be a number, got 'x'")


# ---------------------------------------------------------------------------------------------
# Sizing and cross checks


def test_sizing_defaults_and_modes(checkers: Path) -> None:
    cfg = parse(raw_config(strategies=[strategy(), strategy(id="usd", sizing={"mode": "fixed_usd", "usd": 250})]),
                checkers)
    default, usd = cfg.strategies
    assert (default.sizing.mode, default.sizing.fraction) == ("fixed_fraction", 0.95)  # type: ignore[union-attr]
    assert (usd.sizing.mode, usd.sizing.usd) == ("fixed_usd", 250.0)  # type: ignore[union-attr]
    assert only_problem(raw_config(strategies=[strategy(sizing={"mode": "fixed_usd", "usd": 0})]), checkers) == (
        "strategies[0].sizing.usd: Input should be greater than 0 (got 0)"
    )
    assert only_problem(raw_config(strategies=[strategy(sizing={"mode": "fixed_fraction", "fraction": 1.5})]), checkers) == (
        "strategies[0].sizing.fraction: Input should be less than or equal to 1 (got 1.5)"
    )


def test_spot_exchange_without_fees_is_reported(checkers: Path) -> None:
    msg = only_problem(raw_config(strategies=[strategy(exchange="kraken")]), checkers)
    assert "strategies[0].exchange 'kraken' has no fee schedule; add execution.fees.kraken" in msg


# ---------------------------------------------------------------------------------------------
# Several problems at once


def test_every_problem_is_reported_at_once(checkers: Path) -> None:
    raw = raw_config(
        intervl_seconds=5,
        strategies=[
            strategy(capital=-1, max_drawdown_pct=0, script="a/b.py"),
            strategy(id="two", type="futures", interval_seconds=-5),
            strategy(id="two", api_key="k"),
        ],
    )
    problems = problems_of(raw, checkers)
    expected_prefixes = [
        "intervl_seconds: unknown key 'intervl_seconds'",
        "strategies[0].capital: Input should be greater than 0 (got -1)",
        "strategies[0].max_drawdown_pct: Input should be greater than 0 (got 0)",
        "strategies[0].script: script 'a/b.py' must be a bare file name",
        "strategies[1].interval_seconds: Input should be greater than or equal to 0 (got -5)",
        "strategies[1].type: Input should be 'spot' or 'options' (got 'futures')",
        "strategies[2].api_key: secrets must not be stored in the config file",
        "strategies[2].id: duplicate id 'two' (first used at strategies[1])",
    ]
    assert len(problems) == len(expected_prefixes), problems
    for prefix in expected_prefixes:
        assert sum(p.startswith(prefix) for p in problems) == 1, (prefix, problems)
    assert problems == sorted(problems)


# ---------------------------------------------------------------------------------------------
# load_config


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: config file not found; pass --config PATH (see config.demo.json)"]


def test_load_config_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "interval_seconds": 600,\n  "log_dir": logs\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:3:14: not valid JSON: Expecting value"]


def test_load_config_trailing_comma(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"interval_seconds": 600,}')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (msg,) = info.value.problems
    assert msg.startswith(f"{path}:1:26: not valid JSON: ")


@pytest.mark.parametrize("text,kind", [("[]", "list"), ("42", "int"), ('"x"', "str"), ("null", "NoneType")])
def test_load_config_top_level_must_be_an_object(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: the top level must be a JSON object, got {kind}"]


def test_load_config_reads_a_valid_file_and_resolves_checkers_dir(tmp_path: Path, checkers: Path) -> None:
    (checkers / "check_here.py").write_text("")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw_config(checkers_dir="checkers", strategies=[strategy(script="check_here.py")])))
    config = load_config(path)
    assert config.strategies[0].script == "check_here.py"


def test_load_config_reports_validation_problems(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw_config(strategies=[strategy(capital=0)])))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith("strategies[0].capital: Input should be greater than 0")


def test_config_models_are_frozen(checkers: Path) -> None:
    s = parse(raw_config(), checkers).strategies[0]
    assert isinstance(s, StrategyConfig)
    with pytest.raises(Exception, match="frozen"):
        s.capital = 5  # type: ignore[misc]
