"""The daemon's side of notifications (README: Notifications and Telegram).

The main loop calls ``tick`` every few seconds. It folds what a finished delivery or
poll job reported into the state (and saves at once when something was delivered, so
acknowledgements are durable), then starts the next job in a worker thread when a
destination has messages and its backoff allows. The worker only runs the job (a
runner Job, ``python -m scheduler.notify.deliver``); every change of the state happens
here, on the main loop, which stays the only writer. Jobs are forked from a warm zygote
kept for the daemon's whole run, with the delivery module (and so urllib) imported once
(``runner.mode: "subprocess"``: a fresh python per job): a job then costs a fork, not an
interpreter start; the zygote is its own process, so the daemon never imports urllib.

Delivery is exactly once per destination as far as the channel allows: the delivery
process journals each confirmed part before the next send (see scheduler.notify.deliver),
the journal is folded into the state and removed only after that state was saved, and a
start folds what a killed predecessor's job journaled.

The halt case: a halt is a failed save, so its message cannot be persisted then. It is
queued in the unsaved state (which the daemon keeps and retries to save), delivered from
memory meanwhile, and persisted with the first save that succeeds; if the process dies
before that, the message is gone with the unsaved cycle it tells of.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler.config import NotificationsConfig
from scheduler.engine.errors import StateSaveError
from scheduler.engine.models import State
from scheduler.engine.step import Event
from scheduler.notify import commands, messages, outbox
from scheduler.notify.telegram_control import handle
from scheduler.runner import ForkLauncher, Job, Launcher, SubprocessLauncher, run_jobs
from scheduler.state_store import notify_journal_path, save_state

if TYPE_CHECKING:
    from scheduler.daemon import Daemon

BACKOFF_MAX_S = 300.0
#: one delivery job sends for at most this long, then reports (the rest waits for the next)
JOB_DEADLINE_S = 20.0
#: messages handed to one job per destination (stdin stays small; the rest go next time)
JOB_MESSAGES = 50
#: on stop, how long the last delivery may take
STOP_FLUSH_S = 5.0
#: least time from one getUpdates poll's start to the next (a poll_timeout_s of 0 must not spin)
POLL_MIN_INTERVAL_S = 2.0
#: one poll job long-polls for up to this long while no command comes (a process start per poll
#: would cost more CPU than the cycles of a slow config)
POLL_SESSION_S = 300.0
#: what the delivery and poll jobs import, once, in their warm zygote (scheduler.zygote --preload)
JOB_PRELOAD = ("scheduler.notify.deliver",)
#: how often a running poll job's worker looks at its stop event: a stop kills it within this
POLL_STOP_CHECK_S = 1.0


def journal_path(state_path: Path) -> Path:
    return notify_journal_path(state_path)


@dataclass
class DestinationRuntime:
    """What a destination's deliveries did in this process (not saved: a restart retries at once)."""

    errors: int = 0
    #: the failures in a row that set the backoff: not the rate limits (429), which say their wait
    backoff_errors: int = 0
    failed_total: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_attempt_mono: float = 0.0
    last_sent_mono: float | None = None


@dataclass
class _Worker:
    thread: threading.Thread
    stop: threading.Event
    result: dict[str, Any] = field(default_factory=dict)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The confirmed parts a delivery journaled: {"d", "id", "chars", "of"} (a torn last line,
    from a kill, is left out). A line of the older form counted parts: a whole message is taken
    as delivered, a part of one is left out (that message is sent again whole: nothing cut short)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in raw.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(d, dict) and isinstance(d.get("d"), str) and isinstance(d.get("id"), int)
                and isinstance(d.get("of"), int)):
            continue
        if isinstance(d.get("chars"), int):
            out.append(d)
        elif isinstance(d.get("parts"), int) and d["parts"] >= d["of"]:
            out.append({**d, "chars": 0, "of": 0})  # the older form's whole message
    return out


def apply_journal(state: State, entries: list[dict[str, Any]], destinations: Mapping[str, bool]) -> bool:
    """Fold journal ``entries`` into ``state``'s cursors (``destinations``: name -> takes
    broadcasts; an entry for a destination no longer configured is left out)."""
    changed = False
    for e in entries:
        if e["d"] not in destinations:
            continue
        broadcast = destinations[e["d"]]
        if e["chars"] >= e["of"]:
            changed |= outbox.acknowledge(state, e["d"], broadcast, e["id"])
        else:
            changed |= outbox.acknowledge(state, e["d"], broadcast, None, e["id"], e["chars"])
    return changed


class NotifyService:
    def __init__(self, config: NotificationsConfig, state_path: Path, env: Mapping[str, str] | None = None,
                 launcher_factory: Callable[[], Launcher] | None = None, runner_mode: str = "fork") -> None:
        self.config = config
        self.enabled = config.enabled
        self.env = os.environ if env is None else env
        self.journal = journal_path(state_path)
        self._launcher_factory = launcher_factory
        self._runner_mode = runner_mode
        tg = config.telegram
        self.destinations = outbox.destinations_of(tg.chat_ids if tg else [],
                                                   tg.commands.chat_ids if tg and tg.commands else [],
                                                   config.webhook is not None)
        self.runtime = {name: DestinationRuntime() for name in self.destinations}
        self.poll_runtime = DestinationRuntime()
        self._deliver: _Worker | None = None
        self._poll: _Worker | None = None
        #: this bot's username as the Bot API's getMe said it (ahead of the config's bot_username)
        self.bot_username: str | None = None
        self._stopping = False
        #: one guardian per kind of job, kept between jobs (a fresh one per job costs a python start)
        self._launchers: dict[str, Launcher] = {}
        #: kind -> why its last guardian was dropped (said when the next one starts)
        self._broken: dict[str, str] = {}

    # -- queueing (called with the state about to be saved) ------------------------------------
    def _bound(self, state: State) -> int:
        outbox.prune(state, self.destinations)
        return outbox.trim(state, self.config.max_messages, self.destinations)

    def enqueue(self, state: State, kind: str, text: str, at: datetime, to: str | None = None) -> None:
        if not self.enabled:
            return
        outbox.enqueue(state, kind, text, at, to)
        self._bound(state)

    def before_save(self, prev: State, new: State, events: list[Event], now: datetime) -> None:
        """A commit's message goes into ``new`` before it is saved (the commit protocol)."""
        if not self.enabled:
            return
        text = messages.commit_message(prev, new, events, self.config.failure_streak)
        if text:
            self.enqueue(new, "cycle" if new.cycle_count != prev.cycle_count else "control", text, now)

    def on_open(self, state: State) -> None:
        """At start-up: what a killed predecessor's delivery confirmed (saved with the start message)."""
        apply_journal(state, read_journal(self.journal), self.destinations)
        if self.enabled and state.notify.last_summary_at is None:
            state.notify.last_summary_at = state.last_cycle_at

    def start(self, daemon: Daemon, text: str) -> None:
        if not self.enabled:
            return
        self.enqueue(daemon.state, "start", text, daemon.clock.now())
        self._save(daemon)

    def on_halt(self, unsaved: State, reason: str, now: datetime) -> None:
        self.enqueue(unsaved, "halt", f"go-trader TRADING STOPPED: {reason}", now)

    def on_resume(self, daemon: Daemon) -> None:
        if self.enabled:
            self.enqueue(daemon.state, "resume", "go-trader: the state saves again; trading resumes",
                         daemon.clock.now())
            self._save(daemon)

    def stop(self, daemon: Daemon, text: str) -> None:
        """The stop message, and a last delivery bounded by STOP_FLUSH_S."""
        self._stopping = True
        if self._poll is not None:
            self._poll.stop.set()
        if not self.enabled:
            return
        self.enqueue(self._target(daemon), "stop", text, daemon.clock.now())
        self._save(daemon)
        deadline = time.monotonic() + STOP_FLUSH_S
        for worker in (self._deliver, self._poll):
            if worker is not None:
                worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._fold(daemon)
        if self._deliver is None and time.monotonic() < deadline - 1:
            self._start_delivery(daemon, deadline_s=max(0.5, deadline - time.monotonic() - 1))
            if self._deliver is not None:
                self._deliver.thread.join(max(0.0, deadline - time.monotonic() + 1))
        self._fold(daemon)
        self.close()

    def close(self) -> None:
        """Stop the guardians (and so any job still running: the journal keeps what it confirmed)."""
        while self._launchers:  # a worker may still drop a broken one meanwhile
            kind, launcher = self._launchers.popitem()
            launcher.close()

    # -- the main loop's part ------------------------------------------------------------------
    def tick(self, daemon: Daemon) -> None:
        if not self.enabled:
            return
        self._fold(daemon)
        self._summary(daemon)
        if self._deliver is None and self._due(daemon):
            self._start_delivery(daemon, JOB_DEADLINE_S)
        tg = self.config.telegram
        if tg and tg.commands and self._poll is None and time.monotonic() >= self.poll_runtime.next_attempt_mono:
            self._start_poll(daemon)

    def _target(self, daemon: Daemon) -> State:
        """The newest state: the unsaved one while halted (its messages are delivered meanwhile)."""
        return daemon._unsaved if daemon._unsaved is not None else daemon.state

    def _save(self, daemon: Daemon) -> bool:
        """Save the committed state (notification bookkeeping only changed); not while halted."""
        if daemon.halted:
            return False
        try:
            save_state(daemon.state_path, daemon.state)
        except StateSaveError as e:
            assert daemon.logs is not None
            daemon.logs.scheduler.error(f"Notifications: could not save the delivery record ({e}); it is saved "
                                        "with the next commit (a crash before then may send those messages again)")
            return False
        if self._deliver is None:  # the journal is in the saved state now
            self.journal.unlink(missing_ok=True)
        return True

    def _summary(self, daemon: Daemon) -> None:
        hours = self.config.summary_interval_hours
        state, now = self._target(daemon), daemon.clock.now()
        last = state.notify.last_summary_at
        if not hours or (last is not None and now - last < timedelta(hours=hours)):
            return
        if last is not None:
            ids = [s.id for s in daemon.config.strategies]
            self.enqueue(state, "summary", messages.summary_message(state, ids, now), now)
        state.notify.last_summary_at = now
        self._save(daemon)

    def _due(self, daemon: Daemon) -> bool:
        state, now = self._target(daemon), time.monotonic()
        return any(now >= self.runtime[d].next_attempt_mono and outbox.pending(state, d, b)
                   for d, b in self.destinations.items())

    def _dest_request(self, name: str, broadcast: bool, state: State) -> dict[str, Any] | None:
        rt, now = self.runtime[name], time.monotonic()
        todo = outbox.pending(state, name, broadcast)
        if not todo or now < rt.next_attempt_mono:
            return None
        base: dict[str, Any] = {"name": name, "chars_sent": outbox.cursor(state, name).chars_sent,
                                "messages": [{"id": m.id, "text": m.text} for m in todo[:JOB_MESSAGES]]}
        if name == "webhook":
            wh = self.config.webhook
            assert wh is not None
            url = self.env.get(wh.url_env, "")
            if not url:
                return self._missing(name, wh.url_env)
            base.update(kind="webhook", url=url, max_units=wh.max_chars, interval_s=wh.interval_s)
        else:
            tg = self.config.telegram
            assert tg is not None
            token = self.env.get(tg.token_env, "").strip()
            if not token:
                return self._missing(name, tg.token_env)
            chat = int(name.split(":", 1)[1])
            base.update(kind="telegram", api_base=tg.api_base, token=token, chat_id=chat, max_units=4096,
                        interval_s=tg.group_interval_s if chat < 0 else tg.chat_interval_s)
        last = rt.last_sent_mono
        base["wait_s"] = 0.0 if last is None else max(0.0, last + base["interval_s"] - now)
        return base

    def _missing(self, name: str, var: str) -> None:
        self._failed(name, f"the environment variable {var} is not set; messages wait until it is", None)
        return None

    def _start_delivery(self, daemon: Daemon, deadline_s: float) -> None:
        state = self._target(daemon)
        dests = [r for d, b in self.destinations.items() if (r := self._dest_request(d, b, state))]
        if not dests:
            return
        request = {"mode": "deliver", "journal": str(self.journal), "timeout_s": self.config.timeout_s,
                   "deadline_s": deadline_s, "destinations": dests}
        self._deliver = self._run(daemon, "deliver", request, deadline_s + self.config.timeout_s + 10)

    def _start_poll(self, daemon: Daemon) -> None:
        tg = self.config.telegram
        assert tg is not None and tg.commands is not None
        token = self.env.get(tg.token_env, "").strip()
        if not token:
            self.poll_runtime.next_attempt_mono = time.monotonic() + BACKOFF_MAX_S
            return
        request = {"mode": "poll", "timeout_s": self.config.timeout_s, "session_s": POLL_SESSION_S,
                   "telegram": {"api_base": tg.api_base, "token": token, "offset": self._target(daemon).notify.telegram_offset,
                                "poll_timeout_s": tg.commands.poll_timeout_s}}
        self.poll_runtime.next_attempt_mono = time.monotonic() + POLL_MIN_INTERVAL_S
        self._poll = self._run(daemon, "poll", request,
                               POLL_SESSION_S + tg.commands.poll_timeout_s + self.config.timeout_s + 10,
                               stop_check_s=POLL_STOP_CHECK_S)

    def _new_launcher(self, daemon: Daemon) -> Launcher:
        if self._launcher_factory is not None:
            return self._launcher_factory()
        if self._runner_mode == "fork":
            try:
                return ForkLauncher(preload=JOB_PRELOAD)
            except (OSError, RuntimeError) as e:
                assert daemon.logs is not None
                daemon.logs.scheduler.warning(f"Notifications: fork server unavailable ({e}); starting "
                                              "delivery jobs as plain processes")
        return SubprocessLauncher()

    def _run(self, daemon: Daemon, kind: str, request: dict[str, Any], timeout_s: float,
             stop_check_s: float = 0.1) -> _Worker:
        stop = threading.Event()
        job = Job("(notify)", (), module="scheduler.notify.deliver", stdin=json.dumps(request).encode(),
                  timeout_s=timeout_s, max_output_bytes=8 * 1_048_576, stop=stop, stop_check_s=stop_check_s)
        worker = _Worker(threading.Thread(target=lambda: None, daemon=True), stop)

        def work() -> None:
            try:
                launcher = self._launchers.get(kind)
                if launcher is not None and not launcher.alive():  # it died (killed?) or was stopped between jobs
                    self._broken[kind] = "it exited or was stopped between jobs"
                    self._launchers.pop(kind, None)
                    launcher.close()
                    launcher = None
                if launcher is None:
                    if kind in self._broken:
                        assert daemon.logs is not None
                        daemon.logs.scheduler.warning(f"Notifications: starting a new guardian for {kind} jobs "
                                                      f"(the last one broke: {self._broken.pop(kind)})")
                    launcher = self._launchers[kind] = self._new_launcher(daemon)
                result = run_jobs(launcher, [job], max_concurrency=1, grace_s=0.0)[0]
                if result.launch_error or result.lost or result.returncode is None:  # a new guardian next time
                    self._launchers.pop(kind, None)
                    launcher.close()
                    raise RuntimeError(f"the {kind} job's guardian (fork server) is gone or refused the job: "
                                       f"{result.launch_error or result.lost or 'the job was never reported to exit'}; "
                                       "messages stay queued and a new guardian is started for the next job")
                if result.returncode != 0 or result.timed_out:
                    raise ValueError(f"the delivery process failed (exit status {result.returncode}, timed out: "
                                     f"{result.timed_out}): {result.stderr.decode('utf-8', 'replace')[-300:]}")
                worker.result = json.loads(result.stdout)
            except Exception as e:  # noqa: BLE001 - reported on the main loop, retried with backoff
                worker.result = {"crashed": f"{type(e).__name__}: {e}"[:500]}
                if isinstance(e, (OSError, RuntimeError)):  # the guardian could not start or broke
                    self._broken[kind] = str(e)[:300]
                    broken = self._launchers.pop(kind, None)
                    if broken is not None:
                        broken.close()
            finally:
                daemon.wake()

        worker.thread = threading.Thread(target=work, name="notify", daemon=True)
        worker.thread.start()
        return worker

    # -- results ------------------------------------------------------------------------------
    def _failed(self, name: str, error: str, retry_after_s: float | None, rt: DestinationRuntime | None = None) -> None:
        rt = rt or self.runtime[name]
        rt.errors += 1
        rt.failed_total += 1
        rt.last_error, rt.last_error_at = error, datetime.now(UTC)
        if retry_after_s is None:
            rt.backoff_errors += 1
        wait = retry_after_s if retry_after_s is not None else min(BACKOFF_MAX_S, 2.0 ** (rt.backoff_errors - 1))
        rt.next_attempt_mono = time.monotonic() + wait

    def _fold(self, daemon: Daemon) -> None:
        assert daemon.logs is not None
        log = daemon.logs.scheduler
        delivered = False
        finished = False  # a job ended: /status and /metrics show its outcome at once, failures too
        if self._deliver is not None and not self._deliver.thread.is_alive():
            result, self._deliver, finished = self._deliver.result, None, True
            entries = read_journal(self.journal)
            for st in {id(s): s for s in (daemon.state, daemon._unsaved) if s is not None}.values():
                delivered |= apply_journal(st, entries, self.destinations)
            now = time.monotonic()
            for e in entries:
                if e["d"] in self.runtime:
                    self.runtime[e["d"]].last_sent_mono = now
            reports = result.get("destinations", {})
            if "crashed" in result:
                log.error(f"Notifications: {result['crashed']}")
            for name in self.runtime:
                r = reports.get(name)
                if "crashed" in result and r is None:
                    self._failed(name, result["crashed"], None)
                elif r and r.get("error"):
                    self._failed(name, str(r["error"])[:500], r.get("retry_after_s"))
                    log.warning(f"Notifications: {name}: {r['error']}"[:600])
                elif r is not None:
                    self.runtime[name].errors = self.runtime[name].backoff_errors = 0
            for st in {id(s): s for s in (daemon.state, daemon._unsaved) if s is not None}.values():
                self._bound(st)
        if self._poll is not None and not self._poll.thread.is_alive():
            result, self._poll = self._poll.result, None
            finished = finished or bool(result.get("crashed") or result.get("error"))
            if self._stopping:
                result = {}  # killed on purpose: no error, and its updates come again at the next start
            elif result.get("crashed") or result.get("error"):
                error = str(result.get("crashed") or result.get("error"))
                self._failed("poll", error, result.get("retry_after_s"), self.poll_runtime)
                log.warning(f"Telegram commands: getUpdates failed: {error}"[:600])
            else:
                self.poll_runtime.errors = self.poll_runtime.backoff_errors = 0
            self.bot_username = result.get("bot_username") or self.bot_username
            updates = [commands.Update.from_json(u) for u in result.get("updates", [])]
            if updates:
                self._commands(daemon, updates)
                delivered = True
        if delivered:
            self._save(daemon)
        elif self._deliver is None and not daemon.halted and self.journal.exists() and not read_journal(self.journal):
            self.journal.unlink(missing_ok=True)
        if delivered or finished:
            daemon._publish()

    # -- commands -----------------------------------------------------------------------------
    def _commands(self, daemon: Daemon, updates: list[commands.Update]) -> None:
        """Run each update in order; the offset and the answers are saved with what it did."""
        for u in sorted(updates, key=lambda x: x.update_id):
            state = self._target(daemon)
            offset = state.notify.telegram_offset
            if offset is not None and u.update_id < offset:
                continue  # asked again after a restart: already handled
            answer = handle(self, daemon, u, bot_username=self.bot_username)
            state = self._target(daemon)  # a trade commits a new state
            if answer is not None:
                self.enqueue(state, "answer", answer, daemon.clock.now(), to=f"telegram:{u.chat_id}")
            state.notify.telegram_offset = u.update_id + 1

    # -- /status ------------------------------------------------------------------------------
    def status(self, daemon: Daemon) -> dict[str, Any]:
        return self.status_of(self._target(daemon))

    def status_of(self, state: State, *, live: bool = True) -> dict[str, Any]:
        """/status's ``notifications``: the outbox and each destination's cursor from ``state``;
        with ``live`` False (``go-trader status``, no daemon) the delivery errors, which only a
        running daemon knows, are null."""
        now = time.monotonic()
        out: dict[str, Any] = {"enabled": self.enabled, "outbox_messages": len(state.outbox),
                               "dropped": state.notify.dropped, "max_messages": self.config.max_messages,
                               "destinations": {}}
        if not live:
            out["note"] = "read from the saved state: delivery errors are known to a running daemon only"
        for name, broadcast in self.destinations.items():
            rt, c = self.runtime[name], outbox.cursor(state, name)
            out["destinations"][name] = {
                "pending": len(outbox.pending(state, name, broadcast)), "delivered_total": c.delivered_total,
                **({"failed_total": rt.failed_total, "consecutive_errors": rt.errors, "last_error": rt.last_error,
                    "last_error_at": rt.last_error_at.isoformat() if rt.last_error_at else None,
                    "next_attempt_in_s": round(max(0.0, rt.next_attempt_mono - now), 1) if rt.errors else 0.0}
                   if live else dict.fromkeys(("failed_total", "consecutive_errors", "last_error", "last_error_at",
                                               "next_attempt_in_s")))}
        tg = self.config.telegram
        if tg and tg.commands:
            out["commands"] = {"offset": state.notify.telegram_offset,
                               "last_error": self.poll_runtime.last_error if live else None,
                               "consecutive_errors": self.poll_runtime.errors if live else None}
        return out
