"""Telegram commands: who may give them, what they say, and the read-only answers (pure).

A command is honoured only from an allow-listed chat, and in a group (any chat that is
not private) only from an allow-listed user; one addressed to a bot by name
(``/close@some_bot``) only when the name is this bot's (``addressed``). Trades (/long,
/close) go to the daemon's control path with a request id made from the update id, so a
poll that is answered again (after a crash, before the offset was saved) never trades twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.config import StrategyConfig, TelegramCommandsConfig
from scheduler.engine.models import State
from scheduler.engine.step import account_equity, sleeve_equity
from scheduler.notify.messages import price, quantity, signed_usd, usd

HELP = ("go-trader commands:\n"
        "/status - the daemon and the account\n"
        "/positions - open positions\n"
        "/pnl - P&L per strategy\n"
        "/blocks - active blocks on new entries\n"
        "/long SYMBOL [strategy] - enter now (the strategy's own sizing and the risk rules apply)\n"
        "/close SYMBOL [strategy] - close the position now\n"
        "/help - this list")
COMMANDS = ("status", "positions", "pnl", "blocks", "long", "close", "help", "start")
#: commands that only read: harmless to answer even when meant for another bot of the chat
READ_ONLY = ("status", "positions", "pnl", "blocks", "help", "start")


@dataclass(frozen=True)
class Update:
    update_id: int
    chat_id: int | None
    chat_type: str | None
    user_id: int | None
    user_name: str
    text: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Update:
        def as_int(v: Any) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        return cls(int(d["update_id"]), as_int(d.get("chat_id")), d.get("chat_type") if isinstance(
            d.get("chat_type"), str) else None, as_int(d.get("user_id")), str(d.get("user_name") or "")[:64],
            d.get("text") if isinstance(d.get("text"), str) else None)

    @property
    def who(self) -> str:
        """The sender as the audit names them: printable, one line, bounded."""
        name = "".join(ch for ch in self.user_name if ch.isprintable())[:40]
        return f"telegram user {self.user_id}" + (f" ({name})" if name else "") + f" in chat {self.chat_id}"


def allowed(u: Update, rules: TelegramCommandsConfig) -> bool:
    if u.chat_id is None or u.chat_id not in rules.chat_ids:
        return False
    if u.chat_type == "private" and u.user_id == u.chat_id:
        return True
    return u.user_id is not None and u.user_id in rules.user_ids


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str]
    #: the bot it is addressed to (``/long@my_bot``), as written; None for a bare ``/long``
    to: str | None = None


def parse(text: str | None) -> Command | None:
    """Command("long", ["BTC/USDT"], "my_bot") for "/long@my_bot BTC/USDT"; None for what is not
    a command."""
    if not text or not text.startswith("/"):
        return None
    words = text.split()
    name, at, to = words[0][1:].partition("@")
    return Command(name.lower(), words[1:], to if at else None)


def addressed(cmd: Command, bot_username: str | None) -> str | None:
    """Whether this bot runs ``cmd``: None when it does, else the answer refusing it, or "" to
    ignore it without an answer (it is another bot's).

    Telegram usernames are case-insensitive. A bare command is everyone's, as Telegram has
    it. When this bot's own username is not known, a command addressed by name may be
    another bot's: read-only ones are answered (a chat with one bot can write /pnl@its_bot),
    a trade is refused with the way out, and an unknown command is ignored."""
    if cmd.to is None:
        return None
    if bot_username:
        return None if cmd.to.lower() == bot_username.lstrip("@").lower() else ""
    if cmd.name in READ_ONLY:
        return None
    if cmd.name in COMMANDS:
        return (f"not traded: /{cmd.name}@{cmd.to[:40]} is addressed to a bot by name, and this bot does not know "
                f"its own username, so it cannot tell whether it is meant; send /{cmd.name} without @name, or set "
                "notifications.telegram.bot_username in the config")
    return ""


def resolve(strategies: Sequence[StrategyConfig], state: State, action: str,
            args: list[str]) -> tuple[str, str] | str:
    """(strategy id, symbol) for "/long SYMBOL [strategy]", or the answer saying why not."""
    if not args or len(args) > 2:
        return f"usage: /{action} SYMBOL [strategy], e.g. /{action} BTC/USDT"
    want = args[0].upper()
    spot = [s for s in strategies if s.type == "spot" and s.symbols]

    def matches(s: StrategyConfig) -> bool:
        sym = s.symbols[0]
        return want in (sym, sym.replace("/", ""), sym.split("/")[0])

    if len(args) == 2:
        s = next((x for x in spot if x.id == args[1]), None)
        if s is None:
            return f"no spot strategy {args[1]!r}; spot strategies: {', '.join(x.id for x in spot) or 'none'}"
        if not matches(s):
            return f"{s.id} trades {s.symbols[0]}, not {args[0]}"
        return s.id, s.symbols[0]
    found = [s for s in spot if matches(s)]
    if action == "close":  # the strategies that hold it, when several trade it
        holding = [s for s in found if s.id in state.sleeves and s.symbols[0] in state.sleeves[s.id].positions]
        found = holding or found
    if not found:
        return f"no spot strategy trades {args[0]}; traded: {', '.join(sorted({s.symbols[0] for s in spot}))}"
    if len(found) > 1:
        return (f"{len(found)} strategies trade {found[0].symbols[0]}: {', '.join(s.id for s in found)}; say which, "
                f"e.g. /{action} {args[0]} {found[0].id}")
    return found[0].id, found[0].symbols[0]


def trade_answer(action: str, sid: str, symbol: str, result: dict[str, Any]) -> str:
    """The chat's answer to a /long or /close, from the control path's result."""
    if result.get("queued"):
        return f"{action} {symbol} for {sid} is queued: {result.get('detail')}"
    if "error" in result:
        return f"not traded: {result['error']}"
    fills = [e for e in result.get("events", []) if e.get("kind") == "fill"]
    again = " (answered before: this request already ran)" if result.get("replayed") else ""
    if result.get("ok") and fills:
        f = fills[-1]
        pnl = f", P&L {signed_usd(f['realized_pnl_usd'])}" if f.get("realized_pnl_usd") is not None else ""
        return (f"{sid}: {f['side'].upper()} {quantity(f['quantity'])} {f['symbol']} @ {price(f['fill_price'])} "
                f"(fee {usd(f.get('fee_usd'))}){pnl}{again}")
    rejected = [e for e in result.get("events", []) if e.get("kind") == "rejected"]
    code = f"[{rejected[-1].get('code')}] " if rejected else ""
    return f"{sid}: not traded: {code}{result.get('detail')}{again}"


def status_answer(state: State, ids: Sequence[str], halted: str | None, pending: int) -> str:
    equity = account_equity(state, list(ids))
    lines = [f"go-trader: {'HALTED: ' + halted if halted else 'running'}",
             f"cycle {state.cycle_count}, last at {state.last_cycle_at:%Y-%m-%d %H:%M:%S} UTC"
             if state.last_cycle_at else "no cycle yet",
             f"account equity {usd(equity)}, {len(ids)} strategies",
             f"blocks: {sum(len(state.sleeves[s].risk.blocks) for s in ids if s in state.sleeves)} strategy, "
             f"{len(state.account.blocks)} account",
             f"notifications waiting: {pending}"]
    return "\n".join(lines)


def positions_answer(state: State, ids: Sequence[str]) -> str:
    lines = []
    for sid in ids:
        sl = state.sleeves.get(sid)
        if sl is None:
            continue
        for p in sl.positions.values():
            value = p.quantity * p.mark_price if p.mark_price is not None else None
            lines.append(f"{sid}: {quantity(p.quantity)} {p.symbol} @ {price(p.entry_price)}, now {usd(value)}")
        for o in sl.option_positions:
            lines.append(f"{sid}: {o.side} {quantity(o.quantity)} {o.instrument}")
    return "\n".join(lines) if lines else "no open positions"


def pnl_answer(state: State, ids: Sequence[str]) -> str:
    lines = []
    for sid in ids:
        sl = state.sleeves.get(sid)
        if sl is None:
            continue
        eq = sleeve_equity(sl)
        lines.append(f"{sid}: {usd(eq)}" + (f" ({signed_usd(eq - sl.initial_capital_usd)})" if eq is not None else "")
                     + f", realized {signed_usd(sl.realized_pnl_usd)}, fees {usd(sl.fees_paid_usd)}")
    return "\n".join(lines) or "no strategies"


def blocks_answer(state: State, ids: Sequence[str]) -> str:
    lines = [f"ALL: [{b.code}] until {b.until or 'a manual reset'}: {b.detail}" for b in state.account.blocks.values()]
    for sid in ids:
        sl = state.sleeves.get(sid)
        for b in (sl.risk.blocks.values() if sl else []):
            lines.append(f"{sid}: [{b.code}] until {b.until or 'a manual reset'}: {b.detail}")
    return "\n".join(lines) if lines else "no active blocks"
