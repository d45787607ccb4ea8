"""ccxt's errors translated into ours, once, and the retry policy for transient ones.

ccxt's hierarchy (ccxt.base.errors.error_hierarchy) has two branches that matter:

- ``OperationFailed`` (``NetworkError``: rate limit, DDoS protection / 418, exchange
  unavailable / 5xx, maintenance, timeout; ``BadResponse``: a body that is not the
  JSON it should be): the request may succeed later -> TransientExchangeError.
- ``ExchangeError`` (bad symbol, bad request, authentication, not supported,
  rejected...) and anything else: retrying will not help -> PermanentExchangeError.

``tests/market/test_ccxt_errors.py`` walks every class ccxt defines and proves each
maps to exactly one of ours.

``Breaker`` stops a process from retrying an exchange that is plainly not there
(connection refused, DNS failure, no answer): after a few such requests in a row, or a
few calls in a row that used up their retries, every further call fails at once with
``SourceUnavailableError``, so an offline fetch step costs about one retry budget, not
one per pair.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ccxt
import numpy as np

from market.base import SourceUnavailableError
from scheduler.engine.errors import ExchangeError, PermanentExchangeError, TransientExchangeError

T = TypeVar("T")

#: Most specific first; the first base class of the error found here decides.
_MAPPING: tuple[tuple[type[BaseException], type[ExchangeError]], ...] = (
    (ccxt.OperationFailed, TransientExchangeError),  # NetworkError, BadResponse, CancelPending
    (ccxt.ExchangeError, PermanentExchangeError),
    (ccxt.BaseError, PermanentExchangeError),  # UnsubscribeError and anything new
)

#: ccxt classes whose HTTP response may carry a Retry-After worth honouring.
_RETRY_AFTER_CLASSES = (ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable)


def our_class_for(ccxt_class: type[BaseException]) -> type[ExchangeError]:
    """Which of our error classes a ccxt error class maps to."""
    for theirs, ours in _MAPPING:
        if issubclass(ccxt_class, theirs):
            return ours
    raise TypeError(f"{ccxt_class.__name__} is not a ccxt error")


def parse_retry_after(value: str | None, *, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None.

    RFC 9110 section 10.2.3. Negative or unreadable values give None.
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now_s
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def retry_after_from_headers(headers: Mapping[str, Any] | None, *, now_s: float) -> float | None:
    """The Retry-After of a response's headers (case-insensitive), or None."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            return parse_retry_after(value, now_s=now_s)
    return None


def translate(
    error: BaseException,
    *,
    what: str,
    response_headers: Mapping[str, Any] | None = None,
    now_s: float | None = None,
) -> ExchangeError:
    """Our error for a ccxt error raised while doing ``what``.

    ``response_headers`` are the headers of the response that caused it (ccxt's
    ``last_response_headers``); their Retry-After is kept on transient errors.
    """
    cls = our_class_for(type(error))
    kind = type(error).__name__
    if cls is TransientExchangeError:
        retry_after = None
        if isinstance(error, _RETRY_AFTER_CLASSES):
            retry_after = retry_after_from_headers(
                response_headers, now_s=time.time() if now_s is None else now_s
            )
        hint = (
            f" (server asked to retry after {retry_after:g} s)" if retry_after is not None else ""
        )
        return TransientExchangeError(f"{what}: {kind}: {error}{hint}", retry_after_s=retry_after)
    return PermanentExchangeError(f"{what}: {kind}: {error}")


@dataclass
class RetryPolicy:
    """Retry transient errors with exponential backoff and jitter, within a budget.

    Delay before retry n (0-based): ``base_delay_s * 2**n`` capped at ``max_delay_s``,
    times a jitter factor drawn uniformly from [0.5, 1.0] ("equal jitter", AWS
    Architecture Blog, "Exponential Backoff And Jitter", 2015); when the server sent
    Retry-After the delay is at least that. It gives up (re-raising the last transient
    error) after ``max_retries`` retries or when the next wait would pass ``budget_s``
    measured from the first attempt. Permanent errors, DataError and
    SourceUnavailableError (the source gave up on itself, see ``Breaker``) are raised at once.
    ``sleep``/``monotonic``/``rng`` are injected so tests never sleep for real.
    """

    budget_s: float = 30.0
    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    #: every wait taken, in seconds (for tests and logs)
    waits_s: list[float] = field(default_factory=list)

    def delay_for(self, retry_index: int, retry_after_s: float | None) -> float:
        backoff = min(self.max_delay_s, self.base_delay_s * (2**retry_index))
        delay = backoff * float(self.rng.uniform(0.5, 1.0))
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def run(self, attempt: Callable[[], T], *, what: str) -> T:
        """Call ``attempt`` until it returns, retrying TransientExchangeError."""
        started = self.monotonic()
        retries = 0
        while True:
            try:
                return attempt()
            except SourceUnavailableError:
                raise
            except TransientExchangeError as e:
                if retries >= self.max_retries:
                    raise TransientExchangeError(
                        f"{what}: gave up after {retries + 1} attempts: {e}",
                        retry_after_s=e.retry_after_s,
                    ) from e
                delay = self.delay_for(retries, e.retry_after_s)
                elapsed = self.monotonic() - started
                if elapsed + delay > self.budget_s:
                    raise TransientExchangeError(
                        f"{what}: gave up after {retries + 1} attempts: the next wait of "
                        f"{delay:.2f} s would pass the retry budget of {self.budget_s:g} s "
                        f"({elapsed:.2f} s used): {e}",
                        retry_after_s=e.retry_after_s,
                    ) from e
                self.waits_s.append(delay)
                self.sleep(delay)
                retries += 1


@dataclass
class Breaker:
    """Decides when an exchange is down for the rest of this process.

    It trips after ``silent_attempts`` requests in a row got no response at all
    (connection refused, DNS failure, connection dropped: ccxt's NetworkError with no
    response headers; the caller leaves timeouts out, a slow host is still there), or after ``failed_calls`` calls in a row used up their
    retries on transient errors (the exchange answers, but only with 5xx or 429). Any
    answer resets the first count, any successful or permanently failed call (the
    exchange answered) resets both. Once tripped, ``check`` raises at once.
    """

    name: str
    silent_attempts: int = 3
    failed_calls: int = 2
    tripped: str | None = None  # why, once tripped
    _silent: int = 0
    _failed: int = 0

    def check(self, what: str) -> None:
        """Raise SourceUnavailableError when tripped (before any request is made)."""
        if self.tripped is not None:
            raise SourceUnavailableError(f"{what}: not tried: {self.tripped}")

    def answered(self) -> None:
        """A request got an answer that ended the call (a result or a permanent error)."""
        self._silent = self._failed = 0

    def attempt_failed(self, error: ExchangeError, *, got_response: bool, what: str) -> None:
        """Record one failed request; raises SourceUnavailableError when this trips it."""
        if not isinstance(error, TransientExchangeError):
            self.answered()
            return
        self._silent = 0 if got_response else self._silent + 1
        if self._silent >= self.silent_attempts:
            self.tripped = (
                f"{self.name} is unreachable: {self._silent} requests in a row got no response "
                f"(last: {error}); it is not tried again in this process"
            )
            raise SourceUnavailableError(f"{what}: {self.tripped}") from error

    def call_gave_up(self, error: TransientExchangeError, *, what: str) -> None:
        """Record a call that used up its retries; raises SourceUnavailableError when this
        trips it."""
        self._failed += 1
        if self._failed >= self.failed_calls:
            self.tripped = (
                f"{self.name} is unavailable: {self._failed} calls in a row failed after their "
                f"retries (last: {error}); it is not tried again in this process"
            )
            raise SourceUnavailableError(f"{what}: {self.tripped}") from error
