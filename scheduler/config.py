"""config.json: pydantic models for every field, and a loader that reports
every problem with its JSON path and a hint (REFERENCE section 2).

Secrets never live in the file: a key that looks like one is refused with the
environment variable to use instead.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import checkers
from market.specs import CcxtSpec, FilesSpec, MarketSpec, SyntheticSpec
from market.timeframes import TIMEFRAMES
from options import OPTIONS_STRATEGIES, UNDERLYINGS
from scheduler.errors import ConfigError
from strategies.catalog import CATALOG, validate_params

DEFAULT_CHECKERS_DIR = Path(checkers.__file__).resolve().parent
DEFAULT_DRAWDOWN_PCT = {"spot": 60.0, "options": 40.0}
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,10}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Keys that hold secrets, and the environment variable that carries each instead.
SECRET_ENV = {
    "status_token": "GO_TRADER_STATUS_TOKEN",
    "token": "GO_TRADER_STATUS_TOKEN",
    "bot_token": "GO_TRADER_TELEGRAM_TOKEN",
    "telegram_token": "GO_TRADER_TELEGRAM_TOKEN",
    "api_key": "GO_TRADER_EXCHANGE_API_KEY",
    "apikey": "GO_TRADER_EXCHANGE_API_KEY",
    "secret": "GO_TRADER_EXCHANGE_SECRET",
    "api_secret": "GO_TRADER_EXCHANGE_SECRET",
    "password": "GO_TRADER_EXCHANGE_PASSWORD",
    "private_key": "GO_TRADER_EXCHANGE_SECRET",
}
STATUS_TOKEN_ENV = "GO_TRADER_STATUS_TOKEN"

_HINTS = {
    "capital": "capital is the strategy's starting cash in USD, a number > 0",
    "max_drawdown_pct": "a percentage in (0, 100]; omit it for the default (spot 60, options 40)",
    "interval_seconds": "seconds between runs; 0 or absent on a strategy means the global interval",
    "stop_loss_pct": "a protective stop this many percent below every entry fill, in (0, 100)",
    "script": "the bare file name of a checker in checkers/, e.g. check_strategy.py",
    "type": "'spot' or 'options'",
    "args": "spot: [strategy, symbol, timeframe] (+ symbol_b for pairs_spread); options: [strategy, underlying]",
}



def _check_spot_args(a: list[str]) -> None:
    if len(a) not in (3, 4):
        raise ValueError(f"spot args must be [strategy, symbol, timeframe] or [..., symbol_b], got {a!r}")
    name, symbol, timeframe = a[0], a[1], a[2]
    if name not in CATALOG:
        close = difflib.get_close_matches(name, CATALOG, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(CATALOG)}"
        raise ValueError(f"args[0]: unknown spot strategy {name!r}{hint}")
    for sym in a[1:2] + a[3:]:
        if not SYMBOL_RE.match(sym):
            raise ValueError(f"symbol {sym!r} must look like 'BTC/USDT' (upper case BASE/QUOTE)")
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"args[2]: timeframe {timeframe!r} is not one of {', '.join(TIMEFRAMES)}")
    needs_b = CATALOG[name].needs_second_symbol
    if needs_b and len(a) != 4:
        raise ValueError(f"{name} needs a second symbol: [{name}, {symbol}, {timeframe}, SYMBOL_B]")
    if not needs_b and len(a) == 4:
        raise ValueError(f"{name} takes no second symbol; remove {a[3]!r}")
    if len(a) == 4 and a[3] == symbol:
        raise ValueError(f"{name}: symbol_b must differ from symbol ({symbol})")


def _check_options_args(a: list[str]) -> None:
    if len(a) != 2:
        raise ValueError(f"options args must be [strategy, underlying], got {a!r}")
    if a[0] not in OPTIONS_STRATEGIES:
        raise ValueError(f"args[0]: unknown options strategy {a[0]!r}; known: {', '.join(OPTIONS_STRATEGIES)}")
    if a[1] not in UNDERLYINGS:
        raise ValueError(f"args[1]: underlying {a[1]!r} must be one of {', '.join(UNDERLYINGS)}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedFractionSizing(_Model):
    """Spend a fixed fraction of the sleeve's cash on each entry (the original's rule)."""

    mode: Literal["fixed_fraction"] = "fixed_fraction"
    fraction: float = Field(0.95, gt=0, le=1)


class FixedUsdSizing(_Model):
    """Spend a fixed USD amount on each entry (less if the sleeve has less cash)."""

    mode: Literal["fixed_usd"]
    usd: float = Field(gt=0)


class RiskBasedSizing(_Model):
    """Risk ``risk_pct`` of the sleeve's equity between the entry and its protective stop,
    capped at ``max_position_pct`` of equity. An entry with no stop is refused."""

    mode: Literal["risk_based"]
    risk_pct: float = Field(1.5, gt=0, le=100)
    max_position_pct: float = Field(15.0, gt=0, le=100)


Sizing = Annotated[FixedFractionSizing | FixedUsdSizing | RiskBasedSizing, Field(discriminator="mode")]


class StrategyConfig(_Model):
    id: str
    type: Literal["spot", "options"]
    script: str
    args: list[str]
    capital: float = Field(gt=0, allow_inf_nan=False)
    max_drawdown_pct: float | None = Field(None, gt=0, le=100)
    interval_seconds: int = Field(0, ge=0)
    params: dict[str, int | float] = Field(default_factory=dict)
    sizing: Sizing = Field(default_factory=FixedFractionSizing)
    close_on_drawdown: bool = False
    stop_loss_pct: float | None = Field(None, gt=0, lt=100)
    exchange: str = "binance"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(
                f"id {v!r} must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (it names the strategy's log file)"
            )
        return v

    @field_validator("script")
    @classmethod
    def _script(cls, v: str, info: ValidationInfo) -> str:
        if "/" in v or "\\" in v or ".." in v or not v.endswith(".py") or v.startswith("."):
            raise ValueError(f"script {v!r} must be a bare file name ending in .py, with no path separators or '..'")
        folder = Path((info.context or {}).get("checkers_dir", DEFAULT_CHECKERS_DIR))
        if not (folder / v).is_file():
            known = sorted(p.name for p in folder.glob("check_*.py"))
            raise ValueError(f"no checker {v!r} in {folder}; available: {', '.join(known) or 'none'}")
        return v

    @field_validator("args")
    @classmethod
    def _args(cls, a: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("type")
        if kind == "spot":
            _check_spot_args(a)
        elif kind == "options":
            _check_options_args(a)
        return a

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, int | float], info: ValidationInfo) -> dict[str, int | float]:
        args, kind = info.data.get("args"), info.data.get("type")
        if kind == "options" and params:
            raise ValueError("params are not supported for options strategies yet; remove 'params'")
        if kind == "spot" and args:
            validate_params(args[0], params)
        return params

    # Derived values -------------------------------------------------------------------------
    @property
    def drawdown_pct(self) -> float:
        return self.max_drawdown_pct if self.max_drawdown_pct is not None else DEFAULT_DRAWDOWN_PCT[self.type]

    @property
    def strategy_name(self) -> str:
        return self.args[0]

    @property
    def symbols(self) -> tuple[str, ...]:
        """Spot symbols this strategy trades or reads."""
        if self.type != "spot":
            return ()
        return (self.args[1],) + tuple(self.args[3:])

    @property
    def timeframe(self) -> str | None:
        return self.args[2] if self.type == "spot" else None


SyntheticMarket, FilesMarket, CcxtMarket = SyntheticSpec, FilesSpec, CcxtSpec  # the source's own models
Market = MarketSpec


class ExchangeFees(_Model):
    taker_pct: float = Field(0.1, ge=0, lt=5)
    maker_pct: float = Field(0.1, ge=0, lt=5)


class ExecutionConfig(_Model):
    slippage_pct: float = Field(0.05, ge=0, lt=5)
    fees: dict[str, ExchangeFees] = Field(default_factory=lambda: {"binance": ExchangeFees(), "binanceus": ExchangeFees()})
    #: a quote older than this many candle lengths is stale: no fill
    max_quote_age_bars: int = Field(2, ge=1, le=100)
    #: closed trades kept in state.json per strategy (the full history is in the trade log)
    recent_trades_kept: int = Field(200, ge=10, le=100_000)


class RiskConfig(_Model):
    """REFERENCE section 6; semantics in scheduler/engine/risk.py."""

    drawdown_block_hours: float = Field(24.0, gt=0, le=24 * 365)
    consecutive_losses: int = Field(5, ge=1, le=1000)
    loss_cooldown_minutes: float = Field(60.0, gt=0, le=60 * 24 * 365)
    max_position_pct: float = Field(20.0, gt=0, le=100)
    max_position_usd: float = Field(5000.0, gt=0)
    max_exposure_pct: float = Field(80.0, gt=0, le=100)
    daily_loss_pct: float = Field(5.0, gt=0, le=100)
    portfolio_kill_pct: float = Field(25.0, gt=0, le=100)
    reconcile_interval_hours: float = Field(24.0, gt=0, le=24 * 365)
    reconcile_tolerance_usd: float = Field(0.01, ge=0)


class RunnerConfig(_Model):
    timeout_s: float = Field(30.0, gt=0, le=3600)
    max_concurrency: int | None = Field(None, ge=1, le=256)
    max_output_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    mode: Literal["fork", "subprocess"] = "fork"
    shutdown_grace_s: float = Field(10.0, ge=0, le=600)
    candles_limit: int = Field(500, ge=50, le=1000)


class StatusConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8099, ge=0, le=65535)


class LoggingConfig(_Model):
    max_bytes: int = Field(10 * 1_048_576, ge=10_000)
    backups: int = Field(5, ge=1, le=100)


class Config(_Model):
    interval_seconds: int = Field(600, ge=1)
    log_dir: str = "logs"
    state_file: str = "state.json"
    strategies: list[StrategyConfig] = Field(min_length=1)
    market: Market = Field(default_factory=CcxtMarket)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    checkers_dir: str | None = None

    def interval_for(self, s: StrategyConfig) -> int:
        return s.interval_seconds or self.interval_seconds

    def fees_for(self, s: StrategyConfig) -> ExchangeFees:
        return self.execution.fees.get(s.exchange, ExchangeFees())

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        for i, s in enumerate(self.strategies):
            if s.type == "spot" and s.exchange not in self.execution.fees:
                raise ValueError(
                    f"strategies[{i}].exchange {s.exchange!r} has no fee schedule; add "
                    f"execution.fees.{s.exchange} or use one of {', '.join(self.execution.fees)}"
                )
        return self


# ---------------------------------------------------------------------------------------------
# Loading with complete, path-qualified error messages


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: dict[str, Any], model_fields: dict[str, list[str]]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("synthetic", "files", "ccxt",
                                                                                 "fixed_fraction", "fixed_usd",
                                                                                 "risk_based")))
    path = _path(loc)
    msg = err["msg"].removeprefix("Value error, ")
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if err["type"] == "extra_forbidden":
        parent = _path(loc[:-1])
        known = model_fields.get(_shape(loc[:-1]), [])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (f"; allowed keys: {', '.join(known)}" if known else "")
        return f"{path}: unknown key {loc[-1]!r} in {parent}{hint}"
    if err["type"] == "missing":
        return f"{path}: required key is missing" + (f" ({_HINTS[field]})" if field in _HINTS else "")
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or err["type"] == "missing" else f" (got {got!r})"
    hint = f"; {_HINTS[field]}" if field in _HINTS and err["type"] != "value_error" else ""
    return f"{path}: {msg}{shown}{hint}"


def _shape(loc: tuple[Any, ...]) -> str:
    return ".".join("[]" if isinstance(p, int) else str(p) for p in loc)


_FIELDS = {
    "": list(Config.model_fields),
    "strategies.[]": list(StrategyConfig.model_fields),
    "market": sorted(set(SyntheticMarket.model_fields) | set(FilesMarket.model_fields) | set(CcxtMarket.model_fields)),
    "execution": list(ExecutionConfig.model_fields),
    "risk": list(RiskConfig.model_fields),
    "runner": list(RunnerConfig.model_fields),
    "status": list(StatusConfig.model_fields),
    "logging": list(LoggingConfig.model_fields),
}


def _secret_problems(node: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            norm = str(key).lower().replace("-", "_")
            suffixes = sorted((k for k in SECRET_ENV if norm.endswith("_" + k)), key=len, reverse=True)
            env = SECRET_ENV.get(norm) or (SECRET_ENV[suffixes[0]] if suffixes else None)
            if env:
                problems.append(f"{sub}: secrets must not be stored in the config file; remove it and set "
                                f"the environment variable {env} instead")
            else:
                problems.extend(_secret_problems(value, sub))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            problems.extend(_secret_problems(item, f"{path}[{i}]"))
    return problems


def _duplicate_ids(raw: Any) -> list[str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("strategies"), list):
        return []
    seen: dict[str, int] = {}
    problems = []
    for i, s in enumerate(raw["strategies"]):
        sid = s.get("id") if isinstance(s, dict) else None
        if isinstance(sid, str) and sid:
            if sid in seen:
                problems.append(f"strategies[{i}].id: duplicate id {sid!r} (first used at strategies[{seen[sid]}]); ids must be unique")
            else:
                seen[sid] = i
    return problems


def parse_config(raw: Any, *, base_dir: Path, checkers_dir: Path | None = None) -> Config:
    """Validate a decoded config document; ConfigError lists every problem found."""
    problems = _secret_problems(raw) + _duplicate_ids(raw)
    folder = checkers_dir
    if folder is None and isinstance(raw, dict) and isinstance(raw.get("checkers_dir"), str):
        folder = (base_dir / raw["checkers_dir"]).resolve()
    try:
        config = Config.model_validate(raw, context={"checkers_dir": folder or DEFAULT_CHECKERS_DIR})
    except ValidationError as e:
        secret_paths = {p.split(":")[0] for p in problems}
        problems.extend(
            _describe(err, _FIELDS) for err in e.errors(include_url=False)
            if not (err["type"] == "extra_forbidden" and _path(err["loc"]) in secret_paths)
        )
        config = None
    if problems:
        raise ConfigError(sorted(dict.fromkeys(problems)))
    assert config is not None
    return config


def load_config(path: Path) -> Config:
    """Read and validate ``path``. Raises ConfigError (exit status 2) on any problem."""
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise ConfigError([f"{path}: config file not found; pass --config PATH (see config.demo.json)"]) from e
    except OSError as e:
        raise ConfigError([f"{path}: cannot read config file: {e.strerror}"]) from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError([f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}"]) from e
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a JSON object, got {type(raw).__name__}"])
    return parse_config(raw, base_dir=path.resolve().parent)


def resolve_path(config_path: Path, value: str) -> Path:
    """A path from the config, relative to the config file's folder."""
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (config_path.resolve().parent / p)


def checkers_dir(config: Config, config_path: Path) -> Path:
    return resolve_path(config_path, config.checkers_dir) if config.checkers_dir else DEFAULT_CHECKERS_DIR
