"""A Telegram command through the daemon's control path (the same ``execute`` as the CLI and
HTTP), audited: who (the Telegram user and chat), when, what, and the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.control import error_text
from scheduler.engine.errors import StateSaveError
from scheduler.engine.models import AuditRecord
from scheduler.notify import commands, outbox
from scheduler.state_store import append_audit

if TYPE_CHECKING:
    from scheduler.daemon import Daemon
    from scheduler.notify.service import NotifyService

#: how many ignored chats are remembered (each is logged once)
IGNORED_KEPT = 100


def handle(service: NotifyService, daemon: Daemon, u: commands.Update, *,
           bot_username: str | None = None) -> str | None:
    """The answer to one update, or None when it gets none (not a command, not allowed, another
    bot's). ``bot_username``: this bot's username as the Bot API said it (getMe), when known;
    else ``notifications.telegram.bot_username``."""
    assert daemon.logs is not None and service.config.telegram is not None
    rules = service.config.telegram.commands
    assert rules is not None
    state = service._target(daemon)
    if not commands.allowed(u, rules):
        if u.chat_id is not None and u.chat_id not in state.notify.ignored_chats:
            daemon.logs.scheduler.warning(
                f"Telegram: ignored a message from chat {u.chat_id} (user {u.user_id}): not allow-listed in "
                "notifications.telegram.commands (chat_ids, and in a group user_ids); logged once per chat")
            state.notify.ignored_chats = [*state.notify.ignored_chats, u.chat_id][-IGNORED_KEPT:]
        return None
    cmd = commands.parse(u.text)
    if cmd is None:
        return None
    name, args = cmd.name, cmd.args
    refusal = commands.addressed(cmd, bot_username or service.config.telegram.bot_username)
    if refusal == "":
        return None  # another bot's command: not ours to run, answer or audit
    if refusal is not None:
        _audit(daemon, u, f"{name}@{cmd.to}", args, refusal)
        return refusal
    ids = [s.id for s in daemon.config.strategies]
    if name in ("help", "start") or name not in commands.COMMANDS:
        answer = commands.HELP if name in ("help", "start") else f"unknown command /{name}\n\n{commands.HELP}"
    elif name == "status":
        pending = sum(len(outbox.pending(state, d, b)) for d, b in service.destinations.items())
        answer = commands.status_answer(state, ids, daemon.halted, pending)
    elif name == "positions":
        answer = commands.positions_answer(state, ids)
    elif name == "pnl":
        answer = commands.pnl_answer(state, ids)
    elif name == "blocks":
        answer = commands.blocks_answer(state, ids)
    else:
        answer = _trade(daemon, u, name, args)
    _audit(daemon, u, name, args, answer)
    return answer


def _trade(daemon: Daemon, u: commands.Update, name: str, args: list[str]) -> str:
    resolved = commands.resolve(daemon.config.strategies, daemon.state, name, args)
    if isinstance(resolved, str):
        return resolved
    sid, symbol = resolved
    action = "enter" if name == "long" else "close"
    request = {"strategy": sid, "action": action, "symbol": symbol, "request_id": f"tg-{u.update_id}"}
    try:
        result: dict[str, Any] = daemon.execute("trade", request, u.who)
    except (KeyError, ValueError) as e:  # as process_commands answers the CLI and HTTP
        result = {"ok": False, "error": error_text(e)}
    except StateSaveError as e:
        result = {"ok": False, "error": str(e)}
    return commands.trade_answer(name, sid, symbol, result)


def _audit(daemon: Daemon, u: commands.Update, name: str, args: list[str], answer: str) -> None:
    assert daemon.logs is not None
    what = " ".join(["/" + name, *args])[:200]
    record = AuditRecord(at=daemon.clock.now(), action=f"telegram {what}", scope="account", by=u.who,
                         detail=answer[:500], before={"update_id": u.update_id, "chat_id": u.chat_id})
    try:
        append_audit(daemon.state_path, record)
    except StateSaveError as e:
        daemon.logs.scheduler.error(f"Telegram: could not append to the audit log: {e}")
    daemon.logs.scheduler.warning(f"AUDIT telegram {what!r} by {u.who}: {answer[:200]!r}")
    daemon.logs.event("audit", daemon.state.cycle_count, None, **record.model_dump(mode="json"))
