"""Every ccxt error class maps to exactly one of ours; the retry policy's arithmetic."""

from __future__ import annotations

import inspect

import ccxt
import numpy as np
import pytest
from ccxt.base import errors as ccxt_errors

from market.ccxt_errors import RetryPolicy, our_class_for, parse_retry_after, translate
from scheduler.engine.errors import PermanentExchangeError, TransientExchangeError


def _walk(tree: dict, out: list[str]) -> list[str]:  # type: ignore[type-arg]
    for name, sub in tree.items():
        out.append(name)
        _walk(sub, out)
    return out


HIERARCHY = _walk(ccxt_errors.error_hierarchy, [])
DEFINED = sorted(
    name
    for name, obj in vars(ccxt_errors).items()
    if inspect.isclass(obj) and issubclass(obj, ccxt_errors.BaseError)
)
TRANSIENT = {
    "OperationFailed",
    "NetworkError",
    "DDoSProtection",
    "RateLimitExceeded",
    "ExchangeNotAvailable",
    "OnMaintenance",
    "InvalidNonce",
    "ChecksumError",
    "RequestTimeout",
    "BadResponse",
    "NullResponse",
    "CancelPending",
}


def test_hierarchy_and_module_agree() -> None:
    assert set(HIERARCHY) == set(DEFINED)
    assert len(HIERARCHY) > 40


@pytest.mark.parametrize("name", DEFINED)
def test_every_ccxt_error_maps_to_one_of_ours(name: str) -> None:
    cls = getattr(ccxt_errors, name)
    ours = our_class_for(cls)
    assert ours in (TransientExchangeError, PermanentExchangeError)
    assert ours is (TransientExchangeError if name in TRANSIENT else PermanentExchangeError)
    err = translate(cls("boom"), what="test call", response_headers={"Retry-After": "3"}, now_s=0)
    assert isinstance(err, ours)
    assert "test call" in str(err) and name in str(err) and "boom" in str(err)


@pytest.mark.parametrize(
    "cls", [ccxt.BadSymbol, ccxt.BadRequest, ccxt.AuthenticationError, ccxt.ExchangeError]
)
def test_bad_symbol_and_bad_request_are_permanent(cls: type) -> None:
    assert isinstance(translate(cls("x"), what="w"), PermanentExchangeError)


def test_rate_limit_keeps_retry_after() -> None:
    err = translate(
        ccxt.RateLimitExceeded("429"), what="w", response_headers={"retry-after": "7"}, now_s=0
    )
    assert isinstance(err, TransientExchangeError) and err.retry_after_s == 7.0
    # a timeout carries no Retry-After even if old headers are lying around
    err = translate(
        ccxt.RequestTimeout("t"), what="w", response_headers={"Retry-After": "7"}, now_s=0
    )
    assert err.retry_after_s is None


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("2", now_s=0) == 2.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now_s=10) == 20.0
    assert parse_retry_after("-1", now_s=0) is None
    assert parse_retry_after("soon", now_s=0) is None
    assert parse_retry_after(None, now_s=0) is None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s

    def __call__(self) -> float:
        return self.t


def _policy(clock: Clock, **kw: float) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, monotonic=clock, rng=np.random.default_rng(1), **kw)  # type: ignore[arg-type]


def _failing(n: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= n:
            raise error
        return "ok"

    return calls, attempt


def test_backoff_grows_with_jitter_and_then_succeeds() -> None:
    clock = Clock()
    calls, attempt = _failing(3, TransientExchangeError("x"))
    assert _policy(clock, base_delay_s=1.0).run(attempt, what="w") == "ok"  # type: ignore[arg-type]
    assert len(calls) == 4
    for i, wait in enumerate(clock.slept):
        assert 0.5 * 2**i <= wait <= 2**i


def test_retry_after_is_honoured() -> None:
    clock = Clock()
    _, attempt = _failing(1, TransientExchangeError("429", retry_after_s=5.0))
    _policy(clock, base_delay_s=0.1).run(attempt, what="w")  # type: ignore[arg-type]
    assert clock.slept == [5.0]


def test_gives_up_after_max_retries() -> None:
    clock = Clock()
    calls, attempt = _failing(100, TransientExchangeError("down"))
    with pytest.raises(TransientExchangeError, match="gave up after 3 attempts"):
        _policy(clock, max_retries=2, base_delay_s=0.01).run(attempt, what="w")  # type: ignore[arg-type]
    assert len(calls) == 3


def test_gives_up_when_the_wait_would_pass_the_budget() -> None:
    clock = Clock()
    calls, attempt = _failing(100, TransientExchangeError("429", retry_after_s=60.0))
    with pytest.raises(TransientExchangeError, match="retry budget") as info:
        _policy(clock, budget_s=30.0).run(attempt, what="w")  # type: ignore[arg-type]
    assert len(calls) == 1 and clock.slept == [] and info.value.retry_after_s == 60.0


def test_permanent_errors_are_not_retried() -> None:
    clock = Clock()
    calls, attempt = _failing(100, PermanentExchangeError("bad symbol"))
    with pytest.raises(PermanentExchangeError):
        _policy(clock).run(attempt, what="w")  # type: ignore[arg-type]
    assert len(calls) == 1
