#!/usr/bin/env python3
"""Options checker: one options strategy on one underlying -> one JSON signal.

    python3 checkers/check_options.py protective_puts BTC --config config.demo.json
    python3 checkers/check_options.py covered_calls BTC '[]' --spot-held 0.5
    echo '{"positions": [], "spot_held": 0}' | python3 checkers/check_options.py wheel ETH

Open option positions come on stdin from the scheduler (argv is visible to every user
and has a size limit): a JSON list of positions, or ``{"positions": [...], "spot_held":
coin}``. For manual runs they may be the third argument instead. A position is
``{"id", "instrument", "side": "long"|"short", "quantity", "entry_premium_coin",
"delta"}``; ``id`` defaults to the instrument, ``delta`` (per contract, unsigned by side)
to the chain's quote of the instrument. ``spot_held`` is the sleeve's coin (from a
wheel's assignment), which covers sold calls.

It reads the underlying's option chain (mark, bid, ask, mark IV, greeks, the forward),
the index as the spot price, DVOL for the IV rank (a realized-vol percentile of the daily
closes of ``<UNDERLYING>/USDT`` where there is no DVOL, labelled as such), and for
momentum_options the 4h closes, then asks options.strategies.propose. It prints
``{strategy, underlying, signal, spot_price, actions, iv_rank, iv_rank_source,
indicators, timestamp, source, skip_reason?}``: ``signal`` is 1 when it proposes legs,
else 0 with ``skip_reason`` ("CODE: why"). Every action says how it was priced
(``pricing``: "quote", or "model: mark_iv" / "model: realized_vol"), its score and the
score's reasons. On failure it prints the document with ``error`` and ``error_class``
and exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

from checkers import common  # noqa: E402
from options import OPTIONS_STRATEGIES, UNDERLYINGS  # noqa: E402
from scheduler.engine.timeframes import DAY_MS  # noqa: E402

#: daily closes read for the realized-vol fallback and the realized vol of model prices
DAILY_BARS = 400
RANKED = ("vol_mean_reversion", "butterfly")  # the strategies that read the IV rank
RANK_WINDOW_DAYS = 366
DROPPED_SHOWN = 5  # implausible quotes named in the output (all are counted)


def read_positions(raw: str, where: str = "the positions document") -> tuple[list[dict[str, Any]], float]:
    """(positions, spot_held) from the stdin/argv document; ValueError says what is wrong and where."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{where} is not JSON ({e}); expected a JSON list of positions or "
                         '{"positions": [...], "spot_held": coin}, e.g. \'[]\'') from e
    spot_held: Any = 0.0
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - {"positions", "spot_held"})
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
                             "expected 'positions' and 'spot_held'")
        positions, spot_held = doc.get("positions", []), doc.get("spot_held", 0.0)
    else:
        positions = doc
    if not isinstance(positions, list) or not all(isinstance(p, dict) for p in positions):
        raise ValueError(f"{where}: positions must be a JSON list of objects, got {str(positions)[:80]}")
    return positions, check_spot_held(spot_held, f"{where}: spot_held")


def check_spot_held(value: Any, where: str) -> float:
    """``value`` as a coin amount: a finite number >= 0, else ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} {value!r}; expected a finite coin amount >= 0 (the coin the sleeve holds)")
    return float(value)


def read_params(raw: str) -> dict[str, Any]:
    """The ``--params`` overrides: a JSON object, else ValueError saying so."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"--params is not JSON ({e}); expected an object such as '{{\"quantity\": 0.2}}'") from e
    if not isinstance(doc, dict):
        raise ValueError(f"--params must be a JSON object of name: value, got {type(doc).__name__} {raw[:80]!r}; "
                         "e.g. '{\"quantity\": 0.2}'")
    return doc


def held_options(positions: list[dict[str, Any]], chain: Any, now_ms: int | None = None,
                 spot_usd: float | None = None) -> tuple[Any, ...]:
    """The positions as options.scoring.HeldOption. A missing delta comes from the chain's
    quote; where the quote carries none, from Black-76 (options.chain_greeks.model_delta: at
    its mark IV, else at the vol its mark implies); an expired position awaiting settlement
    (no longer listed) takes its intrinsic delta at the spot."""
    from options.chain import OptionQuote, parse_instrument_name
    from options.chain_greeks import model_delta
    from options.scoring import HeldOption

    allowed = {"id", "instrument", "side", "quantity", "entry_premium_coin", "delta"}
    now = chain.now_ms if now_ms is None else now_ms
    out = []
    for i, p in enumerate(positions):
        where = f"position {i} ({p.get('instrument', '?')})"
        unknown = sorted(set(p) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected {sorted(allowed)}")
        for key in ("instrument", "side", "quantity"):
            if key not in p:
                raise ValueError(f"{where}: {key!r} is missing")
        if not isinstance(p["instrument"], str):
            raise ValueError(f"{where}: instrument must be a Deribit name such as 'BTC-27MAR26-70000-C'")
        spec = parse_instrument_name(p["instrument"])
        if spec.underlying != chain.underlying:
            raise ValueError(f"{where}: an option on {spec.underlying}, but this checker runs {chain.underlying}: "
                             f"wrong underlying; pass only the sleeve's {chain.underlying} positions")
        delta = p.get("delta")
        if delta is None:
            quote = chain.find(p["instrument"])
            if quote is not None:
                delta = quote.delta
                if delta is None:
                    model = model_delta(quote, now, chain.index_price)
                    if model is None:
                        raise ValueError(
                            f"{where}: listed, but its quote has no delta and no mark IV, and its mark "
                            f"{quote.mark!r} coin implies no volatility (forward {quote.underlying_price!r}, index "
                            f"{chain.index_price!r}): no delta to score it with; give 'delta'")
                    delta = model[0]
            elif spec.expiry_ms <= now and spot_usd is not None:  # expired, awaiting its delivery price
                expired = OptionQuote(p["instrument"], spec.underlying, spec.expiry_ms, spec.strike, spec.option_type)
                delta = model_delta(expired, now, spot_usd)[0]  # type: ignore[index]
            else:
                raise ValueError(f"{where}: no delta given and the instrument is not in the {chain.underlying} chain "
                                 f"({len(chain.quotes)} quotes, none expired at {common.iso_ms(now)}): it is not "
                                 "listed; give 'delta'")
        out.append(HeldOption(id=str(p.get("id", p["instrument"])), instrument=p["instrument"],
                              option_type=spec.option_type, strike=spec.strike, expiry_ms=spec.expiry_ms,
                              side=p["side"], quantity=p["quantity"],
                              entry_premium=p.get("entry_premium_coin", 0.0), delta=delta))
    return tuple(out)


class UsageError(ValueError):
    """A bad command line: reported as the checker's one JSON document, not argparse's exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        raise UsageError(f"{message}; usage: {usage}")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("strategy", help=f"one of {', '.join(OPTIONS_STRATEGIES)}")
    parser.add_argument("underlying", help=f"one of {', '.join(UNDERLYINGS)}")
    parser.add_argument("positions_json", nargs="?", help="JSON list of open option positions (manual runs)")
    parser.add_argument("--params", default="{}", help="JSON object of parameter overrides")
    parser.add_argument("--spot-held", type=float, help="coin the sleeve holds (manual runs; default 0)")
    common.add_context_args(parser)
    try:
        args = parser.parse_args(argv)
    except UsageError as e:  # still exactly one JSON document, naming what was wrong
        common.fail({"strategy": None, "underlying": None, "signal": 0, "spot_price": None, "actions": [],
                     "iv_rank": None}, e)
    doc: dict[str, Any] = {"strategy": args.strategy, "underlying": args.underlying, "signal": 0,
                           "spot_price": None, "actions": [], "iv_rank": None}
    with common.reporting(doc) as keep:
        now_ms = common.now_ms(args)
        doc["timestamp"] = common.iso_ms(now_ms)
        if args.strategy not in OPTIONS_STRATEGIES:
            raise ValueError(f"unknown options strategy {args.strategy!r}; expected one of "
                             f"{', '.join(OPTIONS_STRATEGIES)}")
        if args.underlying not in UNDERLYINGS:
            raise ValueError(f"underlying {args.underlying!r} has no options here; expected one of "
                             f"{', '.join(UNDERLYINGS)}")
        from options.params import validate_params

        params = validate_params(args.strategy, read_params(args.params), underlying=args.underlying)
        from_argv = args.positions_json is not None
        raw = args.positions_json if from_argv else (
            "[]" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read() or "[]")
        positions, spot_held = read_positions(raw, "the positions argument" if from_argv else "the positions on stdin")
        if args.spot_held is not None:
            spot_held = check_spot_held(args.spot_held, "--spot-held")
        from market.base import stale_limit

        source = keep(common.open_market(args, options=True))
        doc.update(decide(args.strategy, args.underlying, params, positions, spot_held, source, now_ms,
                          stale_limit(common.market_spec(args))))
    return 0


def decide(strategy: str, underlying: str, params: Any, positions: list[dict[str, Any]], spot_held: float,
           source: Any, now_ms: int, max_stale: int | None = None) -> dict[str, Any]:
    """Read the cycle's market for one decision and propose; the document's fields. Candles
    more than ``max_stale`` bars behind the clock (the market's ``max_stale_candles``; None:
    the default) fail the check."""
    from market.base import MAX_STALE_CANDLES, check_fresh
    from options.strategies import StrategyInputs, propose, roc_last_two

    stale = MAX_STALE_CANDLES if max_stale is None else max_stale
    chain = source.fetch_option_chain(underlying, now_ms=now_ms)
    spot = chain.index_price
    spot_source = "index"
    if spot is None:
        spot = source.fetch_prices([f"{underlying}/USDT"], now_ms=now_ms).get(f"{underlying}/USDT")
        spot_source = f"{underlying}/USDT"
    if spot is None:
        from scheduler.engine.errors import DataError

        raise DataError(f"no index price for {underlying} and no {underlying}/USDT price: "
                                   "nothing to size strikes on")
    held = held_options(positions, chain, now_ms, float(spot))
    daily = None

    def closes_1d() -> Any:
        nonlocal daily
        if daily is None:
            candles = source.fetch_candles(f"{underlying}/USDT", "1d", now_ms=now_ms, limit=DAILY_BARS)
            check_fresh(candles, now_ms, stale)
            daily = candles
        return daily

    rank_doc: dict[str, Any] = {"iv_rank": None, "iv_rank_source": None}
    rank_pct, rank_note = None, ""
    if strategy in RANKED:
        rank = _iv_rank(source, underlying, now_ms, closes_1d)
        if hasattr(rank, "value_pct"):
            rank_pct, rank_note = rank.value_pct, rank.label + (
                f" (DVOL not used: {rank.fallback_reason})" if rank.fallback_reason else "")
            rank_doc = {"iv_rank": rank.value_pct, "iv_rank_source": rank.label}
        else:
            rank_note = f"{rank.method}: {rank.reason}: {rank.detail}"
            rank_doc = {"iv_rank": None, "iv_rank_source": rank_note}
    roc_now = roc_prev = None
    if strategy == "momentum_options":
        c4h = source.fetch_candles(f"{underlying}/USDT", "4h", now_ms=now_ms, limit=max(60, params.roc_period + 2))
        check_fresh(c4h, now_ms, stale)
        roc = roc_last_two(c4h.close, params.roc_period)
        roc_now, roc_prev = roc if roc is not None else (None, None)
    realized = None
    if any(q.mark_iv_pct is None for q in chain.quotes):  # only a quote without IV is priced on realized vol
        realized = _realized_vol(closes_1d())
    inputs = StrategyInputs(chain=chain, spot_usd=float(spot), now_ms=now_ms, positions=held, spot_held=spot_held,
                            iv_rank_pct=rank_pct, iv_rank_note=rank_note, roc_pct=roc_now, prev_roc_pct=roc_prev,
                            realized_vol=realized)
    result = propose(strategy, inputs, params)
    indicators = {**result.indicators, "spot_source": spot_source, "chain_quotes": len(chain.quotes),
                  "chain_asof": common.iso_ms(chain.asof_ms) if chain.asof_ms else None}
    dropped = getattr(chain, "dropped", ())
    if dropped:  # implausible quotes the source refused (options.chain.screen_quotes): say so, never hide it
        indicators["chain_dropped"] = len(dropped)
        indicators["chain_dropped_reasons"] = list(dropped[:DROPPED_SHOWN])
        print(f"{underlying}: {len(dropped)} implausible quote(s) dropped from the chain: "
              + "; ".join(dropped[:DROPPED_SHOWN]), file=sys.stderr)
    out = {"signal": 1 if result.actions() else 0, "spot_price": float(spot), "actions": result.actions(),
           **rank_doc, "indicators": indicators, "source": getattr(source, "name", None),
           "timestamp": common.iso_ms(now_ms)}
    if result.skip_reason:
        out["skip_reason"] = result.skip_reason
    return out


def _iv_rank(source: Any, underlying: str, now_ms: int, closes_1d: Any) -> Any:
    """The DVOL rank; the realized-vol percentile (labelled) only where the source has no
    DVOL at all for the underlying: an empty history, the documented absence (ETH on the
    files source). A DVOL that exists but cannot be read (a corrupt file, a recorded fetch
    error, a transient failure) fails the check: ranking on another measure instead would
    trade on a number the strategy was never tuned to (a DVOL rank of 44 read as a
    realized-vol percentile of 99 sells a strangle). A DVOL too short or too stale to rank
    is no rank (the strategy skips NO_IV_RANK), for the same reason."""
    from options.ivrank import iv_rank, iv_rank_from_dvol
    from scheduler.engine.errors import DataError, ExchangeError, TransientExchangeError

    try:
        # the trailing year and a day: within what the fetch step cached (market.prefetch.DVOL_DAYS)
        dvol = source.fetch_dvol(underlying, start_ms=now_ms - RANK_WINDOW_DAYS * DAY_MS, end_ms=now_ms)
    except TransientExchangeError:
        raise  # the next cycle tries again
    except ExchangeError as e:
        raise DataError(f"the DVOL of {underlying} is unusable, so no IV rank and no trade: {e}") from e
    if dvol:
        try:
            return iv_rank_from_dvol(dvol, now_ms, bar_ms=DAY_MS)
        except ValueError as e:  # malformed history (duplicate days, non-finite times)
            raise DataError(f"the DVOL of {underlying} is malformed, so no IV rank and no trade: {e}") from e
    candles = closes_1d()
    closes = list(zip(candles.ts_ms.tolist(), candles.close.tolist(), strict=True))
    rank = iv_rank(now_ms, dvol=None, closes=closes, bar_ms=DAY_MS)
    if hasattr(rank, "value_pct"):
        name = getattr(source, "name", None) or "the market source"
        return dataclasses.replace(rank, fallback_reason=f"{name} has no DVOL history for {underlying}")
    return rank


def _realized_vol(candles: Any, window: int = 30) -> float | None:
    """Annualised close-to-close vol of the last ``window`` daily log returns (decimal)."""
    import numpy as np

    c = np.asarray(candles.close[-(window + 1):], dtype=np.float64)
    if c.size < window + 1 or not np.all(np.isfinite(c) & (c > 0)):
        return None
    vol = float(np.std(np.diff(np.log(c)), ddof=1) * np.sqrt(365.0))
    return vol if np.isfinite(vol) and vol > 0 else None


if __name__ == "__main__":
    sys.exit(main())
