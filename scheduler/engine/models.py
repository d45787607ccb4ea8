"""state.json's schema: pydantic models, extra keys forbidden, versioned.

All money is USD unless a name says otherwise; all times are timezone-aware UTC.
The engine mutates these models in place on a copy the caller owns; the
daemon publishes a snapshot only after the copy was saved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 6
#: how many answered control requests state.json remembers, for idempotent retries
REQUESTS_KEPT = 200


class _State(BaseModel):
    # allow_inf_nan=False: NaN and Infinity are never state (JSON cannot even hold them)
    model_config = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # The engine writes fields thousands of times a replay. Without validate_assignment,
        # pydantic's own __setattr__ does exactly this for a field, after a dispatch that costs
        # more than the write; every other name (a typo, a non-field) still gets its checks.
        fields = self.__dict__
        if name in fields:
            fields[name] = value
            self.__pydantic_fields_set__.add(name)
        else:
            super().__setattr__(name, value)


class Position(_State):
    """A long spot position. ``cost_basis_usd`` includes the entry fee."""

    symbol: str
    quantity: float = Field(gt=0)
    entry_price: float = Field(gt=0)  # fill price, after slippage, before fees
    cost_basis_usd: float = Field(gt=0)
    entry_fee_usd: float = Field(ge=0)
    opened_at: AwareDatetime
    stop_price: float | None = None
    #: open time (ms) of the newest candle already checked against the stop
    stop_checked_to_ms: int | None = None
    mark_price: float | None = None  # last known price; None = unpriced
    mark_at: AwareDatetime | None = None


class OptionPosition(_State):
    """One option leg held by a sleeve (scheduler/engine/option_book.py trades them).

    Deribit contracts are on 1 coin: ``quantity`` is in coin. Prices per contract:
    ``*_coin`` as Deribit quotes them, ``*_usd`` converted at the index price.
    ``greeks`` are per contract as the exchange gives them (delta per coin, gamma per
    USD, theta USD per day, vega USD per vol point), refreshed every cycle with the mark.
    ``margin_usd`` is the initial margin reserved for the whole position now
    (scheduler/engine/margin.py), 0 for longs and for the spot-covered part of a call.
    """

    id: str  # "<strategy_id>:<seq of the opening fill>": unique because trade seqs are
    instrument: str
    underlying: str
    option_type: Literal["call", "put"]
    strike: float = Field(gt=0)
    expiry: AwareDatetime  # 08:00 UTC on the expiry date
    side: Literal["long", "short"]
    quantity: float = Field(gt=0)
    entry_premium_coin: float = Field(gt=0)  # fill price per contract, coin
    entry_premium_usd: float = Field(gt=0)  # fill price per contract, USD at the entry index
    entry_fee_usd: float = Field(ge=0)  # for the whole position
    entry_index_usd: float = Field(gt=0)
    covered_quantity: float = Field(0.0, ge=0)  # short calls: the part covered by spot the sleeve holds
    #: short options (the wheel): an in-the-money expiry delivers the coin: a put buys it, a call sells its covering spot
    assign: bool = False
    opened_at: AwareDatetime
    greeks: dict[str, float] = Field(default_factory=dict)
    mark_coin: float | None = Field(None, gt=0)
    mark_usd: float | None = Field(None, gt=0)  # per contract; None: never priced
    index_usd: float | None = Field(None, gt=0)  # the index the mark was converted at
    mark_iv_pct: float | None = Field(None, gt=0)
    mark_at: AwareDatetime | None = None
    margin_usd: float = Field(0.0, ge=0)
    score: float | None = None
    score_reason: str | None = None

    @model_validator(mode="after")
    def _covered_fits(self) -> OptionPosition:
        if self.covered_quantity > self.quantity + 1e-12 or (self.covered_quantity and self.side != "short") or (
                self.covered_quantity and self.option_type != "call"):
            raise ValueError(f"covered_quantity {self.covered_quantity} must be 0, or at most the quantity "
                             f"{self.quantity} of a short call (this is a {self.side} {self.option_type})")
        return self


class OptionFill(_State):
    """The option side of a Trade: which position it opened or closed, at what price in coin."""

    position_id: str
    effect: Literal["open", "close"]
    position_side: Literal["long", "short"]
    underlying: str
    option_type: Literal["call", "put"]
    strike: float = Field(gt=0)
    expiry: AwareDatetime
    premium_coin: float = Field(ge=0)  # per contract; at expiry the intrinsic value in coin
    index_usd: float = Field(gt=0)  # the conversion rate used (at expiry: the delivery price)
    price_source: Literal["ask", "bid", "mark+spread", "mark-spread", "delivery"]
    score: float | None = None
    score_reason: str | None = None


class Trade(_State):
    """One fill. ``seq`` is unique across the whole account and never reused.

    Cash moves the same way for every trade: a buy costs ``notional_usd + fee_usd``, a
    sell brings ``notional_usd - fee_usd``. Option trades carry ``option`` (the symbol
    is the instrument, prices are per contract in USD); an option's expiry is a trade
    too (reason "expiry", at the intrinsic value, 0 when it expires worthless).
    """

    seq: int = Field(ge=1)
    cycle: int = Field(ge=0)
    strategy_id: str
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float = Field(gt=0)
    quote_price: float = Field(ge=0)  # the price decided on, before slippage (> 0 but at an expiry)
    fill_price: float = Field(ge=0)
    notional_usd: float = Field(ge=0)
    fee_usd: float = Field(ge=0)
    realized_pnl_usd: float | None = None  # closes: net of both fees
    reason: Literal["signal", "stop", "drawdown_close", "manual", "expiry", "profit_target", "loss_stop",
                    "min_dte", "assignment"]
    at: AwareDatetime
    option: OptionFill | None = None

    @model_validator(mode="after")
    def _priced(self) -> Trade:
        if self.reason != "expiry" and min(self.quote_price, self.fill_price, self.notional_usd) <= 0:
            raise ValueError(f"a {self.reason} fill needs prices > 0 (quote {self.quote_price}, fill "
                             f"{self.fill_price}, notional {self.notional_usd}); only an option's expiry may be at 0")
        if self.reason == "expiry" and self.option is None:
            raise ValueError("an expiry trade must carry its option")
        return self


class Block(_State):
    """An active block on new entries, with a reason code people can look up."""

    code: str
    detail: str
    since: AwareDatetime
    until: AwareDatetime | None  # None: until a person resets it


class RiskState(_State):
    """Per-strategy risk state. A loss is a closed trade with net realized P&L < 0
    (fees included); a win has P&L > 0 and resets the streak."""

    peak_equity_usd: float = Field(gt=0)
    drawdown_pct: float | None = 0.0  # None while the sleeve cannot be valued
    consecutive_losses: int = Field(0, ge=0)
    wins: int = Field(0, ge=0)
    losses: int = Field(0, ge=0)
    blocks: dict[str, Block] = Field(default_factory=dict)  # by reason code


class AuditRecord(_State):
    """A person's intervention: what, when, by whom, and the state before."""

    at: AwareDatetime
    action: str
    scope: str  # a strategy id, or "account"
    by: str
    detail: str
    before: dict[str, Any]


class AccountState(_State):
    """Account-wide risk state: the sum of every sleeve."""

    peak_equity_usd: float | None = None
    #: the strategies whose sum the peak and day-start values describe
    members: list[str] = Field(default_factory=list)
    day: str | None = None  # the UTC day (YYYY-MM-DD) day_start_equity_usd belongs to
    day_start_equity_usd: float | None = None
    blocks: dict[str, Block] = Field(default_factory=dict)
    audit: list[AuditRecord] = Field(default_factory=list)  # the most recent; all are in the audit log


class LastCheck(_State):
    """What the last checker run said, for /status ("why has it not traded?")."""

    at: AwareDatetime
    ok: bool
    signal: int | None = None
    price: float | None = None
    candle_at: AwareDatetime | None = None
    indicators: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    error_class: Literal["transient", "permanent"] | None = None
    outcome: str | None = None  # what the engine did with it


class Sleeve(_State):
    id: str
    type: Literal["spot", "options"]
    initial_capital_usd: float = Field(gt=0)
    #: a spot sleeve's cash is never negative (the engine never spends cash it does not have); an
    #: options sleeve's can be, after a short's loss beyond its capital (exits and expiries always
    #: run), and then every entry is refused for want of cash
    cash_usd: float
    positions: dict[str, Position] = Field(default_factory=dict)
    option_positions: list[OptionPosition] = Field(default_factory=list)
    trades: list[Trade] = Field(default_factory=list)  # the most recent; all are in the trade log
    trade_count: int = Field(0, ge=0)
    realized_pnl_usd: float = 0.0
    fees_paid_usd: float = Field(0.0, ge=0)
    risk: RiskState
    last_run_at: AwareDatetime | None = None
    last_check: LastCheck | None = None

    @field_validator("cash_usd")
    @classmethod
    def _cash(cls, v: float, info: ValidationInfo) -> float:
        if v < 0 and info.data.get("type") != "options":
            raise ValueError(f"cash_usd is {v}, below 0; only an options sleeve's cash can be negative "
                             "(after a short option's loss)")
        return v


class OutboxMessage(_State):
    """A notification waiting to be delivered (scheduler/notify/): saved with the state it tells
    of, so a crash neither loses it nor sends it twice. ``to`` names the one destination a
    message is for (a command's answer: "telegram:<chat id>"); None: every destination."""

    id: int = Field(ge=1)  # increasing, never reused: each destination's cursor is an id
    at: AwareDatetime
    kind: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=200_000)
    to: str | None = Field(None, min_length=1, max_length=80)


class DeliveryCursor(_State):
    """How far one destination ("telegram:<chat id>", "webhook") has confirmed the outbox."""

    delivered_id: int = Field(0, ge=0)  # every message with an id up to this one is delivered
    #: characters of this destination's next message already confirmed (a long text goes in parts
    #: split at the channel's size limit; counting characters, not parts, survives a changed limit)
    chars_sent: int = Field(0, ge=0)
    delivered_total: int = Field(0, ge=0)


class NotifyState(_State):
    """The outbox's bookkeeping: ids, delivery cursors, the Telegram command offset."""

    next_id: int = Field(1, ge=1)
    cursors: dict[str, DeliveryCursor] = Field(default_factory=dict)
    #: messages removed unsent because the outbox was full (counted, shown in /status)
    dropped: int = Field(0, ge=0)
    #: getUpdates offset: the next update id to ask Telegram for (None: never polled)
    telegram_offset: int | None = Field(None, ge=0)
    #: chats whose commands were ignored (logged once each)
    ignored_chats: list[int] = Field(default_factory=list)
    #: consecutive failed checks per strategy (a streak message at the configured count)
    failure_streaks: dict[str, int] = Field(default_factory=dict)
    last_summary_at: AwareDatetime | None = None


class State(_State):
    schema_version: int = SCHEMA_VERSION
    cycle_count: int = Field(0, ge=0)
    last_cycle_at: AwareDatetime | None = None
    next_trade_seq: int = Field(1, ge=1)
    sleeves: dict[str, Sleeve] = Field(default_factory=dict)
    account: AccountState = Field(default_factory=AccountState)
    last_reconcile: dict[str, Any] | None = None
    #: the answers to the most recent control requests by request id, saved with the change they
    #: made, so a retry after a lost answer (a crash, a cut connection) is answered, not re-run
    requests: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: notifications not yet delivered everywhere, oldest first (scheduler/notify/outbox.py)
    outbox: list[OutboxMessage] = Field(default_factory=list)
    notify: NotifyState = Field(default_factory=NotifyState)

    @model_validator(mode="after")
    def _sleeves_named(self) -> State:
        wrong = [(key, s.id) for key, s in self.sleeves.items() if key != s.id]
        if wrong:
            key, sid = wrong[0]
            raise ValueError(f"sleeves[{key!r}] holds the sleeve of {sid!r}: a sleeve is kept under its own id")
        return self


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """Bring an older state document up to SCHEMA_VERSION (a pure function on the JSON)."""
    version = doc.get("schema_version", 1)
    if version == 1:  # v1 had one optional risk.block per sleeve and no account state
        for sleeve in doc.get("sleeves", {}).values():
            risk = sleeve.get("risk", {})
            block = risk.pop("block", None)
            risk["blocks"] = {block["code"]: block} if block else {}
        doc["schema_version"] = version = 2
    if version == 2:  # v3 remembers answered control requests
        doc.setdefault("requests", {})
        doc["schema_version"] = version = 3
    if version == 3:  # v4 trades options: v3 never held an option position, trades gain optional fields
        doc["schema_version"] = version = 4
    if version == 4:  # v5 keeps a notification outbox
        doc.setdefault("outbox", [])
        doc.setdefault("notify", {})
        doc["schema_version"] = version = 5
    if version == 5:  # v6 counts the characters of a part-sent message, not its parts
        for c in (doc.get("notify") or {}).get("cursors", {}).values():
            if isinstance(c, dict):
                c.pop("parts_sent", None)  # parts of a split whose size is not known here: the message is
                c.setdefault("chars_sent", 0)  # sent again whole (its first parts twice), never cut short
        doc["schema_version"] = version = 6
    return doc


def new_sleeve(strategy_id: str, kind: Literal["spot", "options"], capital_usd: float) -> Sleeve:
    return Sleeve(
        id=strategy_id, type=kind, initial_capital_usd=capital_usd, cash_usd=capital_usd,
        risk=RiskState(peak_equity_usd=capital_usd),
    )


def utc_iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def utc_from_ms(ms: int) -> datetime:
    """The aware UTC time ``ms`` milliseconds after the Unix epoch (candle and quote times)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
