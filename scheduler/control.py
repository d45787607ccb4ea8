"""A person's commands: resets of the risk breakers, manual trades, reconciliation.

They come from the CLI or the HTTP control endpoints and are queued to the
daemon's main loop, which runs them between cycles: the main loop stays the
only writer of the state. Each goes through the same engine and rules as a
cycle, is saved the same way, and resets leave an audit record.
"""

from __future__ import annotations

import queue
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scheduler.engine import risk
from scheduler.engine.errors import StateSaveError
from scheduler.engine.models import REQUESTS_KEPT, AuditRecord, State, Trade, utc_iso
from scheduler.engine.step import SpotIntent, account_equity, sleeve_equity
from scheduler.state_store import append_audit, read_trade_log

if TYPE_CHECKING:
    from scheduler.daemon import Daemon

REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
REQUEST_ID_RULE = "request_id must be 1 to 64 letters, digits, '-' or '_'"
#: who asked, as a person gives it (--by, or the "by" of an HTTP body)
BY_MAX_CHARS = 100
#: room for a client's own tag after the name (the CLI sends "NAME (cli)" over HTTP)
BY_TAG_CHARS = 16
#: room for where the request came from, added by the server (" (http 2001:db8::1)")
BY_SUFFIX_CHARS = 64
#: the longest "by" the HTTP endpoints take, and the longest the engine takes once composed
BY_HTTP_MAX_CHARS = BY_MAX_CHARS + BY_TAG_CHARS
BY_COMPOSED_MAX_CHARS = BY_HTTP_MAX_CHARS + BY_SUFFIX_CHARS
#: any other text field of a request (strategy, action, symbol): names, all far shorter
TEXT_MAX_CHARS = 200
#: line and paragraph separators: text that would end a log line
_BREAKS = {"\x85", "\u2028", "\u2029"}


def text_problem(name: str, value: object, max_chars: int) -> str | None:
    """Why ``value`` cannot be the free-text field ``name`` of a control request, or None.

    What a request says ends up in state.json, the audit log and the logs: it must be text
    that can be saved as UTF-8 (a lone surrogate such as JSON's "\\ud800", or a byte the
    command line could not decode, cannot: the save would fail and trading would halt) and
    stay on one line (no control characters).
    """
    allowed = (f"1 to {max_chars} characters of printable text (no control characters, line breaks or lone "
               "surrogates)")
    if not isinstance(value, str):
        return f"{name} must be a string of {allowed}, not {type(value).__name__}"
    if not 1 <= len(value) <= max_chars:
        return f"{name} must be {allowed}; it has {len(value)}"
    for i, char in enumerate(value):
        kind = unicodedata.category(char)
        if kind == "Cs":
            what = (f"a lone surrogate U+{ord(char):04X}, which is not Unicode text (a byte that is not UTF-8, "
                    "or a broken \\u escape)")
        elif kind == "Cc" or char in _BREAKS:
            what = f"the control character U+{ord(char):04X}"
        else:
            continue
        return f"{name} must be {allowed}; character {i + 1} is {what}"
    return None


def request_problem(args: dict[str, Any], by: str) -> str | None:
    """What is wrong with a control request's fields (``by`` as the caller composed it), or None."""
    for name, value in args.items():
        problem = text_problem("a field name", name, TEXT_MAX_CHARS)
        if problem:
            return problem
        if name == "request_id":
            if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
                return REQUEST_ID_RULE
            continue
        problem = text_problem(name[:40], value, TEXT_MAX_CHARS)  # the name is text: checked above
        if problem:
            return problem
    return text_problem("by", by, BY_COMPOSED_MAX_CHARS)


@dataclass
class Command:
    """A person's request (reset, manual trade), run by the main loop between cycles."""

    kind: str  # reset_breaker | reset_kill_switch | trade | reconcile
    args: dict[str, Any]
    by: str
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None


def error_text(e: Exception) -> str:
    """An exception's message as written: a KeyError's str() quotes it (and stripping the quotes
    off took the closing quote of a quoted value with them)."""
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _pending_answer(command: Command, error: StateSaveError) -> dict[str, Any]:
    """The answer to a command whose change could not be saved: not done, not lost either. The
    daemon halts holding it unsaved, and it takes effect with the first save that works."""
    rid = command.args.get("request_id")
    again = f"; ask again with request_id {rid} for its answer" if isinstance(rid, str) else ""
    return {"ok": False, "pending": True, **({"request_id": rid} if again else {}),
            "error": f"{error}; trading is halted; this {command.kind} is kept in memory and takes effect when a "
                     f"save succeeds (it is lost if the daemon stops before that){again}"}


class ControlMixin:
    """The command half of the Daemon (see scheduler.daemon.Daemon for the attributes used)."""

    def _setup_control(self) -> None:
        self._commands: queue.Queue[Command] = queue.Queue()
        self._wake = threading.Event()
        self._last_reconcile_mono: float | None = None
        self._request_id: str | None = None
        self._request_args: dict[str, Any] | None = None

    def submit(self: Daemon, kind: str, args: dict[str, Any], by: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Queue a command for the main loop and wait up to ``timeout_s`` for its result."""
        command = Command(kind, args, by)
        self._commands.put(command)
        self._wake.set()
        if command.done.wait(timeout_s):
            return command.result or {}
        again = (f"; ask again with request_id {args['request_id']} for its answer"
                 if isinstance(args.get("request_id"), str) else "")
        return {"ok": True, "queued": True, **({"request_id": args["request_id"]} if again else {}),
                "detail": f"{kind} is queued and runs as soon as the current cycle ends{again}"}

    def wake(self) -> None:
        self._wake.set()

    def process_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command.result = self.execute(command.kind, command.args, command.by)
            except (KeyError, ValueError) as e:
                command.result = {"ok": False, "error": error_text(e)}
            except StateSaveError as e:
                command.result = _pending_answer(command, e)
            finally:
                command.done.set()

    def execute(self, kind: str, args: dict[str, Any], by: str) -> dict[str, Any]:
        """Apply one command to the state and save it. Raises KeyError/ValueError for bad input.

        A ``request_id`` makes the command idempotent: its answer is saved with the change it
        made, and the same id again gets that answer (``"replayed": true``) instead of a second run.
        """
        assert self.logs is not None
        problem = request_problem(args, by)
        if problem:  # checked before anything is run: text that cannot be saved must never reach the state
            raise ValueError(problem)
        if kind == "reconcile":
            return self.reconcile()
        args = dict(args)
        request_id = args.pop("request_id", None)
        if request_id is not None:
            answered = self.state.requests.get(request_id)
            if answered is not None:
                if answered.get("kind") != kind or answered.get("args", args) != args:
                    raise ValueError(f"request_id {request_id!r} was already used for another request "
                                     f"({answered.get('kind')} {answered.get('args', '')}); give each request "
                                     "its own id")
                return {**answered["result"], "request_id": request_id, "replayed": True}
        self._request_id, self._request_args = request_id, args
        try:
            return self._execute(kind, args, by)
        finally:
            self._request_id = self._request_args = None

    def _remember(self, new: State, kind: str, result: dict[str, Any]) -> dict[str, Any]:
        """Store ``result`` in ``new`` under the current request id (saved with the change)."""
        if self._request_id is None:
            return result
        new.requests[self._request_id] = {"kind": kind, "args": self._request_args, "result": result}
        while len(new.requests) > REQUESTS_KEPT:
            del new.requests[next(iter(new.requests))]
        return {**result, "request_id": self._request_id}

    def _execute(self, kind: str, args: dict[str, Any], by: str) -> dict[str, Any]:
        assert self.logs is not None
        if self.halted:
            raise ValueError(f"trading is halted ({self.halted}); fix the state save first")
        ids = [s.id for s in self.config.strategies]
        now = self.clock.now()
        if kind == "trade":
            return self._manual_trade(args, by)
        fields = {"reset_breaker": {"strategy"}, "reset_kill_switch": set()}.get(kind, set())
        if args.keys() - fields:
            raise ValueError(f"unexpected fields {sorted(args.keys() - fields)} for {kind}: it takes "
                             f"{', '.join(sorted(fields)) or 'no fields'} (and optionally request_id and by)")
        new = self.state.model_copy(deep=True)
        if kind == "reset_breaker":
            sid = args.get("strategy")
            if sid is None:
                raise ValueError(f"strategy is missing: name the strategy whose breaker to reset ({', '.join(ids)})")
            if sid not in new.sleeves:
                raise KeyError(f"unknown strategy {sid!r}; known: {', '.join(ids)}")
            record = risk.reset_breaker(new, sid, sleeve_equity(new.sleeves[sid]), now, by)
        elif kind == "reset_kill_switch":
            record = risk.reset_kill_switch(new, account_equity(new, ids), now, by)
        else:
            raise ValueError(f"unknown command {kind!r}")
        result = self._remember(new, kind, {"ok": True, "action": record.action, "scope": record.scope,
                                            "detail": record.detail, "by": record.by, "at": utc_iso(record.at)})
        self._commit(new, [], new.cycle_count, then=lambda: self._audit(record))
        return result

    def _audit(self, record: AuditRecord) -> None:
        assert self.logs is not None
        append_audit(self.state_path, record)
        self.logs.scheduler.warning(f"AUDIT {record.action} [{record.scope}] by {record.by}: {record.detail}")
        self.logs.event("audit", self.state.cycle_count, None if record.scope == risk.ACCOUNT else record.scope,
                        **record.model_dump(mode="json"))

    def _manual_trade(self, args: dict[str, Any], by: str) -> dict[str, Any]:
        """Enter or close a strategy's symbol now, through the same engine and rules.

        The size is the backend's (the strategy's sizing mode and the account caps); the
        caller names only the strategy, the action and optionally the symbol.
        """
        assert self.logs is not None
        sid, action = args.get("strategy"), args.get("action")
        s = next((x for x in self.config.strategies if x.id == sid), None)
        spot = ", ".join(x.id for x in self.config.strategies if x.type == "spot")
        if s is not None and s.type != "spot":
            raise KeyError(f"strategy {sid!r} is an options strategy: manual trades enter and close a spot strategy's "
                           f"symbol (its legs are traded by its checker's signals); spot strategies: {spot}")
        if s is None:
            raise KeyError(f"unknown spot strategy {sid!r}; known: {spot}")
        if action not in ("enter", "close"):
            raise ValueError(f"action must be 'enter' or 'close', got {action!r}")
        symbol = args.get("symbol") or s.symbols[0]
        if symbol != s.symbols[0]:
            raise ValueError(f"{sid} trades {s.symbols[0]}, not {symbol!r}")
        if args.keys() - {"strategy", "action", "symbol"}:  # (request_id was taken off by execute)
            raise ValueError(f"unexpected fields {sorted(args.keys() - {'strategy', 'action', 'symbol'})}: "
                             "the backend sizes manual trades; the caller gives strategy, action and symbol only")
        now = self.clock.now()
        cycle = self.state.cycle_count
        from scheduler.daemon import FetchPlan  # (the daemon module imports this one)

        with self._workspace(now, "manual") as (launcher, env):
            fetched = self._fetch(launcher, FetchPlan([(symbol, s.timeframe)], [symbol]), env, cycle, limit=50)
        # priced by _step like a cycle's orders: the quote's ask (enter) or bid (close), or
        # rejected NO_QUOTE when the fetch got none; never the last candle's close
        intent = SpotIntent(sid, symbol, 1 if action == "enter" else -1, None, now, reason="manual")
        new = self.state.model_copy(deep=True)
        events = self._step(new, [intent], fetched, now, cycle)
        mine = [e.as_json() for e in events if e.strategy_id in (sid, risk.ACCOUNT) and e.kind != "hold"]
        outcome = [e for e in mine if e["kind"] in ("fill", "rejected")]
        result = self._remember(new, "trade", {
            "ok": bool(outcome) and outcome[-1]["kind"] == "fill", "strategy": sid, "action": action,
            "symbol": symbol, "events": mine,
            "detail": "filled" if outcome and outcome[-1]["kind"] == "fill" else
            (outcome[-1]["detail"] if outcome else f"nothing to do ({action} with "
             f"{'a' if symbol in new.sleeves[sid].positions else 'no'} position)")})
        logs = self.logs
        self._commit(new, events, cycle,
                     then=lambda: logs.strategy(sid).warning(f"Manual {action} of {symbol} requested by {by}"))
        return result

    def reconcile(self, trades: list[Trade] | None = None) -> dict[str, Any]:
        """Rebuild every sleeve from the trade log (``trades``, when the caller just read it) and
        compare with the state; report and log."""
        assert self.logs is not None
        logged = read_trade_log(self.state_path) if trades is None else trades
        diffs = risk.reconcile(self.state, logged, self.config.risk.reconcile_tolerance_usd)
        report = {"at": utc_iso(self.clock.now()), "ok": not diffs, "differences": [str(d) for d in diffs]}
        self.state.last_reconcile = report  # not trading state: saved with the next commit
        self._last_reconcile_mono = time.monotonic()
        if diffs:
            self.logs.scheduler.error(f"Reconciliation found {len(diffs)} difference(s): " + "; ".join(map(str, diffs[:10])))
        else:
            self.logs.scheduler.info(f"Reconciliation OK: {len(self.state.sleeves)} sleeves match the trade log")
        self.logs.event("reconcile", self.state.cycle_count, None, **report)
        self._publish()
        return report

    def _reconcile_due(self) -> bool:
        every = self.config.risk.reconcile_interval_hours * 3600
        return self._last_reconcile_mono is None or time.monotonic() - self._last_reconcile_mono >= every

