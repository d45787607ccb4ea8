"""The settings of each market-data source: the config's ``market`` section.

One model per source, used both by the config (scheduler.config) and by the
source itself, so a setting is defined once. pydantic only: importing this
never pulls in ccxt or numpy.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler.engine.errors import ConfigError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_MONTH_S = 30 * 86400.0  # upper bound of the age limits: beyond it a limit means nothing

#: the symbols the synthetic market models (market.synthetic refuses any other); here so a
#: config check can use it without importing numpy
SYNTHETIC_SYMBOLS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


class SyntheticSpec(_Spec):
    """The project's own seeded SYNTHETIC market (offline demo and tests)."""

    source: Literal["synthetic"]
    seed: int = Field(42, ge=0, le=2**32 - 1)  # numpy seeds are non-negative


class FilesSpec(_Spec):
    """Candles replayed from files laid out <root>/<exchange>/<BASE>_<QUOTE>-<tf>.csv[.gz];
    option chains from <options_root>/<options_exchange>/option_chains_daily_*.csv[.gz] and
    DVOL from <options_root>/<options_exchange>/<UNDERLYING>_DVOL-1d.csv (market.files_options)."""

    source: Literal["files"] = "files"
    root: str
    exchange: str = "binance"
    max_stale_candles: int = Field(2, ge=0, le=1000)  # newest closed candle may lag this many
    #: the folder holding <options_exchange>/ (default: root); a relative path is taken from
    #: root, so {"root": "data/ohlcv", "options_root": ".."} reads data/deribit/
    options_root: str | None = None
    options_exchange: Literal["deribit"] = "deribit"
    #: a daily snapshot older than this at the decision time is stale (the real files have one
    #: snapshot per UTC day, taken between 03:00 and 17:00, so up to 30 h apart)
    max_chain_age_s: float = Field(36 * 3600.0, gt=0, le=_MONTH_S)


class CcxtSpec(_Spec):
    """Live public data through ccxt (no API keys needed for paper trading)."""

    source: Literal["ccxt"] = "ccxt"
    exchange: Literal["binance", "binanceus"] = "binance"
    base_url: str | None = None  # e.g. "http://127.0.0.1:8765" for the local fake exchange
    #: the folder holding <options_exchange>/ (default: root); a relative path is taken from
    #: root, so {"root": "data/ohlcv", "options_root": ".."} reads data/deribit/
    options_root: str | None = None
    options_exchange: Literal["deribit"] = "deribit"
    options_base_url: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)
    retry_budget_s: float = Field(30.0, ge=0, le=600)
    max_retries: int = Field(4, ge=0, le=20)
    enable_rate_limit: bool = True  # ccxt's own request spacing
    max_stale_candles: int = Field(2, ge=0, le=1000)  # newest closed candle may lag this many
    max_price_age_s: float = Field(900.0, gt=0, le=_MONTH_S)  # older tickers count as "no price"
    max_chain_age_s: float = Field(900.0, gt=0, le=_MONTH_S)  # older option chains are stale
    #: where loaded markets are kept between processes (the scheduler sets it beside the state)
    markets_cache: str | None = None
    markets_max_age_s: float = Field(6 * 3600.0, gt=0, le=_MONTH_S)


MarketSpec = Annotated[SyntheticSpec | FilesSpec | CcxtSpec, Field(discriminator="source")]


def validate(model: type[_Spec], spec: Any) -> Any:
    """``spec`` (a dict) validated into ``model``; ConfigError names every bad key."""
    try:
        return model.model_validate(dict(spec))
    except ValidationError as e:
        raise ConfigError([f"market.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                           for err in e.errors()]) from e
