"""SYNTHETIC Deribit-style option chains over the project's synthetic spot market.

Nothing here is real market data: every chain comes from ``SyntheticOptions``
(``source = "synthetic"``), priced by the project's own Black-76 model. It gives
demos and tests an options market without a network, and implements the
OptionsSource protocol of market/options_data.py.

The model, a pure function of (seed, underlying, now_ms):

- Index: the close of the last closed 5-minute candle of ``<UNDERLYING>/USDT`` in
  ``market.synthetic.SyntheticSource(seed)``, the same prices the spot strategies see.
  Rate 0, so the forward (``underlying_price``) equals the index.
- Volatility level (the 30-day ATM vol) per UTC day: realized vol of the last 7 days of
  4h returns closed at the day's start, blended in log with the symbol's long-run vol,
  times a seeded daily variance-risk premium. It changes once a day, at 00:00 UTC.
- DVOL close of day D = that level at the end of D (in vol points), so IV rank from
  ``fetch_dvol`` agrees with the chains.
- Term structure: ATM vol moves from the 30-day level towards the long-run vol with a
  mean-reversion factor (1 - e^{-kT}) / (kT), k = 4 per year.
- Smile in x = 2.5 tanh(ln(K/F) / sqrt(T) / 2.5) (so the wings flatten smoothly; a hard
  cap would put a kink in the smile and a butterfly arbitrage at it): vol = atm + skew x
  + convexity x^2, with a seeded skew and convexity per day.
- Expiries (all Fridays 08:00 UTC, as Deribit): the next 4 Fridays, the last Fridays of
  the next 3 months, the last Fridays of the next 4 quarter months (Mar/Jun/Sep/Dec).
- Expiries leave the chain in their last hour (Deribit lists them to 08:00; here they are
  intrinsic to 1e-10 by then); ``fetch_quote`` still prices them. There is no exchange
  delivery price: settlement (market.prefetch) uses the mean of the synthetic 5m closes
  07:30-08:00 UTC.
- Strikes: multiples of a round step (about 1.25 % of spot for weeklies, 2.5 % monthlies,
  5 % quarterlies; doubled while more than 80 strikes) from exp(-3 s) to exp(+3.5 s)
  around the forward, s = atm vol sqrt(T), at least 2 steps each side, within 0.2x..3x. An off-grid instrument can still be priced with ``fetch_quote``.
- Marks in coin (USD Black-76 price / forward, as Deribit's inverse options: checked on
  real rows, the mark is the USD value over ``underlying_price``); bid/ask a spread of
  3 % of the mark each side (at least one 0.0001 tick), rounded outward to the tick;
  no bid when it would be <= 0. Greeks as Deribit's ticker: USD-based Black-76 forward
  greeks (delta, gamma per USD, theta USD per day, vega USD per vol point).
"""

from __future__ import annotations

import math
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np

from market.synthetic import ORIGIN_MS, SyntheticSource
from options import UNDERLYINGS
from options.chain import (
    EXPIRY_HOUR_UTC,
    OptionChain,
    OptionQuote,
    default_contract,
    format_instrument_name,
    parse_instrument_name,
)
from options.pricing import black76_greeks, black76_price, year_fraction
from scheduler.engine.errors import DataError, PermanentExchangeError
from scheduler.engine.timeframes import DAY_MS

TICK = 0.0001  # coin; Deribit's tick for BTC and ETH options
LAST_HOUR_MS = 3_600_000  # expiries leave the synthetic chain an hour before 08:00
_LONG_RUN_VOL = {"BTC": 0.55, "ETH": 0.70}
_MEAN_REVERSION_PER_YEAR = 4.0
_RV_BARS = 42  # 7 days of 4h returns
_SPREAD_FRAC = 0.03


class SyntheticOptions:
    """OptionsSource over the synthetic market (SYNTHETIC data). Deterministic per seed."""

    source = "synthetic"
    name = "synthetic"

    def __init__(self, seed: int = 42) -> None:
        self.seed = int(seed)
        self._spot = SyntheticSource(self.seed)
        self._last_now_ms: int | None = None
        self._day_levels: dict[tuple[str, int], float] = {}

    # --- OptionsSource ---

    def fetch_option_chain(self, underlying: str, *, now_ms: int) -> OptionChain:
        """Every listed option of ``underlying`` at ``now_ms`` (see the module docstring)."""
        spot = self._index(underlying, now_ms)
        self._last_now_ms = now_ms
        level = self._level_today(underlying, now_ms)
        grid: list[tuple[int, np.ndarray]] = []
        for expiry_ms, step_frac in _listed_expiries(now_ms):
            t = year_fraction(now_ms, expiry_ms)
            atm = _atm_vol(underlying, level, t)
            grid.append((expiry_ms, _strike_grid(spot, atm * math.sqrt(t), step_frac)))
        quotes = self._quotes(underlying, now_ms, grid, spot, level)
        return OptionChain(underlying, now_ms, spot, tuple(quotes), asof_ms=now_ms,
                           contract=default_contract(underlying))

    def fetch_option_chain_of(self, underlying: str, instruments: set[str], *, now_ms: int) -> OptionChain:
        """``fetch_option_chain``'s chain with only the quotes of ``instruments`` (those it
        lists): the same numbers, without pricing the hundreds of others (a replay marking the
        legs it holds between its strategies' checks asks this every hour)."""
        spot = self._index(underlying, now_ms)
        level = self._level_today(underlying, now_ms)
        wanted: dict[int, set[float]] = {}
        for name in instruments:
            try:
                spec = parse_instrument_name(name)
            except ValueError:
                continue
            if spec.underlying == underlying:
                wanted.setdefault(spec.expiry_ms, set()).add(spec.strike)
        grid: list[tuple[int, np.ndarray]] = []
        for expiry_ms, step_frac in _listed_expiries(now_ms):
            if expiry_ms not in wanted:
                continue
            t = year_fraction(now_ms, expiry_ms)
            strikes = _strike_grid(spot, _atm_vol(underlying, level, t) * math.sqrt(t), step_frac)
            grid.append((expiry_ms, strikes[np.isin(strikes, sorted(wanted[expiry_ms]))]))
        quotes = [q for q in self._quotes(underlying, now_ms, grid, spot, level) if q.instrument in instruments]
        return OptionChain(underlying, now_ms, spot, tuple(quotes), asof_ms=now_ms,
                           contract=default_contract(underlying))

    def fetch_index_price(self, underlying: str, *, now_ms: int | None = None) -> float | None:
        """The synthetic index at ``now_ms``; without ``now_ms``, at the time of the last
        chain fetched (the protocol carries no time); None before any chain, or before
        the synthetic market's first candle."""
        when = now_ms if now_ms is not None else self._last_now_ms
        if when is None:
            return None
        try:
            return self._index(underlying, when)
        except DataError:
            return None

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Daily ``(day open ts_ms, close)`` of the synthetic DVOL (30-day ATM vol, vol
        points) for days within ``[start_ms, end_ms]`` that had closed by ``end_ms``."""
        _check_underlying(underlying)
        first = max(-(-start_ms // DAY_MS) * DAY_MS, ORIGIN_MS)
        last = (end_ms // DAY_MS) * DAY_MS - DAY_MS  # the last day closed by end_ms
        if last < first:
            return []
        days = np.arange(first, last + DAY_MS, DAY_MS, dtype=np.int64)
        levels = self._levels(underlying, days + DAY_MS)
        return [(int(d), round(float(v) * 100.0, 2)) for d, v in zip(days, levels, strict=True)]

    def close(self) -> None:
        """Nothing to release (the same shape as the other sources)."""

    # --- extra ---

    def fetch_quote(self, instrument: str, *, now_ms: int) -> OptionQuote | None:
        """Price any well-formed, unexpired instrument at ``now_ms``, on the chain's grid or
        not (a held strike the grid has drifted away from); None once expired."""
        spec = parse_instrument_name(instrument)
        if spec.expiry_ms <= now_ms:
            return None
        spot = self._index(spec.underlying, now_ms)
        level = self._level_today(spec.underlying, now_ms)
        quotes = self._quotes(spec.underlying, now_ms, [(spec.expiry_ms, np.array([spec.strike]))], spot, level)
        return next(q for q in quotes if q.option_type == spec.option_type)

    # --- model ---

    def _index(self, underlying: str, now_ms: int) -> float:
        _check_underlying(underlying)
        price = self._spot.fetch_prices([f"{underlying}/USDT"], now_ms=now_ms)[f"{underlying}/USDT"]
        if price is None:
            raise DataError(f"synthetic index {underlying} has no price at {now_ms} ms (before {ORIGIN_MS})")
        return price

    def _levels(self, underlying: str, at_ms: np.ndarray) -> np.ndarray:
        """The 30-day ATM vol (decimal) set at each of the UTC midnights ``at_ms``."""
        long_run = _LONG_RUN_VOL[underlying]
        candles = self._spot.fetch_candles(
            f"{underlying}/USDT", "4h", now_ms=int(at_ms.max()),
            limit=int((at_ms.max() - at_ms.min()) // (4 * 3_600_000)) + _RV_BARS + 2,
        )
        closes_at = candles.ts_ms + candles.tf_ms
        log_ret = np.diff(np.log(candles.close))
        csum = np.concatenate(([0.0], np.cumsum(log_ret**2)))
        n_closed = np.searchsorted(closes_at, at_ms, side="right")  # candles closed at each time
        n_ret = np.clip(n_closed - 1, 0, None)  # returns among them
        k = np.minimum(n_ret, _RV_BARS)
        ss = csum[n_ret] - csum[n_ret - k]
        rv = np.where(k >= 6, np.sqrt(ss / np.maximum(k, 1) * 6 * 365.25), long_run)
        blended = np.exp(0.6 * np.log(np.maximum(rv, 1e-3)) + 0.4 * math.log(long_run))
        premium = np.array([1.05 + 0.04 * self._day_rng(underlying, int(d)).standard_normal() for d in at_ms])
        return np.clip(blended * premium, 0.15, 2.0)

    def _day_rng(self, underlying: str, day_ms: int) -> np.random.Generator:
        key = [self.seed, zlib.crc32(underlying.encode()), day_ms // DAY_MS]
        return np.random.default_rng(np.random.SeedSequence(key))

    def _level_today(self, underlying: str, now_ms: int) -> float:
        """The 30-day ATM vol of the UTC day of ``now_ms`` (set at its 00:00; memoised per day)."""
        key = (underlying, now_ms // DAY_MS)
        level = self._day_levels.get(key)
        if level is None:
            if len(self._day_levels) > 1024:
                self._day_levels.clear()
            level = self._day_levels[key] = float(self._levels(underlying, np.array([key[1] * DAY_MS]))[0])
        return level

    def _smile(self, underlying: str, now_ms: int) -> tuple[float, float]:
        rng = self._day_rng(underlying, (now_ms // DAY_MS) * DAY_MS)
        rng.standard_normal()  # the first draw is the level's premium
        skew = -0.02 + 0.01 * rng.standard_normal()
        convexity = 0.015 + 0.005 * abs(rng.standard_normal())
        return skew, convexity

    def _quotes(self, underlying: str, now_ms: int, grid: list[tuple[int, np.ndarray]], spot: float,
                level: float) -> list[OptionQuote]:
        """The quotes of every (expiry, strikes) of ``grid``, calls then puts per expiry, priced
        in one batch (a chain is a few hundred options; one call per expiry cost more than the
        arithmetic)."""
        if not grid:
            return []
        forward = spot  # rate 0
        skew, convexity = self._smile(underlying, now_ms)
        sizes = [len(strikes) for _, strikes in grid]
        strikes = np.concatenate([k for _, k in grid])
        t_of = [year_fraction(now_ms, e) for e, _ in grid]
        t = np.repeat(t_of, sizes)
        atm = np.repeat([_atm_vol(underlying, level, te) for te in t_of], sizes)
        x = 2.5 * np.tanh(np.log(strikes / forward) / np.sqrt(t) / 2.5)  # smooth, flat wings
        vol = atm + skew * x + convexity * x * x
        priced = {}
        for is_call, option_type in ((True, "call"), (False, "put")):
            usd = black76_price(forward, strikes, t, vol, is_call)
            g = black76_greeks(forward, strikes, t, vol, is_call)
            mark = usd / forward
            half = np.maximum(_SPREAD_FRAC * mark, TICK)
            bid = np.floor((mark - half) / TICK + 1e-9) * TICK
            ask = np.ceil((mark + half) / TICK - 1e-9) * TICK
            priced[option_type] = (bid.tolist(), ask.tolist(), mark.tolist(), (vol * 100.0).tolist(),
                                   g["delta"].tolist(), g["gamma"].tolist(), g["theta"].tolist(), g["vega"].tolist())
        out = []
        strike_list = strikes.tolist()
        start = 0
        for (expiry_ms, _), n in zip(grid, sizes, strict=True):
            for option_type in ("call", "put"):
                bid, ask, mark, iv, delta, gamma, theta, vega = priced[option_type]
                for j in range(start, start + n):
                    strike = strike_list[j]
                    out.append(OptionQuote(
                        instrument=format_instrument_name(underlying, expiry_ms, strike, option_type),
                        underlying=underlying, expiry_ms=expiry_ms, strike=strike,
                        option_type=option_type,  # type: ignore[arg-type]
                        bid=round(bid[j], 8) if bid[j] > 0 else None, ask=round(ask[j], 8),
                        mark=mark[j], mark_iv_pct=iv[j], underlying_price=forward, index_price=spot,
                        delta=delta[j], gamma=gamma[j], theta=theta[j], vega=vega[j],
                    ))
            start += n
        return out


def _check_underlying(underlying: str) -> None:
    if underlying not in UNDERLYINGS:
        raise PermanentExchangeError(
            f"no synthetic options on {underlying!r}; expected one of {', '.join(UNDERLYINGS)}"
        )


def _atm_vol(underlying: str, level_30d: float, t_years: float) -> float:
    """ATM vol at ``t_years``: the 30-day level mean-reverting to the long-run vol,
    weighted by (1 - e^{-kT}) / (kT) relative to its 30-day value."""
    long_run = _LONG_RUN_VOL[underlying]

    def g(t: float) -> float:
        kt = _MEAN_REVERSION_PER_YEAR * t
        return (1.0 - math.exp(-kt)) / kt

    return long_run + (level_30d - long_run) * g(t_years) / g(30 / 365)


def _friday_0800(d: datetime) -> int:
    return int(datetime(d.year, d.month, d.day, EXPIRY_HOUR_UTC, tzinfo=UTC).timestamp() * 1000)


def _last_friday(year: int, month: int) -> datetime:
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 4) % 7)


def _listed_expiries(now_ms: int) -> list[tuple[int, float]]:
    """``(expiry_ms, strike step as a fraction of spot)``, soonest first: the next 4
    Fridays (weeklies), last Fridays of the next 3 months (monthlies) and of the next
    4 quarter months (quarterlies), all at 08:00 UTC and more than an hour after
    ``now_ms`` (an expiry is delisted in its last hour: its prices are intrinsic to
    about 1e-10 by then, which leaves nothing to trade)."""
    now_ms += LAST_HOUR_MS
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    steps: dict[int, float] = {}
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    fridays: list[int] = []
    while len(fridays) < 4:
        if day.weekday() == 4 and _friday_0800(day) > now_ms:
            fridays.append(_friday_0800(day))
        day += timedelta(days=1)
    for ms in fridays:
        steps[ms] = 0.0125
    year, month = now.year, now.month
    monthly = quarterly = 0
    while monthly < 3 or quarterly < 4:
        ms = _friday_0800(_last_friday(year, month))
        if ms > now_ms:
            if monthly < 3:
                monthly += 1
                steps[ms] = max(steps.get(ms, 0.0), 0.025)
            if month % 3 == 0 and quarterly < 4:
                quarterly += 1
                steps[ms] = 0.05
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(steps.items())


def _nice_step(x: float) -> float:
    """The number of the form {1, 2, 2.5, 5} x 10^n nearest ``x`` in log terms."""
    exp10 = 10.0 ** math.floor(math.log10(x))
    candidates = [m * exp10 for m in (1.0, 2.0, 2.5, 5.0, 10.0)]
    return min(candidates, key=lambda c: abs(math.log(c / x)))


def _strike_grid(forward: float, sd: float, step_frac: float) -> np.ndarray:
    """Multiples of a round step from exp(-3 sd) to exp(3.5 sd) times the forward, at
    least 2 steps each side, within 0.2x..3x; the step doubles while more than 80 strikes."""
    step = _nice_step(forward * step_frac)
    lo = forward * max(math.exp(-3.0 * sd), 0.2)
    hi = forward * min(math.exp(3.5 * sd), 3.0)
    while (hi - lo) / step > 80:
        step *= 2.0
    first = max(min(math.ceil(lo / step), math.floor(forward / step) - 1), 1)
    last = max(math.floor(hi / step), math.ceil(forward / step) + 1)
    return np.arange(first, last + 1, dtype=np.float64) * step
