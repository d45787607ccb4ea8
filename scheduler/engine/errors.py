"""The project's error hierarchy: each branch tells the caller what to do.

A value module of the engine (standard library only) so that every layer can import it
without a cycle: market/, the checkers and the scheduler all raise and catch these.

- ConfigError: the configuration is wrong; exit with status 2, start nothing.
- StateError: state.json cannot be trusted; refuse to start, touch nothing.
- A failed checker run is not an exception but a value: scheduler.signals.CheckFailure
  (skip that strategy this cycle, with a reason classed transient or permanent).
- ExchangeError: the market-data source failed. TransientExchangeError may be
  retried with backoff; PermanentExchangeError must be surfaced at once.

Library errors (ccxt, OSError, JSON) are translated into these once, at the
adapter that calls the library, with ``raise ... from e``.
"""

from __future__ import annotations


class GoTraderError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(GoTraderError):
    """Invalid configuration. Carries every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StateError(GoTraderError):
    """state.json is unreadable, corrupt, from a newer version, or locked."""


class StateSaveError(StateError):
    """Saving state failed: trading must stop until a save succeeds."""


class ExchangeError(GoTraderError):
    """The market-data source failed."""


class TransientExchangeError(ExchangeError):
    """Network, timeout, rate limit, exchange unavailable: retry with backoff.

    ``retry_after_s`` carries the server's Retry-After hint when it gave one.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class PermanentExchangeError(ExchangeError):
    """Bad symbol, bad request, authentication: retrying will not help."""


class DataError(ExchangeError):
    """The data itself is unusable: stale candles, malformed rows, no price."""
