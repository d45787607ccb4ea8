"""The scheduler: the shell around the pure engine.

One cycle: pick the strategies that are due, run the fetch step once, run
one checker process per due strategy, validate what each printed, call the
engine once, save state atomically, then publish the new snapshot to
/status and write logs. The daemon itself never imports numpy, pandas or
ccxt: all market work happens in the checker processes.

Commit protocol: a cycle's fills become real when the state holding them is
saved; only then are they appended to the trade log and shown on /status.
A crash before the save loses the whole cycle (its strategies were not
marked as run, so they run again); a crash after it loses nothing.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from market.manifest import write_fetch_failed
from scheduler import engine_rules, execution, history, metrics, options_cycle
from scheduler.clock import Clock
from scheduler.config import STATUS_TOKEN_ENV, Config, StrategyConfig, checkers_dir
from scheduler.control import ControlMixin
from scheduler.engine import risk
from scheduler.engine.errors import GoTraderError, StateError, StateSaveError
from scheduler.engine.market_rules import MarketRules
from scheduler.engine.models import LastCheck, Sleeve, State, Trade, new_sleeve, utc_iso
from scheduler.engine.option_fills import OptionIntent, OptionMark
from scheduler.engine.step import (
    Bar,
    Event,
    Mark,
    SpotIntent,
    account_equity,
    sleeve_equity,
    step,
)
from scheduler.history import history_path
from scheduler.http_status import Snapshot, StatusServer
from scheduler.logs import Logs
from scheduler.memory import release_free_memory
from scheduler.notify.messages import price, quantity
from scheduler.notify.service import NotifyService
from scheduler.runner import ForkLauncher, Job, JobResult, Launcher, SubprocessLauncher, run_jobs
from scheduler.sdnotify import Notifier
from scheduler.signals import CheckFailure, OptionsSignal, SpotSignal, decode_one_document, judge
from scheduler.state_store import (
    StateLock,
    append_trades,
    check_against_log,
    check_owner,
    check_writable_folder,
    endpoint_path,
    load_state,
    read_trade_log,
    refuse_links,
    repair_trade_log,
    restore_hint,
    save_state,
    trade_log_path,
    write_atomic,
)
from scheduler.status import build_status

PREFETCH_KEY = "(fetch step)"
#: while halted or faulted, retries wait 1, 2, 4, ... seconds, at most this long
RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class FetchPlan:
    """What one cycle's fetch step gets (market/prefetch.py's request)."""

    pairs: list[tuple[str, str]]
    price_symbols: list[str]
    option_underlyings: list[str] = field(default_factory=list)
    deliveries: dict[str, list[int]] = field(default_factory=dict)  # underlying -> expiries to settle


@dataclass(frozen=True)
class OptionMarket:
    """The options inputs of one step: the checkers' intents and the cycle's quotes and index."""

    intents: list[OptionIntent] = field(default_factory=list)
    quotes: dict[str, OptionMark] = field(default_factory=dict)
    index: dict[str, float] = field(default_factory=dict)


@dataclass
class CycleReport:
    cycle: int
    checked: int
    failed: int
    fills: int
    duration_s: float
    total_value_usd: float | None
    events: list[Event] = field(default_factory=list)
    cpu_s: float = 0.0
    failed_ids: list[str] = field(default_factory=list)
    not_run: int = 0  # due, but not started: the scheduler was stopping (they run at the next start)


def _fmt_usd(v: float | None) -> str:
    return "unknown" if v is None else f"${v:,.2f}"


class Daemon(ControlMixin):
    def __init__(self, config: Config, config_path: Path, *, clock: Clock, state_path: Path, log_dir: Path,
                 notifier: Notifier | None = None, stdout_logs: bool = True,
                 launcher_factory: Callable[[], Launcher] | None = None) -> None:
        self.config, self.config_path, self.clock = config, config_path, clock
        self.state_path, self.log_dir = state_path, log_dir
        self.notifier = notifier or Notifier()
        self.checkers_dir = checkers_dir(config, config_path)
        self._launcher_factory = launcher_factory
        self._stdout_logs = stdout_logs
        self.lock = StateLock(state_path)
        self.snapshot = Snapshot()
        self.state = State()
        self.prices: dict[str, float | None] = {}
        self.halted: str | None = None
        self._unsaved: State | None = None
        #: what the commits held in ``_unsaved`` did (events to log, then the follow-up: an audit
        #: line, say), logged once a save makes them committed: (events, cycle, then)
        self._unsaved_work: list[tuple[list[Event], int, Callable[[], None] | None]] = []
        #: a cycle that could not run at all (e.g. the state folder turned read-only), or None
        self.fault: str | None = None
        #: set when every check of the last cycle failed: /health says degraded
        self._all_failed: str | None = None
        self._retry_s = 0.0
        self.counters = metrics.Counters()
        #: a trade-log append failed: the log lacks fills the saved state holds
        self._log_behind = False
        self.started_at = clock.now()
        self._last_cycle_mono = time.monotonic()
        self.server: StatusServer | None = None
        self._serving = False
        self.logs: Logs | None = None
        self.notify = NotifyService(config.notifications, state_path, runner_mode=config.runner.mode)
        self._setup_control()

    # -- start-up and shutdown ----------------------------------------------------------------
    def preflight(self) -> None:
        """Every check that needs no write: links, owners, writable folders. StateError to refuse."""
        refuse_links(self.state_path)
        check_writable_folder(self.state_path.parent, "state")
        check_writable_folder(self.log_dir, "log")
        check_owner(self.state_path)

    def open(self, *, strict: bool = True) -> None:
        """Take the lock, load and check state, open logs. Raises StateError to refuse to start;
        a refusal writes nothing but the (empty) lock file. ``strict`` also refuses a state that
        cannot be traded on safely: books (cash, positions, counters) that differ from their
        rebuild from the trade log (an edited or damaged state.json), and a strategy removed from
        the config whose sleeve still holds positions (nothing would mark, settle or show
        them). False only for ``reconcile``, which reports the books."""
        self.preflight()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            loaded = load_state(self.state_path)
            checked = check_against_log(self.state_path, loaded or State())  # before a log line is written
            self._remove_leftovers()
            self.logs = Logs(self.log_dir, self.config.logging.max_bytes, self.config.logging.backups,
                             stdout=self._stdout_logs)
            self.state = self._sync_sleeves(loaded or State())
            if strict:  # before anything is written: the log's repair, the new state
                self._check_books(read_trade_log(self.state_path) + checked[0])
                self._check_removed(self.state)
            self.notify.on_open(self.state)  # what a killed predecessor's delivery confirmed
            appended, torn = repair_trade_log(self.state_path, self.state, checked)  # new sleeves hold no fills
            if appended or torn:
                self.logs.scheduler.warning(f"Trade log repaired: {appended} fill(s) appended from state"
                                            + (f", a torn last line ({torn} bytes) moved to "
                                               f"{self.state_path.stem}.trades.jsonl.torn" if torn else ""))
            if loaded is None:
                save_state(self.state_path, self.state)
                self.logs.scheduler.info(f"New state file {self.state_path} with {len(self.state.sleeves)} strategies")
            trades = read_trade_log(self.state_path)
            self._count_fills(trades)
            self.reconcile(trades)
        except BaseException:
            if self.logs is not None:  # a refused start leaves no log file open
                self.logs.close()
                self.logs = None
            self.lock.release()
            raise
        self._publish()

    def _check_books(self, trades: list[Trade]) -> None:
        """StateError when the state's books are not the trade log's: trading on them would
        trade on money and positions no fill made."""
        diffs = risk.reconcile(self.state, trades, self.config.risk.reconcile_tolerance_usd)
        if diffs:
            shown = "; ".join(map(str, diffs[:5])) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
            raise StateError(f"state file {self.state_path} disagrees with its trade log "
                             f"{trade_log_path(self.state_path)} ({len(diffs)} difference(s): {shown}): it was "
                             "edited or damaged, and trading on it would trade on cash or positions no fill made; "
                             f"nothing was changed (go-trader reconcile --config FILE lists them all); "
                             f"{restore_hint(self.state_path)}")

    def _check_removed(self, state: State) -> None:
        """StateError when a strategy no longer in the config holds open positions: the daemon
        would neither mark nor settle them (an option leg past its expiry), nor count them in
        the account or /status, so a short option's liability would be hidden."""
        configured = {s.id for s in self.config.strategies}
        held = [(sid, sl) for sid, sl in sorted(state.sleeves.items())
                if sid not in configured and (sl.positions or sl.option_positions)]
        if held:
            what = "; ".join(f"{sid}: " + ", ".join([*(f"{p.quantity:g} {sym}" for sym, p in sl.positions.items()),
                                                    *(f"{p.side} {p.quantity:g} {p.instrument}"
                                                      for p in sl.option_positions)]) for sid, sl in held)
            ids = ", ".join(sid for sid, _ in held)
            raise StateError(f"strategies removed from the config still hold open positions ({what}): go-trader "
                             "would neither mark nor settle them, nor count them in the account or /status; "
                             f"nothing was changed. Put {ids} back in the config, so that they are marked, "
                             "settled and closed (spot: go-trader trade --config FILE --strategy ID close; "
                             "option legs close by the strategy's exits or at expiry), and remove them once flat")

    def _remove_leftovers(self) -> None:
        """Cycle caches and temp files a killed predecessor left (only ever ours: we hold the lock)."""
        folder = self.state_path.parent
        for stale in folder.glob(f".{self.state_path.name}.cycle-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in folder.glob(f".{self.state_path.name}*.tmp"):
            stale.unlink(missing_ok=True)

    def _sync_sleeves(self, state: State) -> State:
        assert self.logs is not None
        for s in self.config.strategies:
            sleeve = state.sleeves.get(s.id)
            if sleeve is None:
                state.sleeves[s.id] = new_sleeve(s.id, s.type, s.capital)
            elif sleeve.type != s.type:
                raise StateError(f"strategy {s.id!r} is {s.type} in the config but {sleeve.type} in {self.state_path}; "
                                 "give the new strategy a new id")
            elif sleeve.initial_capital_usd != s.capital:
                self.logs.scheduler.warning(f"{s.id}: config capital {s.capital} differs from the state's "
                                            f"{sleeve.initial_capital_usd}; the state's sleeve is kept as it is")
        orphans = sorted(set(state.sleeves) - {s.id for s in self.config.strategies})
        if orphans:
            self.logs.scheduler.warning(f"State holds strategies no longer in the config (kept, not run): {', '.join(orphans)}")
        return state

    def bind_status_server(self) -> None:
        """Bind the status port, before anything is written: a port in use refuses the start."""
        token = os.environ.get(STATUS_TOKEN_ENV) or None
        host, port = self.config.status.host, self.config.status.port
        try:
            self.server = StatusServer(host, port, self.snapshot, token)
        except OSError as e:
            hint = ("another program (perhaps another go-trader: see the .endpoint file beside its state) "
                    "holds it; stop it, or set status.port (0 picks a free port)" if e.errno == errno.EADDRINUSE
                    else "check status.host and status.port")
            raise GoTraderError(f"cannot serve /status on {host}:{port}: {e.strerror}; {hint}") from e

    def start_status_server(self) -> None:
        if self.server is None:
            self.bind_status_server()
        assert self.server is not None
        token = os.environ.get(STATUS_TOKEN_ENV) or None
        self.server.start()
        self._serving = True
        write_atomic(endpoint_path(self.state_path), f"{self.server.url}\n".encode())
        assert self.logs is not None
        self.logs.scheduler.info(f"Status server on http://{self.config.status.host}:{self.server.port}/status"
                                 + (" (bearer token required)" if token else ""))

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()  # also right for a server bound but never started (a refused start)
            self.server = None
        if self._serving:  # only our own endpoint file: a refused start must not remove another's
            endpoint_path(self.state_path).unlink(missing_ok=True)
            self._serving = False
        if self.logs is not None:
            self.logs.close()
        self.lock.release()

    # -- scheduling ---------------------------------------------------------------------------
    def is_due(self, s: StrategyConfig, now: datetime) -> bool:
        last = self.state.sleeves[s.id].last_run_at
        if last is None:
            return True
        interval = self.config.interval_for(s)
        slack = _slack_s(interval)
        if (last - now).total_seconds() > slack:  # it "ran" in the future: the clock was stepped back
            assert self.logs is not None
            self.logs.scheduler.warning(f"{s.id} last ran at {utc_iso(last)}, after the clock's {utc_iso(now)}: the "
                                        "system clock was stepped back (an RTC ahead at boot, then NTP?); running "
                                        "it now instead of waiting for that time to come again")
            return True
        return (now - last).total_seconds() >= interval - slack

    def next_due_at(self) -> datetime:
        now = self.clock.now()
        times = []
        for s in self.config.strategies:
            last = self.state.sleeves[s.id].last_run_at
            interval = self.config.interval_for(s)
            stepped_back = last is not None and (last - now).total_seconds() > _slack_s(interval)  # as is_due
            times.append(now if last is None or stepped_back else last + timedelta(seconds=interval))
        return min(times)

    def min_interval_s(self) -> int:
        return min(self.config.interval_for(s) for s in self.config.strategies)

    # -- one cycle ----------------------------------------------------------------------------
    def _launcher(self) -> Launcher:
        if self._launcher_factory is not None:
            return self._launcher_factory()
        if self.config.runner.mode == "fork":
            try:
                return ForkLauncher()
            except (OSError, RuntimeError) as e:
                assert self.logs is not None
                self.logs.scheduler.warning(f"Fork server unavailable ({e}); starting checkers as plain processes")
        try:
            return SubprocessLauncher()
        except RuntimeError as e:  # its guardian could not start: a fault of this cycle, retried
            raise OSError(f"cannot start checker processes: {e}") from e

    def _context_env(self, now: datetime, cache_dir: Path) -> dict[str, str]:
        market = self.config.market.model_dump()
        if market["source"] == "files":
            market["root"] = str((self.config_path.resolve().parent / market["root"]).resolve())
        if market["source"] == "ccxt" and not market["markets_cache"]:  # markets survive between cycles
            market["markets_cache"] = str(self.state_path.with_name(
                f"{self.state_path.stem}.markets-{market['exchange']}.json"))
        return {"GO_TRADER_NOW_MS": str(int(now.timestamp() * 1000)), "GO_TRADER_MARKET": json.dumps(market),
                "GO_TRADER_CACHE_DIR": str(cache_dir), "GO_TRADER_CANDLES_LIMIT": str(self.config.runner.candles_limit)}

    @contextmanager
    def _workspace(self, now: datetime, label: str) -> Iterator[tuple[Launcher, dict[str, str]]]:
        """A launcher and the checkers' environment for one cycle, with its market cache folder."""
        cache_dir = Path(tempfile.mkdtemp(prefix=f".{self.state_path.name}.cycle-{label}-", dir=self.state_path.parent))
        launcher = self._launcher()
        try:
            yield launcher, self._context_env(now, cache_dir)
        finally:
            launcher.close()
            shutil.rmtree(cache_dir, ignore_errors=True)

    def _fetch_plan(self, due: list[StrategyConfig], now: datetime) -> FetchPlan:
        """What a cycle fetches: the due strategies' data, candles for every held position's stop
        checks and prices for its mark, and the options side (scheduler/options_cycle.py)."""
        holding = [s for s in self.config.strategies if s.timeframe and self.state.sleeves[s.id].positions]
        pairs = {(sym, s.timeframe) for s in [*due, *holding] if s.timeframe for sym in s.symbols}
        held = {sym for sl in self.state.sleeves.values() for sym in sl.positions}
        o_pairs, o_prices, unders, deliveries = options_cycle.fetch_needs(self.config, self.state, due, now)
        return FetchPlan(sorted(pairs | o_pairs), sorted(held | o_prices | {sym for s in due for sym in s.symbols}),
                         unders, deliveries)

    def _fetch(self, launcher: Launcher, plan: FetchPlan, env: dict[str, str], cycle: int, limit: int,
               stop: threading.Event | None = None) -> dict:
        """Run the fetch step (market.prefetch) once; {} when it failed (logged)."""
        assert self.logs is not None
        request = {"market": json.loads(env["GO_TRADER_MARKET"]), "now_ms": int(env["GO_TRADER_NOW_MS"]),
                   "pairs": plan.pairs, "price_symbols": plan.price_symbols, "cache_dir": env["GO_TRADER_CACHE_DIR"],
                   "limit": limit, "option_underlyings": plan.option_underlyings, "deliveries": plan.deliveries}
        m = self.config.market
        # the options exchange is a second source with its own retries
        sources = 2 if plan.option_underlyings else 1
        budget = sources * (getattr(m, "retry_budget_s", 0.0) + getattr(m, "timeout_s", 0.0) * 2)
        job = Job(PREFETCH_KEY, (), module="market.prefetch", stdin=json.dumps(request).encode(), env=env,
                  timeout_s=max(self.config.runner.timeout_s, budget + 30), max_output_bytes=16 * 1_048_576)
        # a stop request kills the fetch step at once: it holds no state worth a grace period
        result = run_jobs(launcher, [job], max_concurrency=1, stop=stop, grace_s=0.0)[0]
        self.counters.fetch_steps += 1
        try:
            if result.returncode != 0 or result.timed_out:
                raise ValueError(f"exit status {result.returncode}, timed out: {result.timed_out}; "
                                 f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}")
            doc = decode_one_document(result.stdout)
        except ValueError as e:
            self.counters.fetch_failures += 1
            reason = f"the fetch step failed ({e})"
            if stop is None or not stop.is_set():
                write_fetch_failed(Path(env["GO_TRADER_CACHE_DIR"]), reason)  # checkers fail at once, not refetch
            if stop is not None and stop.is_set():  # killed on purpose: the cycle is abandoned, no fault
                self.logs.scheduler.info("Fetch step stopped: a stop was requested")
            else:
                self.logs.scheduler.error(f"Fetch step failed ({e}); this cycle's checks fail without fetching again")
            self.logs.event("fetch_failed", cycle, None, reason=str(e))
            return {"source_failed": {"what": "fetch step", "error": reason, "error_class": "transient"}}
        failed = doc.get("source_failed")
        self.counters.fetch_failures += bool(failed)
        if failed:  # one line for the source: every pair below repeats the same error
            self.logs.scheduler.error(f"Fetch step: the market source failed at {failed.get('what')}: "
                                      f"{failed.get('error')}; this cycle's checks fail without fetching again")
        for key, info in doc.get("pairs", {}).items():
            if not info.get("ok") and not (failed and info.get("error") == failed.get("error")):
                self.logs.scheduler.warning(f"Fetch step: {key}: {info.get('error')}")
        for sym, info in (doc.get("price_errors") or {}).items():
            self.logs.scheduler.warning(f"Fetch step: price of {sym}: {info.get('error')}")
        for err in doc.get("errors", []):
            if not (failed and err.get("error") == failed.get("error")):
                self.logs.scheduler.warning(f"Fetch step: {err.get('what')}: {err.get('error')}")
        o_failed = doc.get("options_source_failed")
        if o_failed:
            self.logs.scheduler.error(f"Fetch step: the options source failed at {o_failed.get('what')}: "
                                      f"{o_failed.get('error')}; options checks fail without fetching again")
        for u, info in (doc.get("options") or {}).items():
            if not info.get("ok") and not (o_failed and info.get("error") == o_failed.get("error")):
                self.logs.scheduler.warning(f"Fetch step: option chain {u}: {info.get('error')}")
            elif info.get("ok") and not (info.get("dvol") or {}).get("ok", True):
                self.logs.scheduler.warning(f"Fetch step: DVOL {u}: {info['dvol'].get('error')}")
        for line in options_cycle.delivery_failures(doc):
            self.logs.scheduler.warning(f"Fetch step: {line}; the expired options wait for it")
        self.logs.event("fetch", cycle, None, source=doc.get("source"), pairs=len(doc.get("pairs", {})),
                        prices=doc.get("prices"), seconds=round(result.duration_s, 3))
        return doc

    def _step(self, new: State, intents: list[SpotIntent], fetched: dict, now: datetime, cycle: int,
              option_market: OptionMarket | None = None) -> list[Event]:
        """Call the engine with this daemon's rules and what the fetch step returned; orders
        fill at the fetched quotes (scheduler/execution.py), never at a candle's close."""
        intents, unquoted = execution.at_market(intents, fetched.get("quotes"))
        marks = {sym: Mark(p, now) for sym, p in fetched.get("prices", {}).items()}
        market_rules = {sym: MarketRules.from_json(r) for sym, r in fetched.get("rules", {}).items()}
        rules = {s.id: engine_rules.sleeve_rules(self.config, s) for s in self.config.strategies}
        om = option_market or OptionMarket()
        deliveries, methods = options_cycle.delivery_prices(fetched)
        events = step(new, intents, marks, rules, market_rules, now, cycle, bars=_bars(fetched),
                      account_rules=engine_rules.account_rules(self.config), option_intents=om.intents,
                      option_quotes=om.quotes, index_prices=om.index, delivery_prices=deliveries,
                      option_rules={s.id: engine_rules.option_rules(self.config, s) for s in self.config.strategies
                                    if s.type == "options"},
                      account_option_limits=engine_rules.account_option_limits(self.config))
        execution.name_no_quotes(events, unquoted)
        for e in events:  # say how each settlement's delivery price was had
            option = e.data.get("option") if e.kind == "fill" else None
            if option and e.data.get("delivery_price") is not None:
                expiry = round(datetime.fromisoformat(option["expiry"]).timestamp() * 1000)
                e.data["delivery_method"] = methods.get((option["underlying"], expiry), "unknown")
        return events

    def _check_job(self, s: StrategyConfig, sleeve: Sleeve, env: dict[str, str]) -> Job:
        args = list(s.args)
        stdin = b""
        if s.type == "spot" and s.params:
            args += ["--params", json.dumps(s.params)]
        if s.type == "options":
            if s.params:
                args += ["--params", json.dumps(s.params)]
            stdin = json.dumps(options_cycle.checker_stdin(s, sleeve)).encode()
        return Job(s.id, tuple(args), script=self.checkers_dir / s.script, stdin=stdin, env=env,
                   timeout_s=self.config.runner.timeout_s, max_output_bytes=self.config.runner.max_output_bytes)

    def run_cycle(self, *, force: bool = False, stop: threading.Event | None = None) -> CycleReport | None:
        """Run every due strategy once (all of them with ``force``); None when none was due."""
        assert self.logs is not None
        if self.halted:
            self._retry_save()
            if self.halted:
                return None
        if self._log_behind:  # the trade log lacks committed fills: catch it up before trading on
            try:
                repair_trade_log(self.state_path, self.state)
                self._log_behind = False
            except StateError as e:
                self._set_fault(f"the trade log is behind the state and cannot be written: {e}")
                return None
        now = self.clock.now()
        due = [s for s in self.config.strategies if force or self.is_due(s, now)]
        if not due:
            return None
        cycle = self.state.cycle_count + 1
        started, cpu0 = time.monotonic(), _cpu_seconds()
        stop = stop or threading.Event()
        with self._workspace(now, str(cycle)) as (launcher, env):
            plan = self._fetch_plan(due, now)
            fetched = self._fetch(launcher, plan, env, cycle, self.config.runner.candles_limit, stop)
            if stop.is_set():  # asked to stop during the fetch step: nothing ran, nothing to commit
                self.logs.scheduler.info(f"Cycle {cycle} abandoned: stop requested during the fetch step")
                return None
            jobs = [self._check_job(s, self.state.sleeves[s.id], env) for s in due]
            results = run_jobs(launcher, jobs, max_concurrency=self.config.runner.max_concurrency, stop=stop,
                               grace_s=self.config.runner.shutdown_grace_s)
            new = self.state.model_copy(deep=True)
            intents, option_intents, failed_ids = self._judge_all(new, due, results, now, cycle)
            # the chains are read before the cycle's cache folder goes
            quotes, index = options_cycle.read_marks(Path(env["GO_TRADER_CACHE_DIR"]), plan.option_underlyings,
                                                     options_cycle.wanted_instruments(new, option_intents))
        events = self._step(new, intents, fetched, now, cycle, OptionMarket(option_intents, quotes, index))
        self._describe_outcomes(new, events)
        new.cycle_count, new.last_cycle_at = cycle, now
        self.prices = {**self.prices, **fetched.get("prices", {})}
        self._commit(new, events, cycle)
        duration = time.monotonic() - started
        total = self._total_value()
        not_run = sum(r.cancelled for r in results)
        report = CycleReport(cycle, len(due) - not_run, len(failed_ids), sum(e.kind == "fill" for e in events),
                             duration, total, events, _cpu_seconds() - cpu0, failed_ids, not_run)
        self._all_failed = (f"every check of cycle {cycle} failed ({report.checked} of {report.checked}); see the "
                            "logs" if failed_ids and len(failed_ids) == report.checked else None)
        self._log_cycle(report, events)
        self._last_cycle_mono = time.monotonic()
        self.counters.cycles += 1
        self.counters.last_cycle_seconds, self.counters.last_cycle_cpu_seconds = duration, report.cpu_s
        self._record_history(now, cycle)
        self._publish()
        return report

    def _record_history(self, now: datetime, cycle: int) -> None:
        """One row of equity per cycle in the history file (a chart's data, not a ledger: a
        failure is logged, never a reason to stop trading)."""
        assert self.logs is not None
        ids = [s.id for s in self.config.strategies]
        strategies = {sid: sleeve_equity(self.state.sleeves[sid]) for sid in ids}
        try:
            history.append(history_path(self.state_path), history.row(now, cycle, self._total_value(), strategies),
                           self.config.history.max_bytes)
        except OSError as e:
            self.logs.scheduler.error(f"could not append to the equity history {history_path(self.state_path)}: {e}")

    def _judge_all(self, state: State, due: list[StrategyConfig], results: list[JobResult], now: datetime,
                   cycle: int) -> tuple[list[SpotIntent], list[OptionIntent], list[str]]:
        assert self.logs is not None
        intents: list[SpotIntent] = []
        option_intents: list[OptionIntent] = []
        failed: list[str] = []
        for s, result in zip(due, results, strict=True):
            log = self.logs.strategy(s.id)
            sleeve = state.sleeves[s.id]
            if result.cancelled:  # not a failure: its last check and run time stay as they were
                log.info("Not run: the scheduler is shutting down (it runs at the next start)")
                continue
            for line in result.stderr.decode("utf-8", "replace").splitlines()[-20:]:
                log.info(f"checker: {line[:500]}")
            if s.type == "spot":
                verdict = judge(result, SpotSignal, {"strategy": s.args[0], "symbol": s.args[1], "timeframe": s.args[2]},
                                self.config.runner.timeout_s, self.config.runner.max_output_bytes)
            else:
                verdict = judge(result, OptionsSignal, {"strategy": s.args[0], "underlying": s.args[1]},
                                self.config.runner.timeout_s, self.config.runner.max_output_bytes)
            sleeve.last_run_at = now  # ran (even if it failed): not again until its next interval
            if isinstance(verdict, CheckFailure):
                failed.append(s.id)
                self.counters.check_failures[(s.id, verdict.error_class)] += 1
                sleeve.last_check = LastCheck(at=now, ok=False, error=verdict.reason, error_class=verdict.error_class)
                log.error(f"Check failed ({verdict.error_class}): {verdict.reason} | no trade this cycle")
                self.logs.event("check_failed", cycle, s.id, reason=verdict.reason, error_class=verdict.error_class,
                                seconds=round(result.duration_s, 3))
                continue
            if isinstance(verdict, SpotSignal):
                sleeve.last_check = LastCheck(at=now, ok=True, signal=verdict.signal, price=verdict.price,
                                              candle_at=verdict.timestamp, indicators=verdict.indicators)
                word = {1: "BUY", -1: "SELL", 0: "HOLD"}[verdict.signal]
                log.info(f"Signal: {word} | {verdict.symbol} @ ${verdict.price:.2f}")
                self.logs.event("signal", cycle, s.id, signal=verdict.signal, symbol=verdict.symbol,
                                price=verdict.price, candle_at=utc_iso(verdict.timestamp), indicators=verdict.indicators)
                intents.append(SpotIntent(s.id, verdict.symbol, verdict.signal, verdict.price, verdict.timestamp,
                                          verdict.stop_price))
            else:
                assert isinstance(verdict, OptionsSignal)
                legs = "; ".join(f"{a.action} {quantity(a.quantity)} {a.instrument} @ {a.premium:.4f} ({a.pricing})"
                                 for a in verdict.actions)
                outcome = verdict.skip_reason or (f"proposed {legs}; score {verdict.actions[0].score}"
                                                  if verdict.actions else "hold")
                indicators = {**verdict.indicators, "iv_rank": verdict.iv_rank, "iv_rank_source": verdict.iv_rank_source}
                sleeve.last_check = LastCheck(at=now, ok=True, signal=verdict.signal, price=verdict.spot_price,
                                              candle_at=verdict.timestamp, outcome=outcome, indicators=indicators)
                log.info(f"Signal: {'HOLD' if not verdict.actions else 'ACTIONS'} | {verdict.underlying} | {outcome}")
                self.logs.event("options_signal", cycle, s.id, signal=verdict.signal,
                                actions=[a.model_dump(mode="json") for a in verdict.actions],
                                skip_reason=verdict.skip_reason, iv_rank=verdict.iv_rank,
                                iv_rank_source=verdict.iv_rank_source)
                oi = options_cycle.intent(s.id, verdict.underlying, verdict)
                if oi is not None:
                    option_intents.append(oi)
        return intents, option_intents, failed

    def _describe_outcomes(self, state: State, events: list[Event]) -> None:
        """Each checked strategy's outcome: what it traded (every fill), or why not."""
        said: dict[str, list[str]] = {}
        for e in events:
            sleeve = state.sleeves.get(e.strategy_id)  # account-scope events belong to no sleeve
            check = sleeve.last_check if sleeve is not None else None
            if check is None or e.kind not in ("fill", "rejected", "hold"):
                continue
            if e.kind == "fill":
                text = f"{e.data['side']} {quantity(e.data['quantity'])} {e.data['symbol']} @ {price(e.data['fill_price'])}"
                if e.data.get("reason") not in (None, "signal"):
                    text += f" ({e.data['reason']})"
            elif e.kind == "rejected":
                text = f"rejected {e.data.get('code')}: {e.data.get('detail')}"
            elif e.data.get("note"):
                text = e.data["note"]
            else:
                continue
            said.setdefault(e.strategy_id, []).append(text)
            check.outcome = "; ".join(said[e.strategy_id])

    # -- committing ---------------------------------------------------------------------------
    def _commit(self, new: State, events: list[Event], cycle: int, then: Callable[[], None] | None = None) -> None:
        """Save ``new`` and make it the state; log its events, then run ``then`` (what is logged
        of a command). A failed save halts with ``new`` kept unsaved: its events and ``then`` wait
        for the save that commits it (``_retry_save``), so what took effect is always logged."""
        assert self.logs is not None
        self.notify.before_save(self.state, new, events, self.clock.now())  # saved with what it tells of
        try:
            save_state(self.state_path, new)
        except StateSaveError as e:
            self._unsaved_work.append((events, cycle, then))
            self._halt(str(e), new)
            raise
        first_new_seq = self.state.next_trade_seq  # fills the previous committed state did not hold
        self.state = new
        fills = [t for s in new.sleeves.values() for t in s.trades if t.seq >= first_new_seq]
        self._count_fills(fills)
        try:
            if self._log_behind:  # never append past a gap: repair appends every missing fill in order
                repair_trade_log(self.state_path, self.state)
            else:
                append_trades(self.state_path, sorted(fills, key=lambda t: t.seq))
            self._log_behind = False
        except StateSaveError as e:  # the state holds the fills; trading waits until the log has them too
            self._log_behind = True
            self.logs.scheduler.error(f"{e}; the fills are safe in {self.state_path}; no new trades until the "
                                      "trade log has them (retried every cycle)")
        for e in events:
            self._log_event(e, cycle)
        if then is not None:
            then()
        self._publish()

    def _halt(self, reason: str, unsaved: State) -> None:
        assert self.logs is not None
        self.halted = f"state could not be saved: {reason}; trading is stopped until a save succeeds"
        self._unsaved = unsaved
        self.notify.on_halt(unsaved, reason, self.clock.now())  # persisted with the first save that works
        self.logs.scheduler.critical(f"TRADING STOPPED: {self.halted}")
        self.logs.event("halted", unsaved.cycle_count, None, reason=self.halted)
        self.notifier.status(f"HALTED: {reason}"[:200])
        self._publish()

    def _retry_save(self) -> None:
        assert self.logs is not None and self._unsaved is not None
        try:
            save_state(self.state_path, self._unsaved)
        except StateSaveError as e:
            self.logs.scheduler.critical(f"TRADING STILL STOPPED: {e}; retrying in at most {RETRY_MAX_S:.0f} s")
            return
        first_new_seq = self.state.next_trade_seq
        self.state, self._unsaved, self.halted = self._unsaved, None, None
        self._count_fills([t for s in self.state.sleeves.values() for t in s.trades if t.seq >= first_new_seq])
        repair_trade_log(self.state_path, self.state)
        self.logs.scheduler.warning("State saved again; trading resumes")
        work, self._unsaved_work = self._unsaved_work, []
        for events, cycle, then in work:  # committed only now: logged only now
            for e in events:
                self._log_event(e, cycle)
            if then is not None:
                then()
        self.notify.on_resume(self)
        self._publish()

    def _total_value(self) -> float | None:
        return account_equity(self.state, [s.id for s in self.config.strategies])

    def _count_fills(self, fills: Iterable[Trade]) -> None:
        for t in fills:
            self.counters.trades[(t.strategy_id, t.side, t.reason)] += 1

    def _publish(self) -> None:
        doc = build_status(self.state, self.config, self.prices, started_at=self.started_at, halted=self.halted,
                           controls_enabled=self.server is not None and bool(os.environ.get(STATUS_TOKEN_ENV)),
                           notifications=self.notify.status(self))
        self.snapshot.status_body = json.dumps(doc, separators=(",", ":")).encode()
        self.snapshot.metrics_body = metrics.render(doc, self.counters)  # go_trader_up: per scrape
        self.snapshot.health = self._health
        self.snapshot.control = self.submit
        self.snapshot.history = self._history_answer

    def _history_answer(self, since_ms: int | None, strategy: str | None) -> bytes:
        """The /history body (runs on the HTTP thread: reads only the history file)."""
        points = history.read(history_path(self.state_path), since_ms=since_ms, strategy=strategy)
        return json.dumps({"points": points, "max_points": history.MAX_POINTS}, separators=(",", ":")).encode()

    def _health(self) -> tuple[int, dict]:
        if self.halted:
            return 503, {"status": "halted", "reason": self.halted}
        if self.fault:
            return 503, {"status": "degraded", "reason": self.fault}
        if self._all_failed:
            return 503, {"status": "degraded", "reason": self._all_failed}
        age = time.monotonic() - self._last_cycle_mono
        limit = 3 * self.min_interval_s()
        if age > limit:
            return 503, {"status": "stale", "reason": f"no cycle for {age:.0f}s (more than 3 intervals, {limit}s)"}
        return 200, {"status": "ok"}

    # -- logging ------------------------------------------------------------------------------
    def _log_event(self, e: Event, cycle: int) -> None:
        assert self.logs is not None
        log = self.logs.scheduler if e.strategy_id == risk.ACCOUNT else self.logs.strategy(e.strategy_id)
        d = e.data
        if e.kind == "fill":
            sleeve = self.state.sleeves[e.strategy_id]
            pnl = f" | P&L ${d['realized_pnl_usd']:+.2f}" if d.get("realized_pnl_usd") is not None else ""
            capped = f" [capped by {d['capped_by']}]" if d.get("capped_by") else ""
            o = d.get("option")
            if o:  # premium in coin as Deribit quotes it, USD per contract at the index
                where = (f" at the delivery price ${d['delivery_price']:.2f} ({d.get('delivery_method', 'unknown')})"
                         if d.get("delivery_price") is not None else f" from the {o['price_source']}")
                log.info(f"{d['side'].upper()} {quantity(d['quantity'])} {d['symbol']} ({o['effect']} {o['position_side']}) @ "
                         f"{o['premium_coin']:.4f} {o['underlying']} = ${d['fill_price']:.2f}/contract{where} (fee "
                         f"${d['fee_usd']:.2f}, {d['reason']}){pnl} | cash ${sleeve.cash_usd:.2f}")
            else:
                log.info(f"{d['side'].upper()} {quantity(d['quantity'])} {d['symbol']} @ {price(d['fill_price'])} "
                         f"(quote {price(d['quote_price'])}, fee ${d['fee_usd']:.2f}, {d['reason']}){pnl}{capped} | "
                         f"cash ${sleeve.cash_usd:.2f}")
        elif e.kind == "rejected":
            log.warning(f"Order rejected [{d.get('code')}]: {d.get('detail')}")
        elif e.kind == "block":
            scope = "ALL entries" if e.strategy_id == risk.ACCOUNT else "Entries"
            log.warning(f"{scope} BLOCKED [{d['code']}] until {d['until'] or 'a manual reset'}: {d['detail']}")
        elif e.kind == "unblock":
            log.info(f"Block {d['code']} expired; entries allowed again")
        if e.kind != "hold":
            self.logs.event(e.kind, cycle, e.strategy_id, **{k: v for k, v in e.as_json().items()
                                                             if k not in ("kind", "strategy", "strategy_id", "cycle")})

    def _log_cycle(self, r: CycleReport, events: list[Event]) -> None:
        assert self.logs is not None
        blocked = [f"{sid} ({risk.blocks_summary(sl.risk.blocks)})"
                   for sid, sl in self.state.sleeves.items() if sl.risk.blocks]
        if self.state.account.blocks:
            blocked.insert(0, f"ALL ({risk.blocks_summary(self.state.account.blocks)})")
        line = (f"Cycle {r.cycle} complete ({r.duration_s:.1f}s) | {r.checked} strategies checked | {r.fills} trades | "
                f"Total value: {_fmt_usd(r.total_value_usd)}")
        if r.failed:
            line += f" | {r.failed} failed: {', '.join(r.failed_ids)}"
        if r.not_run:
            line += f" | {r.not_run} not run (shutting down)"
        if blocked:
            line += f" | blocked: {', '.join(blocked)}"
        self.logs.scheduler.info(line)
        self.logs.event("cycle", r.cycle, None, checked=r.checked, failed=r.failed, not_run=r.not_run, fills=r.fills,
                        seconds=round(r.duration_s, 3), cpu_s=round(r.cpu_s, 3), total_value_usd=r.total_value_usd,
                        blocked=blocked, failed_ids=r.failed_ids)
        self.notifier.status(line[:200])

    # -- the loop -----------------------------------------------------------------------------
    def _set_fault(self, reason: str) -> None:
        assert self.logs is not None
        if reason != self.fault:
            self.logs.event("fault", self.state.cycle_count, None, reason=reason)
        self.fault = reason
        self.logs.scheduler.error(f"CYCLE FAILED: {reason}")
        self._publish()

    def _run_guarded(self, stop: threading.Event) -> None:
        """One cycle; a failure of the shell around it (the state folder turned read-only, no
        descriptors left) marks the daemon degraded and is retried, never a crash."""
        assert self.logs is not None
        try:
            self.run_cycle(stop=stop)
        except StateSaveError:
            return  # halted: logged loudly; the loop retries the save with backoff
        except OSError as e:
            self._set_fault(f"a cycle could not run: {e}; retrying")
            return
        except Exception as e:  # noqa: BLE001 - a bug must not crash-loop an unattended daemon
            # nothing of the failed cycle was saved; trading waits (/health 503) and the cycle is
            # retried with backoff, so the bug is loud (traceback in the log) but never a restart loop
            self.logs.scheduler.critical(f"INTERNAL ERROR in a cycle ({type(e).__name__}: {e}); please report it:\n"
                                         + traceback.format_exc().replace("\n", " | "))
            self._set_fault(f"internal error in a cycle: {type(e).__name__}: {e}; retrying")
            return
        if self.fault:
            self.logs.scheduler.warning(f"Cycles run again (after: {self.fault})")
            self.fault = None
            self._publish()

    def serve_forever(self, stop: threading.Event) -> None:
        """Run cycles as strategies come due until ``stop`` is set; then save and return."""
        assert self.logs is not None
        self.notifier.ready(f"{len(self.config.strategies)} strategies, status on port "
                            f"{self.server.port if self.server else 'off'}")
        self.logs.scheduler.info(f"go-trader started: {len(self.config.strategies)} strategies, "
                                 f"market {self.config.market.source}, state {self.state_path}")
        self.notify.start(self, f"go-trader started: {len(self.config.strategies)} strategies, market "
                                f"{self.config.market.source}, cycle {self.state.cycle_count}")
        beat = min(5.0, (self.notifier.watchdog_s or 10.0) / 2)
        while not stop.is_set():
            self.notifier.watchdog()
            self.process_commands()
            self.notify.tick(self)
            self._run_guarded(stop)
            if self._reconcile_due():
                self.reconcile()
            release_free_memory()  # idle at what it holds, not at its busiest cycle's size
            wait = (self.next_due_at() - self.clock.now()).total_seconds()
            if self.halted or self.fault:  # retry after 1, 2, 4, ... s: never a tight loop
                self._retry_s = min(RETRY_MAX_S, max(1.0, self._retry_s * 2))
                wait = self._retry_s
            else:
                self._retry_s = 0.0
            while wait > 0 and not stop.is_set():
                self.notifier.watchdog()
                self.process_commands()
                self.notify.tick(self)
                chunk = min(beat, wait)
                self._wake.clear()
                if self.clock.sleep(chunk, self._wake) and not self._commands.qsize():
                    break  # woken by a stop request
                wait -= chunk
        self.notifier.stopping()
        if self.halted:
            self._retry_save()
        self.notify.stop(self, "go-trader stopped" + (" WITHOUT saving the last cycle: " + self.halted
                                                      if self.halted else f" at cycle {self.state.cycle_count}"))
        self.logs.scheduler.info("go-trader stopped; state saved" if not self.halted else
                                 "go-trader stopped WITHOUT saving the last cycle: " + self.halted)


def _bars(prefetch: dict) -> dict[tuple[str, str], list[Bar]]:
    """The fetch step's recent closed candles per (symbol, timeframe), for stop checks."""
    out: dict[tuple[str, str], list[Bar]] = {}
    for key, info in prefetch.get("pairs", {}).items():
        if info.get("ok") and info.get("recent"):
            symbol, tf = key.rsplit(" ", 1)
            out[(symbol, tf)] = [Bar(int(t), o, h, lo, c) for t, o, h, lo, c in info["recent"]]
    return out


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _slack_s(interval_s: float) -> float:
    """How early a run still counts as on time, and how far in the future a last run may lie
    before the clock is taken to have been stepped back."""
    return min(5.0, interval_s * 0.01)


def install_signal_handlers(stop: threading.Event, wake: Callable[[], None] | None = None) -> None:
    """SIGTERM/SIGINT only set ``stop`` (and wake the loop): nothing is interrupted mid-write."""
    def handler(signum: int, frame: object) -> None:
        stop.set()
        if wake is not None:
            wake()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
