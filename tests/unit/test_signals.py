"""Judging a checker run (REFERENCE section 3): success, or a failure with a reason and a class."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.runner import JobResult
from scheduler.signals import CheckFailure, OptionsSignal, SpotSignal, decode_one_document, judge

TIMEOUT_S = 30.0
MAX_OUT = 1_048_576
SPOT_EXPECT = {"strategy": "momentum", "symbol": "BTC/USDT", "timeframe": "1h"}
OPTIONS_EXPECT = {"strategy": "vol_mean_reversion", "underlying": "BTC"}


def spot_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "strategy": "momentum", "symbol": "BTC/USDT", "timeframe": "1h", "signal": 1,
        "price": 67000.5, "indicators": {"roc": 6.2, "threshold_pct": 5.0},
        "timestamp": "2024-05-01T12:00:00Z",
    }
    doc.update(changes)
    return doc


def options_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "strategy": "vol_mean_reversion", "underlying": "BTC", "signal": 1, "spot_price": 67000.0,
        "actions": [{
            "action": "sell", "option_type": "call", "strike": 75000.0, "expiry": "2024-06-28T08:00:00Z",
            "expiry_ms": 1719561600000, "instrument": "BTC-28JUN24-75000-C", "dte": 58.0, "premium": 0.021, "premium_usd": 1407.0, "quantity": 0.1,
            "greeks": {"delta": 0.25, "gamma": 0.00001, "theta": -25.0, "vega": 80.0},
            "score": 0.8, "score_reason": "IV rank 85",
        }],
        "iv_rank": 85.0, "timestamp": "2024-05-01T12:00:00+00:00",
    }
    doc.update(changes)
    return doc


def result(stdout: bytes | str | dict[str, Any] = b"", *, returncode: int | None = 0, stderr: bytes = b"",
           duration_s: float = 0.5, **flags: Any) -> JobResult:
    if isinstance(stdout, dict):
        stdout = json.dumps(stdout)
    if isinstance(stdout, str):
        stdout = stdout.encode()
    return JobResult(key="momentum-btc", returncode=returncode, stdout=stdout, stderr=stderr,
                     duration_s=duration_s, **flags)


def judge_spot(r: JobResult, expect: dict[str, str] = SPOT_EXPECT) -> SpotSignal | CheckFailure:
    return judge(r, SpotSignal, expect, TIMEOUT_S, MAX_OUT)  # type: ignore[return-value]


def failure(r: JobResult, model: type = SpotSignal, expect: dict[str, str] = SPOT_EXPECT) -> CheckFailure:
    out = judge(r, model, expect, TIMEOUT_S, MAX_OUT)
    assert isinstance(out, CheckFailure), out
    return out


# ---------------------------------------------------------------------------------------------
# Success


def test_spot_success() -> None:
    out = judge_spot(result(spot_doc()))
    assert isinstance(out, SpotSignal)
    assert (out.strategy, out.symbol, out.timeframe, out.signal, out.price) == (
        "momentum", "BTC/USDT", "1h", 1, 67000.5)
    assert out.indicators == {"roc": 6.2, "threshold_pct": 5.0}
    assert out.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert out.error is None


@pytest.mark.parametrize("signal", [-1, 0, 1])
def test_spot_success_every_signal(signal: int) -> None:
    out = judge_spot(result(spot_doc(signal=signal)))
    assert isinstance(out, SpotSignal) and out.signal == signal


def test_spot_success_with_stderr_logs_and_surrounding_whitespace() -> None:
    out = judge_spot(result("\n  " + json.dumps(spot_doc()) + "\n\n", stderr=b"INFO fetched 500 candles\n"))
    assert isinstance(out, SpotSignal) and out.price == 67000.5


def test_options_success() -> None:
    out = judge(result(options_doc()), OptionsSignal, OPTIONS_EXPECT, TIMEOUT_S, MAX_OUT)
    assert isinstance(out, OptionsSignal)
    assert (out.strategy, out.underlying, out.signal, out.spot_price, out.iv_rank) == (
        "vol_mean_reversion", "BTC", 1, 67000.0, 85.0)
    (action,) = out.actions
    assert (action.action, action.option_type, action.strike, action.premium_usd, action.quantity) == (
        "sell", "call", 75000.0, 1407.0, 0.1)
    assert action.greeks.theta == -25.0


def test_options_skip_with_no_actions_is_a_success() -> None:
    doc = options_doc(signal=0, actions=[], skip_reason="IV rank 40 is inside the band")
    out = judge(result(doc), OptionsSignal, OPTIONS_EXPECT, TIMEOUT_S, MAX_OUT)
    assert isinstance(out, OptionsSignal)
    assert out.actions == [] and out.skip_reason == "IV rank 40 is inside the band"


# ---------------------------------------------------------------------------------------------
# How the process ended


def test_nonzero_exit_with_error_document_uses_its_message_and_class() -> None:
    doc = {"error": "exchange timed out", "error_class": "transient"}
    f = failure(result(doc, returncode=1))
    assert f == CheckFailure("exited with status 1: exchange timed out", "transient")
    assert f.transient


def test_nonzero_exit_with_error_document_defaults_to_permanent() -> None:
    f = failure(result({"error": "unknown strategy 'x'"}, returncode=2))
    assert f == CheckFailure("exited with status 2: unknown strategy 'x'", "permanent")
    assert not f.transient


def test_nonzero_exit_with_bogus_error_class_is_permanent() -> None:
    f = failure(result({"error": "boom", "error_class": "whatever"}, returncode=1))
    assert f == CheckFailure("exited with status 1: boom", "permanent")


def test_nonzero_exit_without_document_shows_the_stderr_tail() -> None:
    stderr = b"Traceback (most recent call last):\n  File x\nZeroDivisionError: division by zero\n"
    f = failure(result(b"", returncode=1, stderr=stderr))
    assert f == CheckFailure("exited with status 1; stderr: ZeroDivisionError: division by zero", "permanent")


def test_nonzero_exit_with_valid_looking_signal_is_still_a_failure() -> None:
    f = failure(result(spot_doc(), returncode=3))
    assert f == CheckFailure("exited with status 3", "permanent")


def test_killed_by_signal_is_transient() -> None:
    f = failure(result(b"", returncode=-9, stderr=b""))
    assert f == CheckFailure("was killed by signal 9", "transient")


def test_killed_by_signal_mid_output_is_transient() -> None:
    f = failure(result(b'{"strategy": "mom', returncode=-15, stderr=b"partial\n"))
    assert f == CheckFailure("was killed by signal 15; stderr: partial", "transient")


def test_timeout_is_transient_and_names_the_limit() -> None:
    f = failure(result(b"", returncode=-9, timed_out=True, duration_s=30.04))
    assert f == CheckFailure("timed out after 30.0s (limit 30s); process group killed", "transient")


def test_output_overflow_is_permanent() -> None:
    f = failure(result(b"x" * 100, returncode=-9, output_overflow=True))
    assert f == CheckFailure(f"printed more than {MAX_OUT} bytes on stdout; killed", "permanent")


def test_cancelled_is_transient() -> None:
    f = failure(result(b"", returncode=None, cancelled=True, duration_s=0.0))
    assert f == CheckFailure("not run: the scheduler is shutting down", "transient")


def test_launch_error_is_transient() -> None:
    f = failure(result(b"", returncode=None, launch_error="[Errno 24] Too many open files", duration_s=0.0))
    assert f == CheckFailure("could not start the checker: [Errno 24] Too many open files", "transient")


# ---------------------------------------------------------------------------------------------
# What it printed


def test_empty_output() -> None:
    assert failure(result(b"")) == CheckFailure("printed nothing on stdout", "permanent")


def test_whitespace_only_output_with_stderr_tail() -> None:
    f = failure(result(b"  \n\t", stderr=b"warning: no candles\n"))
    assert f == CheckFailure("printed nothing on stdout; stderr: warning: no candles", "permanent")


def test_not_json() -> None:
    f = failure(result(b"Signal: BUY at 67000\n"))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output is not JSON (Expecting value at line 1 column 1): ")
    assert "'Signal: BUY at 67000'" in f.reason


def test_not_utf8() -> None:
    f = failure(result(b'{"x": "\xff"}'))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output is not UTF-8 (invalid start byte at byte 7)")


def test_two_documents() -> None:
    text = json.dumps(spot_doc()) + "\n" + json.dumps(spot_doc(signal=-1)) + "\n"
    f = failure(result(text))
    assert f.error_class == "permanent"
    assert f.reason.startswith("printed more than one JSON document (extra output after character ")
    assert f.reason.startswith(f"printed more than one JSON document (extra output after character "
                               f"{len(json.dumps(spot_doc()))})")


def test_document_followed_by_trailing_garbage() -> None:
    f = failure(result(json.dumps(spot_doc()) + " done"))
    assert "printed more than one JSON document" in f.reason and f.error_class == "permanent"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constant_in_price(constant: str) -> None:
    text = json.dumps(spot_doc()).replace("67000.5", constant)
    assert constant in text
    f = failure(result(text))
    assert f == CheckFailure(f"non-finite number {constant} in output", "permanent")


def test_non_finite_constant_anywhere_is_refused() -> None:
    text = json.dumps(spot_doc(indicators={"roc": 0.0})).replace("0.0", "NaN")
    f = failure(result(text))
    assert f == CheckFailure("non-finite number NaN in output", "permanent")


def test_overflowing_number_literal_price_is_refused() -> None:
    # 1e999 is valid JSON that decodes to float('inf'): the schema must still refuse it.
    text = json.dumps(spot_doc()).replace("67000.5", "1e999")
    f = failure(result(text))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output does not match the SpotSignal schema: price: ")
    assert "price: Input should be a finite number (got inf)" in f.reason


@pytest.mark.parametrize("price,shown", [(0, "0"), (0.0, "0.0"), (-1.5, "-1.5")])
def test_non_positive_price(price: float, shown: str) -> None:
    f = failure(result(spot_doc(price=price)))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output does not match the SpotSignal schema: price: ")
    assert f"must be a finite number > 0, got {shown}" in f.reason


def test_null_price() -> None:
    f = failure(result(spot_doc(price=None)))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output does not match the SpotSignal schema: price: ")


def test_missing_price() -> None:
    doc = spot_doc()
    del doc["price"]
    f = failure(result(doc))
    assert f == CheckFailure("output does not match the SpotSignal schema: price: Field required", "permanent")


def test_zero_stop_price_is_refused() -> None:
    f = failure(result(spot_doc(stop_price=0)))
    assert f.reason.startswith("output does not match the SpotSignal schema: stop_price: ")
    assert "must be a finite number > 0, got 0" in f.reason


@pytest.mark.parametrize("signal", [2, -2, "1", 0.5])
def test_signal_outside_minus_one_zero_one(signal: Any) -> None:
    f = failure(result(spot_doc(signal=signal)))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output does not match the SpotSignal schema: signal: ")
    assert "Input should be -1, 0 or 1" in f.reason


def test_boolean_signal_is_refused() -> None:
    f = failure(result(spot_doc(signal=True)))
    assert f.reason.startswith("output does not match the SpotSignal schema: signal: ")


def test_extra_keys_are_forbidden() -> None:
    f = failure(result(spot_doc(confidence=0.9)))
    assert f == CheckFailure("output does not match the SpotSignal schema: confidence: Extra inputs are not "
                             "permitted", "permanent")


def test_extra_keys_in_an_option_action_are_forbidden() -> None:
    doc = options_doc()
    doc["actions"][0]["leverage"] = 10
    f = failure(result(doc), OptionsSignal, OPTIONS_EXPECT)
    assert f == CheckFailure("output does not match the OptionsSignal schema: actions.0.leverage: Extra inputs "
                             "are not permitted", "permanent")


def test_naive_timestamp_is_refused() -> None:
    f = failure(result(spot_doc(timestamp="2024-05-01T12:00:00")))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output does not match the SpotSignal schema: timestamp: ")
    assert "timezone" in f.reason


def test_non_object_document() -> None:
    f = failure(result("[1, 2, 3]"))
    assert f.error_class == "permanent"
    assert f.reason.startswith("output does not match the SpotSignal schema: document: ")


def test_error_field_with_exit_zero_is_a_failure() -> None:
    f = failure(result(spot_doc(error="not enough candles: 12 < 50")))
    assert f == CheckFailure("checker reported an error (exit 0): not enough candles: 12 < 50", "transient")


def test_error_field_with_exit_zero_keeps_a_permanent_class() -> None:
    f = failure(result({"error": "bad symbol", "error_class": "permanent"}))
    assert f == CheckFailure("checker reported an error (exit 0): bad symbol", "permanent")


def test_answer_for_a_different_symbol() -> None:
    f = failure(result(spot_doc(symbol="ETH/USDT")))
    assert f == CheckFailure("answered for symbol='ETH/USDT', but 'BTC/USDT' was asked", "permanent")


def test_answer_for_a_different_timeframe_or_strategy() -> None:
    assert failure(result(spot_doc(timeframe="4h"))) == CheckFailure(
        "answered for timeframe='4h', but '1h' was asked", "permanent")
    assert failure(result(spot_doc(strategy="rsi"))) == CheckFailure(
        "answered for strategy='rsi', but 'momentum' was asked", "permanent")


def test_options_answer_for_a_different_underlying() -> None:
    f = failure(result(options_doc(underlying="ETH")), OptionsSignal, OPTIONS_EXPECT)
    assert f == CheckFailure("answered for underlying='ETH', but 'BTC' was asked", "permanent")


@pytest.mark.parametrize("spot_price,shown", [(0, "0"), (-3.0, "-3.0")])
def test_options_non_positive_spot_price(spot_price: float, shown: str) -> None:
    f = failure(result(options_doc(spot_price=spot_price)), OptionsSignal, OPTIONS_EXPECT)
    assert f.reason.startswith("output does not match the OptionsSignal schema: spot_price: ")
    assert f"must be a finite number > 0, got {shown}" in f.reason


def test_options_zero_strike_refused() -> None:
    doc = options_doc()
    doc["actions"][0]["strike"] = 0
    f = failure(result(doc), OptionsSignal, OPTIONS_EXPECT)
    assert f.reason.startswith("output does not match the OptionsSignal schema: actions.0.strike: ")


def test_options_non_finite_premium_refused() -> None:
    text = json.dumps(options_doc()).replace("1407.0", "1e999")
    out = judge(result(text), OptionsSignal, OPTIONS_EXPECT, TIMEOUT_S, MAX_OUT)
    assert isinstance(out, CheckFailure)
    assert out.error_class == "permanent"
    assert "premium_usd" in out.reason


def test_the_first_five_schema_problems_are_listed() -> None:
    f = failure(result({"a": 1}))
    assert f.reason.startswith("output does not match the SpotSignal schema: ")
    assert f.reason.count("; ") == 4  # five problems, joined


# ---------------------------------------------------------------------------------------------
# decode_one_document on its own


def test_decode_one_document_returns_the_value() -> None:
    assert decode_one_document(b' {"BTC/USDT": 67000.0, "ETH/USDT": null}\n') == {
        "BTC/USDT": 67000.0, "ETH/USDT": None}


@pytest.mark.parametrize("stdout,message", [
    (b"", "printed nothing on stdout"),
    (b"{} {}", "printed more than one JSON document (extra output after character 2)"),
    (b'{"a": NaN}', "non-finite number NaN in output"),
    (b"{", "output is not JSON (Expecting property name enclosed in double quotes at line 1 column 2): '{'"),
])
def test_decode_one_document_errors(stdout: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        decode_one_document(stdout)
    assert str(info.value) == message


def test_option_action_expiry_and_expiry_ms_must_agree() -> None:
    doc = options_doc()
    doc["actions"][0]["expiry_ms"] += 3_600_000
    f = failure(result(doc), OptionsSignal, OPTIONS_EXPECT)
    assert f.error_class == "permanent" and "disagree" in f.reason


@pytest.mark.parametrize("value", [True, 1719561600000.0, "1719561600000"])
def test_option_action_expiry_ms_is_an_integer(value: Any) -> None:
    doc = options_doc()
    doc["actions"][0]["expiry_ms"] = value
    f = failure(result(doc), OptionsSignal, OPTIONS_EXPECT)
    assert "actions.0.expiry_ms" in f.reason


def test_covered_quantity_above_the_quantity_is_refused() -> None:
    doc = options_doc()
    doc["actions"][0]["covered_quantity"] = 0.2
    f = failure(result(doc), OptionsSignal, OPTIONS_EXPECT)
    assert "covered_quantity 0.2 exceeds the quantity 0.1" in f.reason


def test_actions_without_a_spot_price_are_refused() -> None:
    f = failure(result(options_doc(spot_price=None)), OptionsSignal, OPTIONS_EXPECT)
    assert "actions proposed without a spot_price" in f.reason


@pytest.mark.parametrize("model", [SpotSignal, OptionsSignal])
def test_a_document_nested_too_deep_is_a_permanent_failure(model: Any) -> None:
    deep: Any = 1.0
    for _ in range(200):
        deep = {"x": deep}
    doc = spot_doc(indicators={"deep": deep}) if model is SpotSignal else options_doc(indicators={"deep": deep})
    f = failure(result(doc), model, OPTIONS_EXPECT if model is OptionsSignal else SPOT_EXPECT)
    assert f.error_class == "permanent" and "nested more than 16 levels deep" in f.reason


@pytest.mark.parametrize("where", ["indicator value", "indicator key", "error text"])
def test_text_that_is_not_unicode_is_a_permanent_failure(where: str) -> None:
    # a JSON escape of a lone surrogate decodes to a str that no file can hold as UTF-8
    if where == "indicator value":
        text = json.dumps(spot_doc(indicators={"note": "SURROGATE"}))
    elif where == "indicator key":
        text = json.dumps(spot_doc(indicators={"SURROGATE": 1}))
    else:
        text = json.dumps(spot_doc(error="SURROGATE"))
    text = text.replace("SURROGATE", "\\ud800")
    f = failure(result(text.encode(), returncode=1 if where == "error text" else 0))
    assert f.error_class == "permanent"
    assert "not valid Unicode" in f.reason or "lone surrogate" in f.reason
    f.reason.encode("utf-8")  # the reason itself can be saved
