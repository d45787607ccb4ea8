"""What a run's ``notes`` say about the decisions it could not make and the orders the engine
refused, so that a flat or thin result is never left unexplained (README "Backtesting").

A check that fails (stale or missing candles, no chain, a checker error) gives that tick no
decision, as in the daemon; an order the engine refuses (a reason code: INSUFFICIENT_MARGIN,
a risk-based entry with no stop, ...) gives no fill. Both are normal in small numbers; when
they are every tick's, the figures mean nothing without them. ``Tally`` counts both over one
replay and words them; a run where every check failed decided nothing, and
``raise_if_nothing_decided`` refuses it (DataError, naming the first failure) instead of
reporting a flat curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scheduler.engine.errors import DataError
from scheduler.engine.models import utc_from_ms, utc_iso

if TYPE_CHECKING:
    from scheduler.config import Config, StrategyConfig


def alone(config: Config, s: StrategyConfig) -> tuple[str, ...]:
    """The note on a strategy of a config of several, which is replayed on its own: the
    account-wide rules then judge its sleeve alone, not the sum the daemon's account is."""
    if len(config.strategies) < 2:
        return ()
    total = sum(x.capital for x in config.strategies)
    return (f"{s.id} is replayed alone: its {s.capital:,.2f} USD sleeve is the whole account here, so the "
            f"account-wide rules (position and exposure caps, daily loss, the kill switch) judge it alone; the "
            f"daemon running this config judges the sum of its {len(config.strategies)} strategies "
            f"({total:,.2f} USD), where the caps bind less (replay a config of this strategy alone to match it)",)


def together(config: Config) -> tuple[str, ...]:
    """The note on the strategies of a config replayed together (backtest/joint.py)."""
    if len(config.strategies) < 2:
        return ()
    total = sum(s.capital for s in config.strategies)
    return (f"the config's {len(config.strategies)} strategies are replayed together, in one {total:,.2f} USD "
            "account on one clock, as the daemon runs them: the account-wide rules (position and exposure caps, "
            "daily loss, the kill switch) judge the sum of the sleeves, and each strategy's figures are its "
            "sleeve's share of that run",)


def when(ms: int) -> str:
    """``ms`` as the result's UTC ISO time."""
    return utc_iso(utc_from_ms(ms))


@dataclass
class _Refusals:
    count: int
    first_ms: int
    first_detail: str


@dataclass
class Tally:
    """Checks made and failed, and orders refused by reason code, over one replay."""

    checks: int = 0
    failed: int = 0
    first_failure: str = ""
    first_failure_ms: int = 0
    refused: dict[str, _Refusals] = field(default_factory=dict)

    def checked(self, count: int = 1) -> None:
        self.checks += count

    def check_failed(self, at_ms: int, reason: str, count: int = 1) -> None:
        """``count`` checks failed, the first of them at ``at_ms`` for ``reason``."""
        if count <= 0:
            return
        if not self.failed or at_ms < self.first_failure_ms:
            self.first_failure, self.first_failure_ms = reason, at_ms
        self.failed += count

    def refusal(self, at_ms: int, code: str, detail: str) -> None:
        """The engine refused an order with reason ``code``."""
        seen = self.refused.get(code)
        if seen is None:
            self.refused[code] = _Refusals(1, at_ms, detail)
        else:
            seen.count += 1

    def notes(self) -> tuple[str, ...]:
        out = []
        if self.failed:
            out.append(f"{self.failed:,} of {self.checks:,} checks failed, so those ticks made no decision (first at "
                       f"{when(self.first_failure_ms)}: {self.first_failure})")
        for code, r in sorted(self.refused.items(), key=lambda kv: (-kv[1].count, kv[0])):
            out.append(f"{r.count:,} order(s) refused by the engine with {code} (first at {when(r.first_ms)}: "
                       f"{r.first_detail})")
        return tuple(out)

    def raise_if_nothing_decided(self, strategy_id: str, start_ms: int, end_ms: int) -> None:
        """DataError when every check failed: nothing could be decided, so the flat curve is
        not a result."""
        if self.checks and self.failed >= self.checks:
            raise DataError(f"{strategy_id}: every one of the {self.checks:,} checks from {when(start_ms)} to "
                            f"{when(end_ms)} failed, so nothing could be decided; the first failure: "
                            f"{self.first_failure}")
