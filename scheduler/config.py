"""config.json: pydantic models for every field, and a loader that reports
every problem with its JSON path and a hint.

The loader is strict about the document itself: UTF-8 only, no duplicate keys,
no NaN/Infinity, bounded nesting and number sizes, so nothing in the file can
end in a traceback. Every number has an upper bound that keeps date arithmetic
and sleeps far from overflow, and every path is checked to be a usable file
name. ``check_startup`` adds the checks that need the file system and the
environment (what exists at each path, the status token); the CLI runs it
before anything is written.

Secrets never live in the file: a key that looks like one is refused, naming
the key and never its value.
"""

from __future__ import annotations

import codecs
import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
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
from market.specs import SYNTHETIC_SYMBOLS, CcxtSpec, FilesSpec, MarketSpec, SyntheticSpec
from options import OPTIONS_STRATEGIES, UNDERLYINGS
from options.params import validate_params as validate_options_params
from scheduler.engine.errors import ConfigError, GoTraderError
from scheduler.engine.timeframes import TIMEFRAMES
from strategies.catalog import CATALOG, validate_params

DEFAULT_CHECKERS_DIR = Path(checkers.__file__).resolve().parent
DEFAULT_DRAWDOWN_PCT = {"spot": 60.0, "options": 40.0}
# Used with fullmatch: with match, "$" also matches before a final "\n" ("mom\n" would pass).
SYMBOL_RE = re.compile(r"[A-Z0-9]{2,15}/[A-Z0-9]{2,10}")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

STATUS_TOKEN_ENV = "GO_TRADER_STATUS_TOKEN"

#: Keys that hold secrets, and what each belongs to. Only the status token is read
#: (from the environment); the others belong to features go-trader does not have yet
#: (live trading, Telegram), so no variable is named for them: nothing would read it.
SECRET_KEYS = {
    "status_token": "status", "token": "status",
    "bot_token": "telegram", "telegram_token": "telegram",
    "api_key": "exchange", "apikey": "exchange", "secret": "exchange", "api_secret": "exchange",
    "password": "exchange", "private_key": "exchange",
    "webhook_url": "webhook",
}
_SECRET_ADVICE = {
    "status": f"remove it and set the environment variable {STATUS_TOKEN_ENV} instead",
    "exchange": "remove it: paper trading needs no exchange credentials and go-trader reads none "
                "(live trading is not supported yet)",
    "telegram": "remove it, put the bot token in an environment variable and name that variable in "
                "notifications.telegram.token_env (default GO_TRADER_TELEGRAM_TOKEN)",
    "webhook": "remove it, put the webhook URL in an environment variable and name that variable in "
               "notifications.webhook.url_env (default GO_TRADER_WEBHOOK_URL)",
}

# Upper bounds that keep every number far from overflow in date arithmetic and sleeps.
MAX_INTERVAL_S = 30 * 24 * 3600
MAX_USD = 1e12
# The document itself: a real config nests 4 levels and its largest number has 8 digits.
MAX_CONFIG_BYTES = 16 * 1_048_576
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 30
# File-name limits (Linux); check_startup asks the file system for its own.
NAME_MAX_BYTES, PATH_MAX_BYTES = 255, 4096
#: bytes go-trader appends to the state file's name (".<name>.cycle-<n>-XXXXXXXX", ".last-good")
STATE_NAME_RESERVE_BYTES = 40
#: the longest name written inside log_dir: "<64-character id>.log.<backup>"
LOG_NAME_RESERVE_BYTES = 80
#: no strategy parameter (a period, a threshold) is anywhere near this
MAX_PARAM = 1e9

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
        if not SYMBOL_RE.fullmatch(sym):
            raise ValueError(f"symbol {_clip(repr(sym), 40)} must look like 'BTC/USDT' (upper case BASE/QUOTE)")
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


def _clip(text: str, limit: int = 80) -> str:
    """``text`` shortened for a message (a value may be megabytes long)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def path_text_problem(value: str, *, name_reserve: int = 0, total_reserve: int = 0,
                      name_max: int = NAME_MAX_BYTES, path_max: int = PATH_MAX_BYTES) -> str | None:
    """Why ``value`` can never be a usable path, from its text alone; None when it can.

    ``name_reserve`` bytes are kept free in the last name (go-trader adds suffixes to
    it), ``total_reserve`` in the whole path (files created inside a folder).
    """
    if not value.strip():
        return "the path is empty; give a path"
    if "\x00" in value:
        return "the path contains a NUL character, which no file name can hold"
    try:
        raw = os.fsencode(os.path.expanduser(value))
    except UnicodeEncodeError:
        return "the path contains characters that cannot be encoded in a file name (a lone surrogate?)"
    parts = raw.split(b"/")
    for i, part in enumerate(parts):
        limit = name_max - (name_reserve if i == len(parts) - 1 else 0)
        if len(part) > limit:
            return (f"the name {_clip(repr(os.fsdecode(part)), 40)} in the path is {len(part)} bytes long; a file name may be at "
                    f"most {limit} bytes here" + (f" (go-trader appends up to {name_reserve} to it)" if i == len(parts) - 1
                                                  and name_reserve else ""))
    if len(raw) + total_reserve >= path_max:
        return f"the path is {len(raw)} bytes long; it must stay under {path_max - total_reserve} bytes here"
    return None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` (any case, a trailing dot allowed) and loopback IP literals
    (127.0.0.0/8, ::1, IPv4-mapped 127.x, bracketed or not)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL: no such checker
        return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedFractionSizing(_Model):
    """Spend a fixed fraction of the sleeve's cash on each entry (the original's rule)."""

    mode: Literal["fixed_fraction"] = "fixed_fraction"
    fraction: float = Field(0.95, gt=0, le=1)


class FixedUsdSizing(_Model):
    """Spend a fixed USD amount on each entry (less if the sleeve has less cash)."""

    mode: Literal["fixed_usd"]
    usd: float = Field(gt=0, le=MAX_USD)


class RiskBasedSizing(_Model):
    """Risk ``risk_pct`` of the sleeve's equity between the entry and its protective stop,
    capped at ``max_position_pct`` of equity. An entry with no stop is refused."""

    mode: Literal["risk_based"]
    risk_pct: float = Field(1.5, gt=0, le=100)
    max_position_pct: float = Field(15.0, gt=0, le=100)


Sizing = Annotated[FixedFractionSizing | FixedUsdSizing | RiskBasedSizing, Field(discriminator="mode")]


#: the project's own checker of each strategy type (a checkers_dir of one's own may hold others)
CHECKER_OF = {"spot": "check_strategy.py", "options": "check_options.py"}


class StrategyConfig(_Model):
    id: str
    type: Literal["spot", "options"]
    script: str
    args: list[str]
    capital: float = Field(gt=0, le=MAX_USD, allow_inf_nan=False)
    max_drawdown_pct: float | None = Field(None, gt=0, le=100)
    interval_seconds: int = Field(0, ge=0, le=MAX_INTERVAL_S)
    params: dict[str, int | float | str] = Field(default_factory=dict)
    sizing: Sizing = Field(default_factory=FixedFractionSizing)
    close_on_drawdown: bool = False
    stop_loss_pct: float | None = Field(None, gt=0, lt=100)
    exchange: str = "binance"
    #: options strategies: this strategy's theta harvest and book limits (default: options.*)
    harvest: HarvestConfig | None = None
    option_limits: OptionLimitsConfig | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_RE.fullmatch(v):
            raise ValueError(
                f"id {_clip(repr(v), 80)} must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (it names the strategy's log file)"
            )
        if v.lower() == "scheduler":
            raise ValueError("id 'scheduler' is taken: the scheduler's own log is scheduler.log; choose another id")
        if v.lower() == "account":
            raise ValueError("id 'account' is taken: it names the whole account in events, blocks, resets and the "
                             "audit log (a strategy of that name would be mistaken for it); choose another id")
        return v

    @field_validator("script")
    @classmethod
    def _script(cls, v: str, info: ValidationInfo) -> str:
        if "/" in v or "\\" in v or ".." in v or not v.endswith(".py") or v.startswith("."):
            raise ValueError(f"script {v!r} must be a bare file name ending in .py, with no path separators or '..'")
        if len(os.fsencode(v)) > NAME_MAX_BYTES:
            raise ValueError(f"script name is {len(os.fsencode(v))} bytes long; a file name may be at most "
                             f"{NAME_MAX_BYTES} bytes")
        context = info.context or {}
        if context.get("checkers_dir_unusable"):
            return v  # checkers_dir itself is reported; looking inside it would only add noise
        folder = Path(context.get("checkers_dir", DEFAULT_CHECKERS_DIR))
        if not _is_file(folder / v):
            known = sorted(p.name for p in folder.glob("check_*.py"))
            raise ValueError(f"no checker {v!r} in {folder}; available: {', '.join(known) or 'none'}")
        kind = info.data.get("type")
        if folder.resolve() == DEFAULT_CHECKERS_DIR.resolve() and kind in CHECKER_OF and v != CHECKER_OF[kind]:
            raise ValueError(f"script {v!r} cannot run a {kind} strategy (it would fail on every check): a {kind} "
                             f"strategy's checker is {CHECKER_OF[kind]}" + (
                                 "; check_price.py only prints prices" if v == "check_price.py" else ""))
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
    def _params(cls, params: dict[str, int | float | str], info: ValidationInfo) -> dict[str, int | float | str]:
        args, kind = info.data.get("args"), info.data.get("type")
        # A secret-looking key is reported on its own, and its value must never be shown.
        checked = {k: v for k, v in params.items() if not _secret_kind(k)}
        words = [k for k, v in checked.items() if isinstance(v, str)]
        if words and kind != "options":
            raise ValueError(f"parameter {_clip(repr(words[0]), 40)} must be a number, got {_clip(repr(checked[words[0]]), 40)}")
        checked_words = {k: checked.pop(k) for k in words}
        huge = [k for k, v in checked.items() if not (isinstance(v, int) or math.isfinite(v)) or abs(v) > MAX_PARAM]
        if huge:
            raise ValueError(f"parameter {_clip(repr(huge[0]), 40)} must be a finite number of at most {MAX_PARAM:.0e} "
                             f"in size, got {_clip(repr(checked[huge[0]]), 40)}")
        if kind == "spot" and args:
            validate_params(args[0], checked)
        if kind == "options" and args and args[0] in OPTIONS_STRATEGIES:
            validate_options_params(args[0], {**checked, **checked_words}, underlying=args[1] if len(args) > 1 else None)
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
    """The risk rules' settings; their semantics are in scheduler/engine/risk.py."""

    drawdown_block_hours: float = Field(24.0, gt=0, le=24 * 365)
    consecutive_losses: int = Field(5, ge=1, le=1000)
    loss_cooldown_minutes: float = Field(60.0, gt=0, le=60 * 24 * 365)
    max_position_pct: float = Field(20.0, gt=0, le=100)
    max_position_usd: float = Field(5000.0, gt=0, le=MAX_USD)
    max_exposure_pct: float = Field(80.0, gt=0, le=100)
    daily_loss_pct: float = Field(5.0, gt=0, le=100)
    portfolio_kill_pct: float = Field(25.0, gt=0, le=100)
    reconcile_interval_hours: float = Field(24.0, gt=0, le=24 * 365)
    reconcile_tolerance_usd: float = Field(0.01, ge=0, le=MAX_USD)


class OptionFeesConfig(_Model):
    """Deribit's option fees, percent (https://www.deribit.com/kb/fees)."""

    trade_pct: float = Field(0.03, ge=0, le=1)  # of the index, per contract
    trade_cap_pct: float = Field(12.5, ge=0, le=100)  # of the option's price
    delivery_pct: float = Field(0.015, ge=0, le=1)  # of the delivery price, per contract
    delivery_cap_pct: float = Field(12.5, ge=0, le=100)  # of the option's value at settlement


class OptionLimitsConfig(_Model):
    """Entry limits on an options book (units: scheduler/engine/option_fills.OptionLimits); null: none."""

    max_abs_delta_usd: float | None = Field(None, gt=0, le=MAX_USD)
    max_abs_gamma_usd: float | None = Field(None, gt=0, le=MAX_USD)
    max_abs_vega_usd: float | None = Field(None, gt=0, le=MAX_USD)
    max_premium_at_risk_pct: float | None = Field(None, gt=0, le=100)


class HarvestConfig(_Model):
    """Theta harvest on sold options; null switches a trigger off."""

    profit_target_pct: float | None = Field(None, gt=0, le=100)
    loss_stop_pct: float | None = Field(None, gt=0, le=10_000)
    min_dte_days: float | None = Field(None, ge=0, le=365)


class OptionsConfig(_Model):
    """How options are paper-traded (every options strategy; per-strategy overrides below)."""

    no_side_spread_pct: float = Field(5.0, ge=0, le=50)  # mark +/- this where a quote has no ask/bid
    max_quote_age_s: float = Field(3600.0, gt=0, le=86_400)
    fees: OptionFeesConfig = Field(default_factory=OptionFeesConfig)
    limits: OptionLimitsConfig = Field(default_factory=OptionLimitsConfig)  # per strategy
    account_limits: OptionLimitsConfig = Field(default_factory=OptionLimitsConfig)
    harvest: HarvestConfig | None = None


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

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        # A host name would need a resolver (DNS) at start-up, and could bind somewhere unexpected.
        if v != "localhost":
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ValueError(f"host {_clip(repr(v), 60)} must be 'localhost' or an IP address such as "
                                 "127.0.0.1, ::1 or 0.0.0.0 (a non-loopback address needs "
                                 f"{STATUS_TOKEN_ENV})") from None
        return v


class LoggingConfig(_Model):
    max_bytes: int = Field(10 * 1_048_576, ge=10_000, le=1 << 40)
    backups: int = Field(5, ge=1, le=100)


class HistoryConfig(_Model):
    """The equity history file beside the state (served as /history)."""

    max_bytes: int = Field(4 * 1_048_576, ge=65_536, le=1 << 30)


_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # fullmatch
#: what a Telegram bot token looks like (<bot id>:<secret>), and an http(s) URL
_BOT_TOKEN_RE = re.compile(r"(?<![0-9])[0-9]{3,}:[A-Za-z0-9_-]{6,}")
#: the incoming-webhook URLs of Discord and Slack (the URL is the credential)
_WEBHOOK_URL_RE = re.compile(r"https?://\S*(?:discord(?:app)?\.com/api/webhooks|hooks\.slack\.com)\S*",
                             re.IGNORECASE)
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://", re.ASCII)


def _looks_like(value: str) -> str:
    """What a value that should not be there resembles, for a message that never shows it."""
    if _BOT_TOKEN_RE.search(value):
        return "a Telegram bot token"
    if _URL_RE.match(value.strip()):
        return "a URL"
    return ""


def _env_name(v: str, holds: str, default: str) -> str:
    """``v`` when it is an environment variable name; else a ValueError that describes it without
    showing it (it is often the secret itself, pasted into the wrong field)."""
    if not _ENV_NAME_RE.fullmatch(v):
        like = _looks_like(v)
        what = f"looks like {like}, and is not" if like else "is not"
        raise ValueError(f"the value ({len(v)} characters, not shown: it may be the secret) {what} an environment "
                         f"variable name; put {holds} in an environment variable (e.g. "
                         f"export {default}=...) and write that variable's name here: letters, digits and '_', "
                         "not starting with a digit, at most 128 characters")
    return v


_BOT_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")  # fullmatch; Telegram's rule for usernames
_HTTP_BASE_RE = re.compile(r"(https?)://([^\s/?#@]+)(/[^\s?#]*)?")  # fullmatch


def _http_base(v: str) -> str:
    """``v`` without a trailing '/' when it is a plain http(s) base URL; else a ValueError that
    never shows the value (a token is often pasted into it: .../bot<token>)."""
    m = _HTTP_BASE_RE.fullmatch(v)
    shown = f"the value ({len(v)} characters, not shown: it may hold the bot token)"
    # in a valid URL only the path can hold a token (host:port looks like one: 127.0.0.1:18301)
    if _BOT_TOKEN_RE.search(v if m is None else m.group(3) or "") or re.search(r"/bot[^/]*:", v):
        raise ValueError(f"{shown} looks like it holds a Telegram bot token; give only the Bot API's base URL, "
                         "such as https://api.telegram.org (go-trader adds /bot<token>/...), and put the token "
                         "in the environment variable that token_env names")
    if m is None:
        authority = re.split(r"[/?#]", v.partition("://")[2], maxsplit=1)[0]
        problem = ("it holds a user name or password (user:secret@host); remove them" if "@" in authority
                   else "it must be an http:// or https:// URL with a host and no query, fragment or white space")
        raise ValueError(f"{shown} is not a usable base URL: {problem}; for example https://api.telegram.org")
    return v.rstrip("/")


#: a Telegram chat or user id: an integer within JSON's exact range (supergroups are -100...)
TelegramId = Annotated[int, Field(ge=-(2**53) + 1, le=2**53 - 1)]


class TelegramCommandsConfig(_Model):
    """Who may command the daemon from Telegram: chats, and in a group, its people too."""

    chat_ids: list[TelegramId] = Field(min_length=1, max_length=100)
    #: in a group or channel chat, only these users' commands count (a private chat is its user)
    user_ids: list[TelegramId] = Field(default_factory=list, max_length=1000)
    #: getUpdates long-poll wait: a command is seen at most this late
    poll_timeout_s: int = Field(20, ge=0, le=50)


class TelegramConfig(_Model):
    token_env: str = "GO_TRADER_TELEGRAM_TOKEN"
    chat_ids: list[TelegramId] = Field(default_factory=list, max_length=100)
    api_base: str = "https://api.telegram.org"
    commands: TelegramCommandsConfig | None = None
    #: Telegram's limits: about 1 message a second in a chat, 20 a minute in a group
    chat_interval_s: float = Field(1.0, ge=0, le=60)
    group_interval_s: float = Field(3.0, ge=0, le=600)

    #: this bot's username (without '@'): a command addressed /cmd@name runs only when name is this;
    #: unset, such commands are limited (scheduler.notify.commands.addressed)
    bot_username: str | None = None

    _token_env = field_validator("token_env")(classmethod(
        lambda cls, v: _env_name(v, "the bot token from @BotFather", "GO_TRADER_TELEGRAM_TOKEN")))
    _api_base = field_validator("api_base")(classmethod(lambda cls, v: _http_base(v)))

    @field_validator("bot_username")
    @classmethod
    def _bot_username(cls, v: str | None) -> str | None:
        if v is None:
            return None
        name = v.removeprefix("@")
        if not _BOT_USERNAME_RE.fullmatch(name):
            raise ValueError(f"the value ({len(v)} characters, not shown) is not a Telegram username: 5 to 32 "
                             "letters, digits and '_', starting with a letter, e.g. my_trader_bot (what @BotFather "
                             "gave you, with or without the '@')")
        return name


class WebhookConfig(_Model):
    """A generic webhook: POSTs {"content": text, "text": text} (Discord and Slack read one each)."""

    url_env: str = "GO_TRADER_WEBHOOK_URL"
    #: longer messages are split (Discord takes 2000 characters, Slack far more)
    max_chars: int = Field(2000, ge=200, le=40_000)
    interval_s: float = Field(1.0, ge=0, le=600)

    _url_env = field_validator("url_env")(classmethod(
        lambda cls, v: _env_name(v, "the webhook's URL", "GO_TRADER_WEBHOOK_URL")))


class NotificationsConfig(_Model):
    """Messages about fills, blocks, failures, halts, starts and stops (off without a channel)."""

    telegram: TelegramConfig | None = None
    webhook: WebhookConfig | None = None
    #: hours between summaries; 0: none
    summary_interval_hours: float = Field(24.0, ge=0, le=24 * 31)
    #: this many consecutive failed checks of a strategy make a message (and so does its recovery)
    failure_streak: int = Field(3, ge=1, le=1000)
    #: the outbox holds at most this many undelivered messages; older ones are dropped and counted
    max_messages: int = Field(1000, ge=10, le=100_000)
    #: one HTTP request's timeout in the delivery process
    timeout_s: float = Field(10.0, gt=0, le=120)

    @property
    def enabled(self) -> bool:
        return bool((self.telegram and (self.telegram.chat_ids or self.telegram.commands)) or self.webhook)


class Config(_Model):
    interval_seconds: int = Field(600, ge=1, le=MAX_INTERVAL_S)
    log_dir: str = "logs"
    state_file: str = "state.json"
    strategies: list[StrategyConfig] = Field(min_length=1)
    market: Market = Field(default_factory=CcxtMarket)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    options: OptionsConfig = Field(default_factory=OptionsConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    checkers_dir: str | None = None

    def interval_for(self, s: StrategyConfig) -> int:
        return s.interval_seconds or self.interval_seconds

    def fees_for(self, s: StrategyConfig) -> ExchangeFees:
        return self.execution.fees.get(s.exchange, ExchangeFees())

    @field_validator("log_dir", "state_file", "checkers_dir")
    @classmethod
    def _path_text(cls, v: str | None, info: ValidationInfo) -> str | None:
        reserve = {"state_file": (STATE_NAME_RESERVE_BYTES, STATE_NAME_RESERVE_BYTES),
                   "log_dir": (0, LOG_NAME_RESERVE_BYTES)}.get(info.field_name or "", (0, 0))
        problem = None if v is None else path_text_problem(v, name_reserve=reserve[0], total_reserve=reserve[1])
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        for key in ("root", "markets_cache"):
            value = getattr(self.market, key, None)
            problem = path_text_problem(value, name_reserve=16) if isinstance(value, str) else None
            if problem:
                raise ValueError(f"market.{key}: {problem}")
        for i, s in enumerate(self.strategies):
            if s.type == "spot" and (s.harvest is not None or s.option_limits is not None):
                raise ValueError(f"strategies[{i}]: harvest and option_limits apply to options strategies only")
            if s.type == "spot" and self.market.source == "synthetic":
                unknown = [sym for sym in s.symbols if sym not in SYNTHETIC_SYMBOLS]
                if unknown:
                    raise ValueError(f"strategies[{i}].args: the synthetic market models only "
                                     f"{', '.join(SYNTHETIC_SYMBOLS)}, not {', '.join(map(repr, unknown))}")
            if s.type == "spot" and s.exchange not in self.execution.fees:
                raise ValueError(
                    f"strategies[{i}].exchange {s.exchange!r} has no fee schedule; add "
                    f"execution.fees.{s.exchange} or use one of {', '.join(self.execution.fees)}"
                )
        return self


# ---------------------------------------------------------------------------------------------
# Loading with complete, path-qualified error messages


def _in_order(problem: str) -> list[Any]:
    """A sort key that puts strategies[3] before strategies[14] (numbers compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", problem)]


def _key_text(key: Any) -> str:
    """A key as it appears in a JSON path: printable keys as they are, others as repr."""
    text = str(key)
    return _clip(text if text.isprintable() else repr(text), 60)


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{_key_text(key)}" if path else _key_text(key)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        out = _join(out, part)
    return out or "(top level)"


_UNION_TAGS = ("synthetic", "files", "ccxt", "fixed_fraction", "fixed_usd", "risk_based")


def _error_loc(err: Mapping[str, Any]) -> tuple[Any, ...]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
    if len(loc) >= 3 and loc[-3] == "params" and loc[-1] in ("int", "float"):
        loc = loc[:-1]  # one problem per parameter, not one per member of `int | float`
    return loc


def _text_branch_of_a_number(err: Mapping[str, Any]) -> bool:
    """A parameter is a number or (options) a word: a value that is neither gets one error per
    branch; the number's says it all, the word's ("should be a valid string") is noise."""
    loc = err["loc"]
    return len(loc) > 1 and loc[-1] == "str" and "params" in loc and not isinstance(err.get("input"), str)


def _describe(err: Mapping[str, Any], model_fields: dict[str, list[str]]) -> str:
    loc = _error_loc(err)
    path = _path(loc)
    msg = err["msg"].removeprefix("Value error, ")
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if err["type"] == "extra_forbidden":
        parent = _path(loc[:-1])
        known = model_fields.get(_shape(loc[:-1]), [])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if str(loc[-1]) in known:  # a key of another variant (e.g. a synthetic-market key under ccxt)
            hint = f"; it is not a setting of this kind of {parent} (check its 'source' or 'mode')"
        else:
            hint = f"; did you mean {close[0]!r}?" if close else (f"; allowed keys: {', '.join(known)}" if known else "")
        return f"{path}: unknown key {_clip(repr(loc[-1]), 60)} in {parent}{hint}"
    if err["type"] == "missing":
        return f"{path}: required key is missing" + (f" ({_HINTS[field]})" if field in _HINTS else "")
    if not loc and err["type"] == "value_error":
        return msg  # a cross-check: the message starts with its own path
    got = err.get("input")
    if loc[:1] == ("notifications",) and isinstance(got, str):
        # a string there may be the token or URL itself, pasted into the wrong field: never shown
        what = f"got a string of {len(got)} characters (not shown: it may be a secret)"
        if err["type"] in _NUMBER_ERRORS:
            return f"{path}: expected {_NUMBER_ERRORS[err['type']]}, {what}; write a number without quotes"
        return f"{path}: {msg}" + ("" if err["type"] == "value_error" else f" ({what})")
    if len(err["loc"]) > len(loc) and err["loc"][-1] in ("int", "float") and "params" in loc:
        msg = "a parameter value must be a number"
        if isinstance(got, bool):
            return f"{path}: {_not_a_number(got, 'a number')}"
    elif err["type"] in _NUMBER_ERRORS and isinstance(got, (bool, str)):
        return f"{path}: {_not_a_number(got, _NUMBER_ERRORS[err['type']])}" + (
            f"; {_HINTS[field]}" if field in _HINTS else "")
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return (f"{path}.{ctx.get('discriminator', 'source').strip(chr(39))}: {_clip(repr(ctx.get('tag')))} is not "
                f"one of {ctx.get('expected_tags', 'the known kinds')}")
    if err["type"] == "union_tag_not_found":
        key = str((err.get("ctx") or {}).get("discriminator", "source")).strip("'")
        return f"{path}.{key}: required key is missing; it says which kind of {path} this is" + (
            " (synthetic, files or ccxt)" if path == "market" else "")
    if err["type"] == "too_short" and isinstance(got, list) and not got:
        return f"{path}: the list is empty; it needs at least one entry" + (
            " (a strategy: see the config reference in the README)" if path == "strategies" else "")
    if err["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return f"{path}: expected an object {{...}} of settings, got {_clip(repr(got))}"
    # A value_error is ours, and its message already says the value when that helps.
    shown = "" if isinstance(got, (dict, list)) or err["type"] == "value_error" else f" (got {_clip(repr(got))})"
    hint = f"; {_HINTS[field]}" if field in _HINTS and err["type"] != "value_error" else ""
    return f"{path}: {msg}{shown}{hint}"


#: pydantic's type errors for numeric fields, and what the field expects
_NUMBER_ERRORS = {"int_type": "an integer", "float_type": "a number", "int_parsing": "an integer",
                  "float_parsing": "a number", "int_from_float": "an integer"}


def _not_a_number(got: Any, expected: str) -> str:
    """The message for a value of the wrong JSON type where a number belongs: the value, what was
    expected, how to fix it."""
    if isinstance(got, bool):
        return (f"expected {expected}, got the boolean {json.dumps(got)}; write the number itself "
                "(true and false are not read as 1 and 0)")
    if isinstance(got, str):
        return f"expected {expected}, got the string {_clip(repr(got))}; write the number without quotes"
    return f"expected {expected}, got {_clip(repr(got))}; write a number"


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
    "notifications": list(NotificationsConfig.model_fields),
    "notifications.telegram": list(TelegramConfig.model_fields),
    "notifications.telegram.commands": list(TelegramCommandsConfig.model_fields),
    "notifications.webhook": list(WebhookConfig.model_fields),
}


def _secret_kind(key: str) -> str | None:
    norm = key.lower().replace("-", "_")
    if norm in SECRET_KEYS:
        return SECRET_KEYS[norm]
    suffixes = sorted((k for k in SECRET_KEYS if norm.endswith("_" + k)), key=len, reverse=True)
    return SECRET_KEYS[suffixes[0]] if suffixes else None


def _secret_paths(node: Any, path: str = "") -> dict[str, str]:
    """JSON path -> message for every key that looks like it holds a secret. Never the value."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            sub = _join(path, key)
            kind = _secret_kind(str(key))
            if path.startswith("notifications"):  # a token or URL there is the channel's own secret
                kind = ("webhook" if "webhook" in path else "telegram") if kind or str(key) == "url" else None
            if kind:
                found[sub] = f"{sub}: secrets must not be stored in the config file; {_SECRET_ADVICE[kind]}"
            else:
                found.update(_secret_paths(value, sub))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found.update(_secret_paths(item, _join(path, i)))
    return found


def redact_secrets(text: str) -> str:
    """``text`` with anything shaped like a Telegram bot token or a Discord/Slack webhook URL
    replaced: the last guard of the promise that a secret in the config is never echoed,
    whatever field it was pasted into."""
    text = _WEBHOOK_URL_RE.sub("<a webhook URL, not shown>", text)
    return _BOT_TOKEN_RE.sub("<a bot token, not shown>", text)


def _under(path: str, prefixes: dict[str, str]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


def _duplicate_ids(raw: Any) -> list[str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("strategies"), list):
        return []
    seen: dict[str, int] = {}
    problems = []
    for i, s in enumerate(raw["strategies"]):
        sid = s.get("id") if isinstance(s, dict) else None
        if isinstance(sid, str) and sid:
            if sid in seen:
                problems.append(f"strategies[{i}].id: duplicate id {_clip(repr(sid))} (first used at "
                                f"strategies[{seen[sid]}]); ids must be unique")
            else:
                seen[sid] = i
    return problems


def parse_config(raw: Any, *, base_dir: Path, checkers_dir: Path | None = None) -> Config:
    """Validate a decoded config document; ConfigError lists every problem found."""
    secrets = _secret_paths(raw)
    problems = list(secrets.values()) + _duplicate_ids(raw)
    folder, unusable = checkers_dir, False
    given = raw.get("checkers_dir") if isinstance(raw, dict) else None
    if folder is None and isinstance(given, str):
        unusable = path_text_problem(given) is not None
        folder = None if unusable else Path(os.path.abspath(base_dir / os.path.expanduser(given)))
    context = {"checkers_dir": folder or DEFAULT_CHECKERS_DIR, "checkers_dir_unusable": unusable}
    try:
        # strict: a number is a JSON number; pydantic's lax mode would read true as 1, false as 0
        # and "60" as 60 (for every numeric field, the market's included)
        config = Config.model_validate(raw, context=context, strict=True)
    except ValidationError as e:
        # Nothing under a secret's key is described: its message would show the value.
        problems.extend(_describe(err, _FIELDS) for err in e.errors(include_url=False)
                        if not _under(_path(_error_loc(err)), secrets) and not _text_branch_of_a_number(err))
        config = None
    if problems:
        raise ConfigError(sorted(dict.fromkeys(redact_secrets(p) for p in problems), key=_in_order))
    assert config is not None
    return config


# ---------------------------------------------------------------------------------------------
# The document: strict UTF-8 JSON, each problem at its JSON path


class _JsonObject(dict):  # type: ignore[type-arg]
    """A decoded JSON object that remembers the keys it saw more than once."""

    duplicates: tuple[str, ...] = ()


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    repeated = []
    for key, value in pairs:
        if key in obj:
            repeated.append(key)
        obj[key] = value
    obj.duplicates = tuple(dict.fromkeys(repeated))
    return obj


class _BadNumber:
    """A number literal no setting can hold, left in place so its JSON path can be named."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> int | _BadNumber:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:  # also keeps int() below Python's 4300-digit limit
        return _BadNumber(f"an integer of {digits} digits is far too large for any setting")
    return int(text)


def _parse_float(text: str) -> float | _BadNumber:
    value = float(text)
    if not math.isfinite(value):
        return _BadNumber(f"{_clip(text, 30)} is too large for a number (it overflows to infinity)")
    return value


def _parse_constant(text: str) -> _BadNumber:
    return _BadNumber(f"{text} is not a JSON number; use a finite number")


_SURROGATE = re.compile("[\udc80-\udcff]")


def _plain(node: Any, path: str, problems: list[str], undecodable: bool) -> Any:
    """``node`` as plain dicts and lists; each duplicate key, bad number and (when the
    bytes were not all UTF-8) undecodable string is added to ``problems`` at its JSON
    path. Depth is bounded by the caller."""
    if isinstance(node, dict):
        parent = path or "the top level"
        for key in getattr(node, "duplicates", ()):
            problems.append(f"{_join(path, key)}: key {_clip(repr(key), 60)} appears more than once in {parent}; "
                            "JSON keeps only the last, so the others would be ignored silently: keep one")
        out = {}
        for key, value in node.items():
            if undecodable and _SURROGATE.search(key):
                problems.append(f"{_join(path, key)}: this key is not valid UTF-8; save the file as UTF-8")
            out[key] = _plain(value, _join(path, key), problems, undecodable)
        return out
    if isinstance(node, list):
        return [_plain(item, _join(path, i), problems, undecodable) for i, item in enumerate(node)]
    if isinstance(node, _BadNumber):
        problems.append(f"{path or '(top level)'}: {node.reason}")
    elif undecodable and isinstance(node, str) and _SURROGATE.search(node):
        problems.append(f"{path or '(top level)'}: this text is not valid UTF-8; save the file as UTF-8")
    return node


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _too_deep(text: str) -> tuple[str, int] | None:
    """(JSON path, offset) of the first container nested deeper than MAX_JSON_DEPTH, found
    by a scan that never recurses (json itself would raise RecursionError near 1000)."""
    stack: list[list[Any]] = []  # per open container: [is_object, current key or index]
    expect_key = False
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == '"':
            if expect_key and stack:
                stack[-1][1] = tok[1:-1]
                expect_key = False
        elif tok in "[{":
            if len(stack) >= MAX_JSON_DEPTH:
                path = ""
                for is_object, key in stack:
                    path = _join(path, key if not is_object else (key or "?"))
                return path or "(top level)", m.start()
            stack.append([tok == "{", None if tok == "{" else 0])
            expect_key = tok == "{"
        elif tok in "]}":
            if stack:
                stack.pop()
            expect_key = False
        elif stack:  # a comma
            if stack[-1][0]:
                expect_key = True
            else:
                stack[-1][1] += 1
    return None


def _line_col(data: bytes | str, offset: int) -> str:
    nl = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(nl, 0, offset) + 1  # type: ignore[arg-type]
    return f"{line}:{offset - (data.rfind(nl, 0, offset) + 1) + 1}"  # type: ignore[arg-type]


_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _decode(data: bytes, where: Path) -> tuple[str, str | None]:
    """The text (bytes that are not UTF-8 kept as surrogate escapes, so the JSON path of the
    string holding them can be named), and where the first such byte is, or None."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise ConfigError([f"{where}: the file is {name}-encoded (it starts with a {name} byte-order mark); "
                               "save it as UTF-8"])
    data = data.removeprefix(codecs.BOM_UTF8)  # harmless, and some Windows editors write it
    encoding = json.detect_encoding(data)
    if encoding != "utf-8":
        raise ConfigError([f"{where}: the file looks {encoding.upper()}-encoded (it has NUL bytes between the "
                           "characters); save it as UTF-8"])
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        bad = f"{where}:{_line_col(data, e.start)}: byte 0x{data[e.start]:02x} is not valid UTF-8"
        return data.decode("utf-8", "surrogateescape"), bad


def read_document(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, strictly: UTF-8, no duplicate keys, no NaN or Infinity,
    bounded depth and numbers. ConfigError names each problem's JSON path (or line:column)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as e:
        raise ConfigError([f"{path}: config file not found; pass --config PATH (see config.demo.json)"]) from e
    except (OSError, ValueError) as e:
        raise ConfigError([f"{path}: cannot read config file: {getattr(e, 'strerror', None) or e}"]) from e
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: the file is larger than {MAX_CONFIG_BYTES // 1_048_576} MiB; "
                           "a config is a few kilobytes"])
    text, bad_utf8 = _decode(data, path)
    deep = _too_deep(text)
    if deep:
        raise ConfigError([f"{deep[0]}: nested more than {MAX_JSON_DEPTH} levels deep ({path}:"
                           f"{_line_col(text, deep[1])}); a config needs no more than 4"])
    try:
        raw = json.loads(text, object_pairs_hook=_object_from_pairs, parse_int=_parse_int,
                         parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as e:
        detail = f"; {bad_utf8}, save the file as UTF-8" if bad_utf8 else ""
        raise ConfigError([f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}{detail}"]) from None
    except RecursionError:  # the scan above makes this unreachable; kept as a last line of defence
        raise ConfigError([f"{path}: nested too deeply to read; a config needs no more than 4 levels"]) from None
    problems: list[str] = []
    raw = _plain(raw, "", problems, bad_utf8 is not None)
    if problems:
        raise ConfigError(sorted(dict.fromkeys(f"{p} ({bad_utf8})" if bad_utf8 and "UTF-8" in p else p
                                               for p in problems), key=_in_order))
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a JSON object, got {type(raw).__name__}"])
    return raw


def load_config(path: Path) -> Config:
    """Read and validate ``path``. Raises ConfigError (exit status 2) on any problem."""
    return parse_config(read_document(path), base_dir=path.resolve().parent)


def resolve_path(config_path: Path, value: str) -> Path:
    """A path from the config, relative to the config file's folder."""
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (config_path.resolve().parent / p)


def checkers_dir(config: Config, config_path: Path) -> Path:
    return resolve_path(config_path, config.checkers_dir) if config.checkers_dir else DEFAULT_CHECKERS_DIR


# ---------------------------------------------------------------------------------------------
# Start-up checks that need the file system (read only) and the environment


_PRINTABLE_TOKEN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")  # fullmatch


def status_problems(config: Config, env: Mapping[str, str]) -> list[str]:
    """The status server's bind and token, checked before anything starts. Never shows the token."""
    token = env.get(STATUS_TOKEN_ENV) or ""
    problems = []
    if token and not _PRINTABLE_TOKEN.fullmatch(token):
        problems.append(f"{STATUS_TOKEN_ENV}: the token must be printable ASCII with no space at either end, "
                        "or no HTTP client can send it (its value is not shown)")
    if not is_loopback_host(config.status.host) and not token:
        problems.append(f"status.host: binding the status server to {config.status.host} (not loopback) needs a "
                        f"bearer token: set {STATUS_TOKEN_ENV}, or bind to 127.0.0.1 or ::1")
    return problems


def notification_problems(config: Config, env: Mapping[str, str]) -> list[str]:
    """What the environment lacks for the configured notification channels (never a value)."""
    out = []
    n = config.notifications
    tg, wh = n.telegram, n.webhook
    if tg and n.enabled and not env.get(tg.token_env, "").strip():
        out.append(f"notifications.telegram: the environment variable {tg.token_env} (token_env) is not set; "
                   "set it to the bot token from @BotFather, or remove notifications.telegram")
    url = env.get(wh.url_env, "") if wh else ""
    if wh and not url.startswith(("http://", "https://")):
        out.append(f"notifications.webhook: the environment variable {wh.url_env} (url_env) is not set to an "
                   "http:// or https:// URL; set it to the webhook's URL, or remove notifications.webhook")
    elif wh and _url_problem(url):
        out.append(f"notifications.webhook: the environment variable {wh.url_env} (url_env) holds a malformed URL "
                   f"({_url_problem(url)}; the URL is not shown: it is the credential); fix it")
    return out


def _url_problem(url: str) -> str | None:
    """What makes an http(s) URL unusable (its host, its port), in words that do not quote it."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as e:
        return str(e).split(":")[0]
    return None if parts.hostname else "it names no host"


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):  # False on any OSError (a name too long, no permission)
            return candidate
    return Path("/")


def _fs_limits(path: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system ``path`` would be created on."""
    try:
        folder = _nearest_existing(path)
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return NAME_MAX_BYTES, PATH_MAX_BYTES


def _place_problem(path: Path, label: str, want: str, name_reserve: int = 0, total_reserve: int = 0,
                   example: str | None = None) -> str | None:
    """Why ``path`` cannot be used as a ``want`` ("file" or "folder"), looking without writing."""
    name_max, path_max = _fs_limits(path)
    problem = path_text_problem(str(path), name_reserve=name_reserve, total_reserve=total_reserve,
                                name_max=name_max, path_max=path_max)
    if problem:
        return f"{label}: {problem}"
    try:
        return _kind_problem(path, label, want, example)
    except OSError:  # cannot even look (no permission): opening it will say so
        return None


def output_problem(path: Path, label: str, example: str) -> str | None:
    """Why a report file cannot be written at ``path`` (looking, writing nothing): its name, a
    file or folder in the way, or a folder this user cannot write in. Missing folders are
    fine: the writer creates them (``write_output``)."""
    problem = _place_problem(path, label, "file", example=example)
    if problem is not None:
        return problem
    where = path if os.path.lexists(path) else _nearest_existing(path.parent)
    if not os.access(where, os.W_OK):
        return f"{label}: {where} is not writable by this user; choose another place for {path.name}"
    return None


def write_output(path: Path, text: str, label: str) -> None:
    """Write a report file (its folders created); GoTraderError saying where and why it failed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise GoTraderError(f"{label}: could not write {path}: {e.strerror or e}") from None


def _kind_problem(path: Path, label: str, want: str, example: str | None = None) -> str | None:
    found = _nearest_existing(path)
    if found != path:
        if not found.is_dir():
            return (f"{label}: {found} exists and is not a folder, so {path} cannot be created; "
                    "choose a path inside a folder")
        return None
    if want == "folder" and not path.is_dir():
        return f"{label}: {path} exists and is not a folder; choose a folder (it is created if missing)"
    if want == "file" and path.is_dir():
        return f"{label}: {path} is a folder; name a file in it, e.g. {path / (example or 'state.json')}"
    if want == "file" and path.is_symlink() and not path.exists():
        return f"{label}: {path} is a symbolic link to nothing ({os.readlink(path)}); name a real file"
    if want == "file" and not path.is_file():
        return f"{label}: {path} exists and is not a regular file (a device or a pipe?); name a file"
    return None


def _collision(config: Config, state_path: Path, log_dir: Path, state_label: str, log_label: str) -> str | None:
    if state_path == log_dir:
        return f"{state_label}: {state_path} is also the log folder ({log_label}); give them different paths"
    if state_path.parent != log_dir:
        return None
    name, stem = state_path.name, state_path.stem
    state_names = {name, f"{name}.last-good", f"{name}.lock", f"{name}.endpoint", f"{stem}.trades.jsonl",
                   f"{stem}.audit.jsonl", f"{stem}.markets-binance.json", f"{stem}.markets-binanceus.json"}
    backups = ["", *(f".{i}" for i in range(1, config.logging.backups + 1))]
    log_names = {f"{base}{n}" for base in ["scheduler.log", "events.jsonl", *(f"{s.id}.log" for s in config.strategies)]
                 for n in backups}
    clash = sorted(state_names & log_names)
    if clash:
        return (f"{state_label}: {state_path} is in the log folder and go-trader would write {log_dir / clash[0]} "
                "both as a log and as state; move the state file or the logs")
    return None


def check_startup(config: Config, config_path: Path, *, state_path: Path, log_dir: Path,
                  env: Mapping[str, str] | None = None, state_label: str = "state_file",
                  log_label: str = "log_dir") -> None:
    """Everything that can be known before start-up writes a file: each path is usable for what
    it will hold (looking, never writing), the paths do not collide and, with ``env``, the
    status server can bind. Raises ConfigError listing every problem (exit status 2).

    Whether the folders are writable is checked when the daemon opens them."""
    problems = [p for p in (
        _place_problem(state_path, state_label, "file", STATE_NAME_RESERVE_BYTES, STATE_NAME_RESERVE_BYTES),
        _place_problem(log_dir, log_label, "folder", 0, LOG_NAME_RESERVE_BYTES),
    ) if p]
    if not problems:
        problems += [p for p in [_collision(config, state_path, log_dir, state_label, log_label)] if p]
    root = getattr(config.market, "root", None)
    if isinstance(root, str):
        where = resolve_path(config_path, root)
        if os.path.lexists(where) and not where.is_dir():
            problems.append(f"market.root: {where} is not a folder; it must hold <exchange>/<BASE>_<QUOTE>-<tf>.csv "
                            "files (go-trader download-data writes them)")
        elif not os.path.lexists(where):
            problems.append(f"market.root: there is no folder {where}, so every check would fail; create it with "
                            f"go-trader download-data --root {where} --symbols ... --since YYYY-MM-DD, or fix the "
                            "path (a relative one is taken from the config's folder)")
    cache = getattr(config.market, "markets_cache", None)
    if isinstance(cache, str):
        place = _place_problem(resolve_path(config_path, cache), "market.markets_cache", "file", 16, 16)
        if place:
            problems.append(place)
    if env is not None:
        problems += status_problems(config, env) + notification_problems(config, env)
    if problems:
        raise ConfigError(problems)
