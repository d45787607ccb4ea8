"""The 22-strategy deployment (config.demo.json's shape) and its fetch step, shared by the
call-count test and bench/bench_fetch.py.

``fetch_cycle`` is the batched fetch (``market.prefetch.prefetch``): markets once, candles
once per unique (symbol, timeframe), one ticker batch, and per options underlying one
chain and one DVOL call (plus the contract values with the markets).
``fetch_baseline`` is the original's way: every strategy fetches for itself with a
fresh client (so it also reloads the markets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Strategy:
    id: str
    type: str  # "spot" | "options"
    name: str
    symbol: str  # spot symbol, or options underlying
    timeframe: str = ""
    symbol_b: str | None = None


def deployment_22() -> list[Strategy]:
    """momentum, volume_weighted, rsi on BTC/SOL/ETH 1h; macd on BTC/ETH 1h; pairs_spread
    BTC/ETH, BTC/SOL, ETH/SOL 1d; four options strategies on BTC and on ETH."""
    out = []
    for name in ("momentum", "volume_weighted", "rsi"):
        for base in ("BTC", "SOL", "ETH"):
            out.append(Strategy(f"{name}-{base.lower()}", "spot", name, f"{base}/USDT", "1h"))
    for base in ("BTC", "ETH"):
        out.append(Strategy(f"macd-{base.lower()}", "spot", "macd", f"{base}/USDT", "1h"))
    for a, b in (("BTC", "ETH"), ("BTC", "SOL"), ("ETH", "SOL")):
        out.append(
            Strategy(
                f"pairs-{a.lower()}-{b.lower()}",
                "spot",
                "pairs_spread",
                f"{a}/USDT",
                "1d",
                f"{b}/USDT",
            )
        )
    for name in ("momentum_options", "vol_mean_reversion", "protective_puts", "covered_calls"):
        for u in ("BTC", "ETH"):
            out.append(Strategy(f"{name}-{u.lower()}", "options", name, u))
    assert len(out) == 22
    return out


OPTIONS_CANDLES_TF = {"momentum_options": "4h"}  # ROC(14) on 4h candles


def candle_pairs(strategy: Strategy) -> list[tuple[str, str]]:
    if strategy.type == "spot":
        syms = [strategy.symbol] + ([strategy.symbol_b] if strategy.symbol_b else [])
        return [(s, strategy.timeframe) for s in syms]
    tf = OPTIONS_CANDLES_TF.get(strategy.name)
    return [(f"{strategy.symbol}/USDT", tf)] if tf else []


def plan(strategies: list[Strategy]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(unique candle pairs, price symbols, options underlyings), in first-seen order."""
    pairs = list(dict.fromkeys(p for s in strategies for p in candle_pairs(s)))
    prices = list(
        dict.fromkeys(
            sym
            for s in strategies
            if s.type == "spot"
            for sym in [s.symbol] + ([s.symbol_b] if s.symbol_b else [])
        )
    )
    unders = list(dict.fromkeys(s.symbol for s in strategies if s.type == "options"))
    return pairs, prices, unders


def expected_calls(strategies: list[Strategy], *, markets_loaded: bool) -> int:
    """The target: unique pairs + one ticker batch + (markets load) + 2 options calls
    (chain, DVOL) per underlying + (the options contract values, loaded with the markets)."""
    pairs, _, unders = plan(strategies)
    return len(pairs) + 1 + (0 if markets_loaded else 1 + len(unders)) + 2 * len(unders)


def fetch_cycle(
    source: Any, strategies: list[Strategy], *, now_ms: int, cache_dir: Path, limit: int = 500
) -> str:
    """One batched fetch step, as the scheduler runs it (market.prefetch), options included.
    Returns "prefetch"."""
    from market.prefetch import prefetch

    pairs, prices, unders = plan(strategies)
    cache_dir.mkdir(parents=True, exist_ok=True)  # the scheduler creates each cycle's folder
    prefetch(source, pairs, prices, now_ms, cache_dir, limit=limit, options_source=source,
             option_underlyings=unders)
    return "prefetch"


def fetch_baseline(
    make_source: Callable[[], Any], strategies: list[Strategy], *, now_ms: int, limit: int = 500
) -> None:
    """The one-fetch-per-strategy baseline: each strategy's checker builds its own client
    (reloading markets), fetches its candles and its price, or its options data."""
    for s in strategies:
        with make_source() as src:
            if s.type == "spot":
                syms = [s.symbol] + ([s.symbol_b] if s.symbol_b else [])
                src.fetch_market_rules(syms)
                for sym, tf in candle_pairs(s):
                    src.fetch_candles(sym, tf, now_ms=now_ms, limit=limit)
                src.fetch_prices(syms, now_ms=now_ms)
            else:
                for sym, tf in candle_pairs(s):
                    src.fetch_candles(sym, tf, now_ms=now_ms, limit=limit)
                src.fetch_option_chain(s.symbol, now_ms=now_ms)
                src.fetch_dvol(s.symbol, start_ms=now_ms - 365 * DAY_MS, end_ms=now_ms)
