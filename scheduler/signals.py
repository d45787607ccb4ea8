"""What a checker may print, and how a run is judged (README: Checkers by hand).

A check succeeds only with exit status 0 and exactly one JSON document that
matches the schema, answers the question that was asked, and carries finite,
positive prices and no ``error``. Everything else is a CheckFailure with a
reason and a class: transient (may work next cycle) or permanent (needs a
person).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scheduler.runner import JobResult


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(f"must be 1, -1 or 0, not a boolean ({v!r})")
    return v


def _finite_positive(v: float | None) -> float | None:
    if v is not None and not (math.isfinite(v) and v > 0):
        raise ValueError(f"must be a finite number > 0, got {v!r}")
    return v


class SpotSignal(_Doc):
    strategy: str
    symbol: str
    timeframe: str
    signal: Literal[-1, 0, 1]
    price: float
    indicators: dict[str, Any]
    timestamp: AwareDatetime  # close time of the last closed candle
    symbol_b: str | None = None
    stop_price: float | None = None
    source: str | None = None
    bars: int | None = Field(None, ge=0)
    error: str | None = None
    error_class: Literal["transient", "permanent"] | None = None

    _price = field_validator("price", "stop_price")(_finite_positive)
    _signal = field_validator("signal", mode="before")(_no_bool)


class Greeks(_Doc):
    delta: float
    gamma: float
    theta: float
    vega: float


class OptionAction(_Doc):
    """One leg a checker proposes (options.strategies.Leg.action_dict). Prices per
    contract (1 coin); greeks in Deribit's units, unsigned by side."""

    action: Literal["buy", "sell", "close"]
    option_type: Literal["call", "put"]
    strike: float
    expiry: AwareDatetime
    expiry_ms: int = Field(gt=0)
    instrument: str = Field(min_length=1, max_length=64)
    dte: float = Field(ge=0)
    premium: float = Field(ge=0)
    premium_usd: float = Field(ge=0)
    quantity: float = Field(gt=0)
    greeks: Greeks
    score: float | None = None
    score_reason: str | None = Field(None, max_length=2000)
    pricing: str | None = Field(None, max_length=200)  # "quote" | "model: mark_iv" | "model: realized_vol" ...
    covered_quantity: float | None = Field(None, ge=0)
    assign: bool = False  # the wheel: an in-the-money expiry buys (put) or sells (call) the coin
    position_id: str | None = Field(None, max_length=200)  # a close: which held position

    _strike = field_validator("strike")(_finite_positive)

    @field_validator("expiry_ms", mode="before")
    @classmethod
    def _int_ms(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be an integer of UTC milliseconds, got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> OptionAction:
        if abs(self.expiry.timestamp() * 1000 - self.expiry_ms) >= 1:
            raise ValueError(f"expiry {self.expiry.isoformat()} and expiry_ms {self.expiry_ms} disagree")
        if self.covered_quantity is not None and self.covered_quantity > self.quantity * (1 + 1e-12):
            raise ValueError(f"covered_quantity {self.covered_quantity} exceeds the quantity {self.quantity}")
        return self


class OptionsSignal(_Doc):
    strategy: str
    underlying: str
    signal: Literal[-1, 0, 1]
    spot_price: float | None
    actions: list[OptionAction] = Field(default_factory=list, max_length=16)
    iv_rank: float | None = Field(None, ge=0, le=100)
    iv_rank_source: str | None = None
    indicators: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    timestamp: AwareDatetime
    error: str | None = None
    error_class: Literal["transient", "permanent"] | None = None
    skip_reason: str | None = None

    _spot = field_validator("spot_price")(_finite_positive)
    _signal = field_validator("signal", mode="before")(_no_bool)

    @model_validator(mode="after")
    def _priced(self) -> OptionsSignal:
        if self.actions and self.spot_price is None:
            raise ValueError("actions proposed without a spot_price")
        return self


@dataclass(frozen=True)
class CheckFailure:
    reason: str
    error_class: Literal["transient", "permanent"]

    @property
    def transient(self) -> bool:
        return self.error_class == "transient"


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} in output")


def decode_one_document(stdout: bytes) -> Any:
    """The single JSON document in ``stdout``; ValueError says what is wrong."""
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"output is not UTF-8 ({e.reason} at byte {e.start})") from e
    if not text.strip():
        raise ValueError("printed nothing on stdout")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    start = len(text) - len(text.lstrip())
    try:
        doc, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError as e:
        snippet = text.strip()[:80]
        raise ValueError(f"output is not JSON ({e.msg} at line {e.lineno} column {e.colno}): {snippet!r}") from e
    if text[end:].strip():
        raise ValueError(f"printed more than one JSON document (extra output after character {end})")
    return doc


#: how deep a checker's document may nest (indicators are flat numbers in practice); deeper
#: documents are refused: the state that keeps them must always be savable and readable
MAX_DEPTH = 16


def shape_problem(doc: Any) -> str | None:
    """Why ``doc`` cannot be kept in the state as it is (too deep, or text that is not
    valid Unicode such as a lone surrogate from a ``\\ud800`` escape), or None."""
    stack: list[tuple[Any, int, str]] = [(doc, 1, "document")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return f"{where}: nested more than {MAX_DEPTH} levels deep"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                if isinstance(k, str) and _bad_text(k):
                    return f"{where}: a key is not valid Unicode text (a lone surrogate such as \\ud800?)"
                stack.append((v, depth + 1, f"{where}.{k}" if where != "document" else str(k)))
        elif isinstance(value, str) and _bad_text(value):
            return f"{where}: not valid Unicode text (a lone surrogate such as \\ud800?)"
    return None


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _stderr_tail(result: JobResult) -> str:
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return f"; stderr: {lines[-1][:300]}" if lines else ""


def judge(result: JobResult, model: type[_Doc], expect: dict[str, str], timeout_s: float,
          max_output_bytes: int) -> _Doc | CheckFailure:
    """Validate one checker run into ``model``, or say why it failed."""
    if result.cancelled:
        return CheckFailure("not run: the scheduler is shutting down", "transient")
    if result.launch_error:
        return CheckFailure(f"could not start the checker: {result.launch_error}", "transient")
    if result.lost:
        return CheckFailure(f"the checker ran but {result.lost}; its output is not used", "transient")
    if result.output_overflow:
        return CheckFailure(f"printed more than {max_output_bytes} bytes on stdout; killed", "permanent")
    if result.timed_out:
        return CheckFailure(f"timed out after {result.duration_s:.1f}s (limit {timeout_s:g}s); process group killed",
                            "transient")
    doc: Any = None
    try:
        doc = decode_one_document(result.stdout)
        parse_error = unkeepable = None
        shape = shape_problem(doc)
        if shape:  # not even its error text can be kept
            doc = None
            parse_error = unkeepable = f"output cannot be kept: {shape}"
    except ValueError as e:
        parse_error, unkeepable = str(e), None
    if result.returncode != 0:
        how = (f"was killed by signal {-result.returncode}" if result.returncode and result.returncode < 0
               else f"exited with status {result.returncode}")
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            cls = doc.get("error_class") if doc.get("error_class") in ("transient", "permanent") else "permanent"
            return CheckFailure(f"{how}: {doc['error']}", cls)
        cls = "transient" if result.returncode is None or result.returncode < 0 else "permanent"
        return CheckFailure(f"{how}" + (f"; {unkeepable}" if unkeepable else _stderr_tail(result)), cls)
    if parse_error:
        return CheckFailure(parse_error + _stderr_tail(result), "permanent")
    if isinstance(doc, dict) and doc.get("error"):
        cls = doc.get("error_class") if doc.get("error_class") in ("transient", "permanent") else "transient"
        return CheckFailure(f"checker reported an error (exit 0): {doc['error']}", cls)
    try:
        parsed = model.model_validate(doc)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'document'}: {err['msg']}"
            + (f" (got {err['input']!r})" if isinstance(err.get("input"), (int, float, str, bool))
               and "got " not in err["msg"] and err["type"] != "extra_forbidden" else "")
            for err in e.errors(include_url=False)[:5])
        return CheckFailure(f"output does not match the {model.__name__} schema: {problems}", "permanent")
    for key, want in expect.items():
        got = getattr(parsed, key, None)
        if got != want:
            return CheckFailure(f"answered for {key}={got!r}, but {want!r} was asked", "permanent")
    return parsed
