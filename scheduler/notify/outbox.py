"""The outbox on the state: pure bookkeeping, no I/O (README: Notifications and Telegram).

A message gets the next id and waits in ``State.outbox``; each destination
("telegram:<chat id>", "webhook") has a cursor: every message up to ``delivered_id`` is
delivered there, and ``chars_sent`` characters of the next one (a long text is sent in parts).
A message leaves the outbox when every destination it is for has passed it. The outbox is
bounded: past ``max_messages`` the oldest are removed, and counted in ``notify.dropped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from scheduler.engine.models import DeliveryCursor, OutboxMessage, State
from scheduler.notify.text import split_text, utf16_units

__all__ = ["split_text", "utf16_units"]

#: when one message would be longer, it is cut here with a note (a cycle's fills never get near)
MAX_TEXT_CHARS = 200_000


def enqueue(state: State, kind: str, text: str, at: datetime, to: str | None = None) -> OutboxMessage:
    """Add a message to ``state``'s outbox (saved with it) and return it."""
    if len(text) > MAX_TEXT_CHARS:
        cut = text[: MAX_TEXT_CHARS - 200]
        text = f"{cut}\n... ({len(text) - len(cut)} more characters are in the logs)"
    message = OutboxMessage(id=state.notify.next_id, at=at, kind=kind, text=text, to=to)
    state.notify.next_id += 1
    state.outbox.append(message)
    return message


def is_for(message: OutboxMessage, destination: str, broadcast: bool) -> bool:
    """Whether ``destination`` (which gets every broadcast message when ``broadcast``) takes it."""
    return message.to == destination if message.to is not None else broadcast


def pending(state: State, destination: str, broadcast: bool) -> list[OutboxMessage]:
    """The messages ``destination`` still needs, oldest first."""
    done = cursor(state, destination).delivered_id
    return [m for m in state.outbox if m.id > done and is_for(m, destination, broadcast)]


def cursor(state: State, destination: str) -> DeliveryCursor:
    return state.notify.cursors.get(destination) or DeliveryCursor()


def acknowledge(state: State, destination: str, broadcast: bool, delivered_id: int | None,
                partial_id: int | None = None, chars_sent: int = 0) -> bool:
    """Record what ``destination`` (which takes broadcasts when ``broadcast``) confirmed: every
    message up to ``delivered_id``, and the first ``chars_sent`` characters of message
    ``partial_id`` when that is its next message. Idempotent; never moves a cursor back.
    ``delivered_total`` counts this destination's own messages only. True when anything changed."""
    old = cursor(state, destination)
    new = old.model_copy()
    if delivered_id is not None and delivered_id > new.delivered_id:
        new.delivered_total += sum(1 for m in state.outbox
                                   if new.delivered_id < m.id <= delivered_id and is_for(m, destination, broadcast))
        new.delivered_id, new.chars_sent = delivered_id, 0
    if partial_id is not None and partial_id > new.delivered_id:
        nxt = next((m.id for m in state.outbox if m.id > new.delivered_id and is_for(m, destination, broadcast)),
                   None)
        if nxt == partial_id:  # characters of the very next message only (never of one trimmed away)
            new.chars_sent = max(new.chars_sent, chars_sent)
    if new == old:
        return False
    state.notify.cursors[destination] = new
    return True


def prune(state: State, destinations: dict[str, bool]) -> None:
    """Remove what every destination it is for has (``destinations``: name -> gets broadcasts),
    and the cursors of destinations no longer configured."""
    for name in list(state.notify.cursors):
        if name not in destinations:
            del state.notify.cursors[name]

    def needed(m: OutboxMessage) -> bool:
        return any(is_for(m, d, b) and m.id > cursor(state, d).delivered_id for d, b in destinations.items())

    state.outbox = [m for m in state.outbox if needed(m)]


def trim(state: State, max_messages: int, destinations: dict[str, bool]) -> int:
    """Keep at most ``max_messages`` in the outbox: the oldest go, counted in ``notify.dropped``
    (shown in /status). A destination whose next message went starts the next one afresh.
    Returns how many were dropped."""
    excess = len(state.outbox) - max_messages
    if excess <= 0:
        return 0
    gone = state.outbox[:excess]
    state.outbox = state.outbox[excess:]
    state.notify.dropped += excess
    last_gone = gone[-1].id
    for name, c in state.notify.cursors.items():
        if c.delivered_id < last_gone:  # its next message may be gone: its sent characters count no more
            state.notify.cursors[name] = c.model_copy(update={"chars_sent": 0, "delivered_id": last_gone})
    for name in destinations:
        if name not in state.notify.cursors:
            state.notify.cursors[name] = DeliveryCursor(delivered_id=last_gone)
    return excess


def destinations_of(telegram_chats: Iterable[int], command_chats: Iterable[int], webhook: bool) -> dict[str, bool]:
    """Every destination and whether it gets broadcasts (a command-only chat gets its answers)."""
    out = {f"telegram:{c}": False for c in command_chats}
    out.update({f"telegram:{c}": True for c in telegram_chats})
    if webhook:
        out["webhook"] = True
    return out
