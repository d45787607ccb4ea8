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

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    action: Literal["buy", "sell", "close"]
    option_type: Literal["call", "put"]
    strike: float
    expiry: str
    dte: float = Field(ge=0)
    premium: float = Field(ge=0)
    premium_usd: float = Field(ge=0)
    quantity: float = Field(gt=0)
    greeks: Greeks
    score: float | None = None
    score_reason: str | None = None
    pricing: str | None = None  # "quote" | "model:mark_iv" | "model:realized_vol"

    _strike = field_validator("strike")(_finite_positive)


class OptionsSignal(_Doc):
    strategy: str
    underlying: str
    signal: Literal[-1, 0, 1]
    spot_price: float | None
    actions: list[OptionAction] = Field(default_factory=list)
    iv_rank: float | None = None
    iv_rank_source: str | None = None
    timestamp: AwareDatetime
    error: str | None = None
    error_class: Literal["transient", "permanent"] | None = None
    skip_reason: str | None = None

    _spot = field_validator("spot_price")(_finite_positive)
    _signal = field_validator("signal", mode="before")(_no_bool)


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
    if result.output_overflow:
        return CheckFailure(f"printed more than {max_output_bytes} bytes on stdout; killed", "permanent")
    if result.timed_out:
        return CheckFailure(f"timed out after {result.duration_s:.1f}s (limit {timeout_s:g}s); process group killed",
                            "transient")
    doc: Any = None
    try:
        doc = decode_one_document(result.stdout)
        parse_error = None
    except ValueError as e:
        parse_error = str(e)
    if result.returncode != 0:
        how = (f"was killed by signal {-result.returncode}" if result.returncode and result.returncode < 0
               else f"exited with status {result.returncode}")
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            cls = doc.get("error_class") if doc.get("error_class") in ("transient", "permanent") else "permanent"
            return CheckFailure(f"{how}: {doc['error']}", cls)
        cls = "transient" if result.returncode is None or result.returncode < 0 else "permanent"
        return CheckFailure(f"{how}{_stderr_tail(result)}", cls)
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
