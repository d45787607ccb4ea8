"""The options part of a daemon cycle: what to fetch, what a checker is told, and what the
engine gets (standard library only: the daemon never imports numpy).

- Fetch plan: every due options strategy needs its underlying's chain (with the index and
  DVOL), the daily closes of ``<UND>/USDT`` (realized-vol IV rank where there is no DVOL,
  and model prices for quotes without IV) and, for momentum_options, its 4h closes. Every
  sleeve holding options needs its underlying's chain every cycle (marks, greeks, margin,
  the theta harvest), due or not; a sleeve holding spot from an assignment needs its price.
  Held positions past their expiry ask the fetch step for their delivery price.
- The checker's stdin: ``{"positions": [...], "spot_held": coin}`` (checkers/check_options.py).
- The engine's inputs: an ``OptionMark`` per instrument held or proposed, from the cycle's
  cached chains; the index per underlying; delivery prices by expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from market.options_cache import quote_from_json, read_quotes
from scheduler.config import Config, StrategyConfig
from scheduler.engine.models import Sleeve, State, utc_from_ms
from scheduler.engine.option_book import expiry_ms
from scheduler.engine.option_fills import OptionIntent, OptionLeg, OptionMark, OptionRules
from scheduler.signals import OptionsSignal


def spot_symbol(underlying: str) -> str:
    """The spot market of an underlying (assignments deliver into it; realized vol reads it)."""
    return OptionRules().spot_symbol.format(underlying=underlying)


def underlying_of(s: StrategyConfig) -> str:
    return s.args[1]


def fetch_needs(config: Config, state: State, due: Sequence[StrategyConfig], now: datetime
                ) -> tuple[set[tuple[str, str]], set[str], list[str], dict[str, list[int]]]:
    """(pairs, price symbols, option underlyings, deliveries) the options side of a cycle needs."""
    pairs: set[tuple[str, str]] = set()
    prices: set[str] = set()
    unders: dict[str, None] = {}
    for s in due:
        if s.type != "options":
            continue
        u = underlying_of(s)
        unders[u] = None
        pairs.add((spot_symbol(u), "1d"))
        prices.add(spot_symbol(u))
        if s.strategy_name == "momentum_options":
            pairs.add((spot_symbol(u), "4h"))
    now_ms = round(now.timestamp() * 1000)
    deliveries: dict[str, set[int]] = {}
    for s in config.strategies:
        sleeve = state.sleeves.get(s.id)
        if sleeve is None or s.type != "options":
            continue
        for pos in sleeve.option_positions:
            unders[pos.underlying] = None
            if expiry_ms(pos) <= now_ms:
                deliveries.setdefault(pos.underlying, set()).add(expiry_ms(pos))
    return pairs, prices, list(unders), {u: sorted(e) for u, e in sorted(deliveries.items())}


def checker_stdin(s: StrategyConfig, sleeve: Sleeve) -> dict[str, Any]:
    """What check_options.py reads on stdin: the sleeve's open options and its coin."""
    positions = []
    for p in sleeve.option_positions:
        doc: dict[str, Any] = {"id": p.id, "instrument": p.instrument, "side": p.side, "quantity": p.quantity,
                               "entry_premium_coin": p.entry_premium_coin}
        if "delta" in p.greeks:  # else the checker takes it from the chain
            doc["delta"] = p.greeks["delta"]
        positions.append(doc)
    spot = sleeve.positions.get(spot_symbol(underlying_of(s)))
    return {"positions": positions, "spot_held": spot.quantity if spot is not None else 0.0}


def intent(strategy_id: str, underlying: str, signal: OptionsSignal) -> OptionIntent | None:
    """The engine's intent for a checker's proposal (its entry legs fill together or not at all)."""
    if not signal.actions:
        return None
    legs = tuple(
        OptionLeg(action=a.action, instrument=a.instrument, underlying=underlying, option_type=a.option_type,
                  strike=a.strike, expiry_ms=a.expiry_ms, quantity=a.quantity,
                  covered_quantity=a.covered_quantity or 0.0, assign=a.assign, position_id=a.position_id,
                  score=a.score, score_reason=a.score_reason)
        for a in signal.actions)
    return OptionIntent(strategy_id, legs)


def wanted_instruments(state: State, intents: Iterable[OptionIntent]) -> set[str]:
    held = {p.instrument for sl in state.sleeves.values() for p in sl.option_positions}
    return held | {leg.instrument for i in intents for leg in i.legs}


def read_marks(cache_dir: Path, underlyings: Iterable[str], instruments: set[str]
               ) -> tuple[dict[str, OptionMark], dict[str, float]]:
    """(quotes by instrument, index by underlying) from the cycle's cached chains. A quote
    is as of its chain's ``asof_ms`` (when the exchange gave it), else the fetch time."""
    quotes: dict[str, OptionMark] = {}
    index: dict[str, float] = {}
    for u in underlyings:
        read = read_quotes(cache_dir, u, instruments) if u.isalnum() else None
        if read is None:
            continue
        head, rows = read
        if isinstance(head.get("index_price"), (int, float)) and head["index_price"] > 0:
            index[u] = float(head["index_price"])
        at = utc_from_ms(head.get("asof_ms") or head["now_ms"])
        for q in rows:
            quotes[q["instrument"]] = OptionMark.from_quote(quote_from_json(q), at, index.get(u))
    return quotes, index


def delivery_prices(fetched: Mapping[str, Any]) -> tuple[dict[str, dict[int, float]], dict[tuple[str, int], str]]:
    """(prices by underlying and expiry, how each was had) from the fetch step's ``deliveries``."""
    prices: dict[str, dict[int, float]] = {}
    methods: dict[tuple[str, int], str] = {}
    for u, by_expiry in (fetched.get("deliveries") or {}).items():
        for key, entry in (by_expiry or {}).items():
            if isinstance(entry, Mapping) and entry.get("ok") and isinstance(entry.get("price"), (int, float)) \
                    and str(key).isdigit():
                prices.setdefault(u, {})[int(key)] = float(entry["price"])
                methods[(u, int(key))] = str(entry.get("method") or "unknown")
    return prices, methods


def delivery_failures(fetched: Mapping[str, Any]) -> list[str]:
    """One line per delivery price the fetch step could not get."""
    out = []
    for u, by_expiry in (fetched.get("deliveries") or {}).items():
        for key, entry in (by_expiry or {}).items():
            if isinstance(entry, Mapping) and not entry.get("ok"):
                try:
                    when = datetime.fromtimestamp(int(key) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
                except (ValueError, OverflowError, OSError):
                    when = repr(key)
                out.append(f"delivery price of {u} at {when}: {entry.get('error')}")
    return out
