"""The checker scripts as a person runs them: python3 checkers/<script> ... (README, "Checkers by hand")."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime

from tests.integration.harness import REPO

DEMO = str(REPO / "config.demo.json")
NOW_MS = "1773138000000"  # 2026-03-10T10:20Z


def _run(*args: str, stdin: str | None = None) -> tuple[int, dict, str]:
    p = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, input=stdin, timeout=120)
    return p.returncode, json.loads(p.stdout), p.stderr


def test_check_strategy_by_hand_prints_the_contract() -> None:
    rc, doc, _ = _run("checkers/check_strategy.py", "sma_crossover", "BTC/USDT", "1h", "--config", DEMO,
                      "--now-ms", NOW_MS)
    assert rc == 0
    assert set(doc) >= {"strategy", "symbol", "timeframe", "signal", "price", "indicators", "timestamp"}
    assert doc["strategy"] == "sma_crossover" and doc["signal"] in (-1, 0, 1) and doc["price"] > 0
    assert datetime.fromisoformat(doc["timestamp"]) == datetime.fromisoformat("2026-03-10T10:00:00+00:00")
    assert "error" not in doc and doc["source"] == "synthetic"


def test_pairs_spread_by_hand_and_a_bad_strategy() -> None:
    rc, doc, _ = _run("checkers/check_strategy.py", "pairs_spread", "BTC/USDT", "1d", "ETH/USDT", "--config", DEMO,
                      "--now-ms", NOW_MS)
    assert rc == 0 and doc["symbol_b"] == "ETH/USDT" and doc["timestamp"].startswith("2026-03-10T00:00:00")
    rc, doc, err = _run("checkers/check_strategy.py", "no_such", "BTC/USDT", "1h", "--config", DEMO)
    assert rc == 1 and doc["error_class"] == "permanent" and "unknown strategy 'no_such'" in doc["error"]
    assert "unknown strategy" in err


def test_a_second_symbol_is_checked_before_any_market_is_asked() -> None:
    # no --config: the live exchange, unreachable here; the mistake must be found first
    rc, doc, _ = _run("checkers/check_strategy.py", "sma_crossover", "BTC/USDT", "1h", '{"fast": 5}')
    assert rc == 1 and doc["error_class"] == "permanent"
    assert "sma_crossover takes no second symbol; remove '{\"fast\": 5}' (parameter overrides go in --params" \
        in doc["error"]
    rc, doc, _ = _run("checkers/check_strategy.py", "pairs_spread", "BTC/USDT", "1h")
    assert rc == 1 and doc["error"] == "ValueError: pairs_spread needs a second symbol: pairs_spread BTC/USDT 1h SYMBOL_B"


def test_a_decision_time_out_of_range_or_not_a_number_is_one_json_error() -> None:
    for given, says in (("99999999999999999999", "is outside 1970 to a year past the wall clock"),
                        ("32503680000000", "is outside 1970"), ("-1", "is outside 1970"),
                        ("nan", "must be a whole number of UTC milliseconds"), ("1e12", "must be a whole number")):
        rc, doc, _ = _run("checkers/check_strategy.py", "sma_crossover", "BTC/USDT", "1h", "--config", DEMO,
                          "--now-ms", given)
        assert rc == 1 and doc["error_class"] == "permanent" and says in doc["error"], (given, doc)


def test_check_price_by_hand() -> None:
    rc, doc, _ = _run("checkers/check_price.py", "BTC/USDT", "ETH/USDT", "--config", DEMO, "--now-ms", NOW_MS)
    assert rc == 0 and set(doc) == {"BTC/USDT", "ETH/USDT"} and all(v > 0 for v in doc.values())


def test_check_price_failure_document_has_error_and_class() -> None:
    rc, doc, err = _run("checkers/check_price.py", "BTC/USDT", "BTC/USDX", "--config", DEMO, "--now-ms", NOW_MS)
    assert rc == 1 and doc["BTC/USDX"] is None and doc["error_class"] == "permanent"
    assert "no symbol 'BTC/USDX'" in doc["error"] and "models only BTC/USDT, ETH/USDT, SOL/USDT" in doc["error"]
    assert "BTC/USDX" in err
    rc, doc, _ = _run("checkers/check_price.py", "error", "--config", DEMO, "--now-ms", NOW_MS)
    assert rc == 1 and doc["error_class"] == "permanent" and "not a symbol" in doc["error"]


def test_synthetic_market_refuses_symbols_it_does_not_model() -> None:
    for symbol in ("BTCUSDT", "BTC/USDX", "DOGE/USDT"):
        rc, doc, _ = _run("checkers/check_strategy.py", "sma_crossover", symbol, "1h", "--config", DEMO,
                          "--now-ms", NOW_MS)
        assert rc == 1 and doc["error_class"] == "permanent" and "price" not in doc
        assert f"no symbol {symbol!r}" in doc["error"] and "models only BTC/USDT, ETH/USDT, SOL/USDT" in doc["error"]
    rc, doc, _ = _run("checkers/check_strategy.py", "pairs_spread", "BTC/USDT", "1d", "ETH/USDX", "--config", DEMO,
                      "--now-ms", NOW_MS)
    assert rc == 1 and "no symbol 'ETH/USDX'" in doc["error"]


def test_check_options_by_hand_proposes_legs_with_their_pricing_and_score() -> None:
    rc, doc, _ = _run("checkers/check_options.py", "protective_puts", "BTC", "--config", DEMO, "--now-ms", NOW_MS,
                      "--params", '{"dte_tolerance_days": 7}', stdin="[]")
    assert rc == 0 and doc["signal"] == 1 and "skip_reason" not in doc and doc["source"] == "synthetic"
    (put,) = doc["actions"]
    assert (put["action"], put["option_type"], put["instrument"]) == ("buy", "put", "BTC-24APR26-130000-P")
    assert put["pricing"] == "quote" and put["score"] == 1.0 and "no open option positions" in put["score_reason"]
    assert put["premium"] > 0 and math.isclose(put["premium_usd"], put["premium"] * doc["spot_price"], rel_tol=1e-12)
    assert set(put["greeks"]) == {"delta", "gamma", "theta", "vega"} and put["greeks"]["delta"] < 0
    assert datetime.fromisoformat(put["expiry"]).timestamp() * 1000 == put["expiry_ms"]


def test_check_options_takes_positions_on_stdin_or_argv() -> None:
    held = [{"id": "pp:1", "instrument": "BTC-24APR26-130000-P", "side": "long", "quantity": 0.1,
             "entry_premium_coin": 0.05}]
    for how in ("stdin", "argv"):
        args = ["checkers/check_options.py", "protective_puts", "BTC", "--config", DEMO, "--now-ms", NOW_MS]
        rc, doc, _ = _run(*args, stdin=json.dumps(held)) if how == "stdin" else _run(*args[:3], json.dumps(held),
                                                                                     *args[3:])
        assert rc == 0 and doc["actions"] == [] and doc["signal"] == 0
        assert doc["skip_reason"].startswith("HELD: a protective put is held: pp:1"), how


def test_check_options_wheel_sells_a_covered_call_against_the_coin_it_holds() -> None:
    rc, doc, _ = _run("checkers/check_options.py", "wheel", "ETH", "--config", DEMO, "--now-ms", NOW_MS,
                      stdin='{"positions": [], "spot_held": 1.0}')
    assert rc == 0 and doc["indicators"]["wheel_phase"] == "call"
    (call,) = doc["actions"]
    assert (call["action"], call["option_type"], call["covered_quantity"], call["assign"]) == ("sell", "call", 1.0,
                                                                                               True)


def test_check_options_explains_bad_input() -> None:
    base = ["checkers/check_options.py", "wheel", "ETH", "--config", DEMO, "--now-ms", NOW_MS]
    for stdin, says in [('{"not": "a list"}', "unknown key(s) 'not'"), ("[1]", "must be a JSON list of objects"),
                        ('[{"instrument": "BTC-X", "side": "long", "quantity": 1}]', "BTC-X"),
                        ('{"positions": [], "spot_held": -1}', "spot_held -1"), ("nope", "Expecting value")]:
        rc, doc, _ = _run(*base, stdin=stdin)
        assert rc == 1 and doc["error_class"] == "permanent" and says in doc["error"], (stdin, doc["error"])
    rc, doc, _ = _run(*base, "--params", '{"put_moneyness": 0}', stdin="[]")
    assert rc == 1 and "put_moneyness 0.0; expected a number > 0" in doc["error"]
