"""Which ticks of a spot replay need ``engine.step``, and what the quiet ones do to the state.

A plain replay calls ``step`` on every tick. On most ticks nothing happens but the marks:
the strategy holds, no stop is touched, no breaker trips, no block ends. ``Planner.advance``
finds the next tick where something CAN happen, from the state after the last step and the
prices ahead, and writes into the state what the ``step`` calls on the quiet ticks between
would have written: the position's mark, the stop's checked-to bar, the sleeve's and the
account's equity peaks and the sleeve's drawdown, the account's UTC day and its day-start
equity (the runner sets ``last_run_at`` and fills in the quiet ticks' equity with the
engine's own arithmetic, cash + quantity x mark). What makes a tick necessary (one spot
sleeve, one symbol; anything else is stepped on every tick):

- a due decision that can act: a buy while flat, a sell while long;
- a block that ends (``until``): it lifts, and a MAX_DRAWDOWN lift rebases the peak;
- while long: a closed bar at or through the protective stop; a tick where the sleeve's
  drawdown from its running peak exceeds the limit, where the account's equity falls to
  the kill switch or to the daily-loss threshold of its UTC day (the day's start equity is
  the equity at the day's first tick, as the engine takes it);
- the last tick (the final marks).

While long, whole UTC days are cleared at once from their lowest and highest marks (exact
bounds, ``Planner._clear_days``); a day that might trip is scanned tick by tick.

Conservative on purpose: a necessary tick that turns out quiet costs one ``step``; a
missed one would change the result, so a test compares this with the plain run on
adversarial configs (tight stops, breakers, daily loss, kill switch), fills, equity and the
final state alike.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

from scheduler.config import StrategyConfig
from scheduler.engine.models import State, utc_from_ms
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import SleeveRules
from scheduler.engine.timeframes import DAY_MS

CHUNK = 512  # ticks scanned per look-ahead chunk (doubling)
SMALL = 48  # spans up to this many ticks are scanned in plain Python (numpy's per-call cost dominates)
#: a day is cleared of the drawdown breaker only below (1 - this) x the limit: the bound and the
#: engine's ratio differ by a few ulps, far less than this
_DD_MARGIN = 1e-9
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Ticks:
    """What the planner reads per tick (arrays of the replay's length)."""

    ticks: np.ndarray  # the tick times, ms
    mark_px: np.ndarray  # the price a position is marked at
    mark_at_ms: np.ndarray  # the time of that price, ms
    new_bar: np.ndarray  # bool: a bar closes at the tick and is passed for the stops
    bar_open_ms: np.ndarray  # the open time of the bar passed at the tick (where new_bar)
    bar_min: np.ndarray  # min(open, low) of that bar (inf where no bar is passed)
    buys: np.ndarray  # bool: a due, fresh decision to buy
    sells: np.ndarray  # bool: a due, fresh decision to sell


@dataclass
class _Carry:
    """The running values of the engine's risk state over the quiet ticks."""

    peak_s: float
    peak_a: float
    day: int  # the account's UTC day (days since 1970-01-01)
    start: float | None  # its day-start equity
    last: int = -1  # the last quiet tick these describe (-1: none yet)
    e: float = 0.0  # the equity at ``last``


class Planner:
    def __init__(self, t: Ticks, rules: SleeveRules, account: AccountRules, s: StrategyConfig) -> None:
        self.t = t
        self.n = len(t.ticks)
        self.t0 = int(t.ticks[0])
        self.bar_ms = int(t.ticks[1] - t.ticks[0]) if self.n > 1 else DAY_MS
        self.symbol = s.symbols[0]
        self.buy_at = np.flatnonzero(t.buys).tolist()
        self.sell_at = np.flatnonzero(t.sells).tolist()
        # per tick: the newest tick at or before it that passed a bar (-1: none yet)
        self.last_bar = np.maximum.accumulate(np.where(t.new_bar, np.arange(self.n), -1))
        self.days = t.ticks // DAY_MS
        self.marks_list, self.bar_min_list = t.mark_px.tolist(), t.bar_min.tolist()
        self.days_list = self.days.tolist()
        self.rules, self.account = rules, account
        self.max_dd = rules.max_drawdown_pct
        self.kill_f = 1 - account.portfolio_kill_pct / 100
        self.daily_f = 1 - account.daily_loss_pct / 100
        # clearing whole days pays with 4 ticks a day or more; its bounds need factors >= 0 (the
        # config's limits are in (0, 100], so they are)
        self.by_days = self.bar_ms * 4 <= DAY_MS and self.kill_f >= 0 and self.daily_f >= 0

    def _next_of(self, at: list[int], k: int) -> int:
        j = bisect_right(at, k)
        return at[j] if j < len(at) else self.n - 1

    def _index_at(self, t_ms: int) -> int:
        """The first tick at or after ``t_ms`` (the ticks are a regular grid)."""
        return max(0, -(-(t_ms - self.t0) // self.bar_ms))

    def advance(self, k: int, state: State, sid: str) -> int:
        """Apply the quiet ticks after ``k`` to ``state``; return the next tick that needs a
        step (``n`` when ``k`` was the last)."""
        n = self.n
        if k + 1 >= n:
            return n
        sleeve = state.sleeves[sid]
        acct = state.account
        pos = sleeve.positions.get(self.symbol)
        if len(sleeve.positions) > (pos is not None) or sleeve.option_positions or acct.day is None \
                or not acct.peak_equity_usd:
            return k + 1  # not the one-symbol spot case this planner reasons about, or no account baseline yet
        c = n - 1
        for b in [*sleeve.risk.blocks.values(), *acct.blocks.values()]:
            if b.until is not None:
                c = min(c, max(k + 1, self._index_at(int(b.until.timestamp() * 1000))))
        c = min(c, self._next_of(self.sell_at if pos is not None else self.buy_at, k))
        carry = _Carry(sleeve.risk.peak_equity_usd, acct.peak_equity_usd,
                       (date.fromisoformat(acct.day) - _EPOCH).days, acct.day_start_equity_usd)
        if pos is None:  # flat: the equity is the cash on every quiet tick; only the UTC day rolls
            if c - 1 > k:
                last_day = self.days_list[c - 1]
                if last_day != carry.day:
                    acct.day, acct.day_start_equity_usd = _iso_day(last_day), sleeve.cash_usd
            return c
        m = self._scan(k, c, sleeve.cash_usd, pos.quantity, pos.stop_price, carry)
        if carry.last > k:
            self._apply(state, sid, k, carry)
        return m

    def _apply(self, state: State, sid: str, k: int, carry: _Carry) -> None:
        """Write what the steps on the quiet ticks ``(k, carry.last]`` would have written."""
        sleeve, acct, t, last = state.sleeves[sid], state.account, self.t, carry.last
        pos = sleeve.positions[self.symbol]
        sleeve.risk.peak_equity_usd = carry.peak_s
        sleeve.risk.drawdown_pct = (carry.peak_s - carry.e) / carry.peak_s * 100.0
        acct.peak_equity_usd = carry.peak_a
        day = _iso_day(carry.day)
        if acct.day != day:
            acct.day, acct.day_start_equity_usd = day, carry.start
        pos.mark_price = self.marks_list[last]
        pos.mark_at = utc_from_ms(int(t.mark_at_ms[last]))
        if pos.stop_price is not None:
            j = int(self.last_bar[last])
            if j > k:
                pos.stop_checked_to_ms = int(t.bar_open_ms[j])

    def _scan(self, k: int, c: int, cash: float, qty: float, stop: float | None, carry: _Carry) -> int:
        """The first tick in (k, c) where a held position trips something (``c`` when none);
        ``carry`` ends describing the last quiet tick before it.

        With several ticks a day, whole UTC days are first cleared at once (``_clear_days``);
        a day it cannot clear is scanned tick by tick (``_exact``), then clearing goes on."""
        a = k + 1
        while a < c:
            if self.by_days:
                a = self._clear_days(a, c, cash, qty, stop, carry)
                if a >= c:
                    return c
            b = self._day_end(a, c) if self.by_days else c
            m = self._exact(a - 1, b, cash, qty, stop, carry)
            if m < b:
                return m
            a = b
        return c

    def _day_end(self, a: int, c: int) -> int:
        """The first tick after tick ``a``'s UTC day, ``c`` at most."""
        return min(c, self._index_at((self.days_list[a] + 1) * DAY_MS))

    def _clear_days(self, a: int, c: int, cash: float, qty: float, stop: float | None, carry: _Carry) -> int:
        """Advance ``carry`` over the UTC days from tick ``a`` (to ``c`` at most) on which nothing
        can trip; return the first tick of the first day that might (``c`` when none).

        One day's ticks [a, b) share the day's start equity ``st``, and the equity
        ``e = cash + q x mark`` is a non-decreasing function of the mark in floating point too
        (q > 0), so the day's lowest equity is ``lo = cash + q x min(mark)`` and its running
        peaks end at ``max(peak, cash + q x max(mark))``, exactly. Then, exactly as the ticks
        would find: no stop is touched iff min(bar low) > stop; the kill switch and the daily
        loss do not trip iff lo > peak_a x kill_f and lo > st x daily_f (the peak only grows, so
        the day-end peak bounds every tick's). The drawdown ratio is bounded by the day's
        lowest equity against its day-end peak, with a margin far above float rounding; a day
        near its limit is left to the exact scan."""
        marks, lows, days = self.marks_list, self.bar_min_list, self.days_list
        max_dd, kill_f, daily_f = self.max_dd * (1 - _DD_MARGIN), self.kill_f, self.daily_f
        while a < c:
            d = days[a]
            b = self._day_end(a, c)
            seg = marks[a:b]
            lo = cash + qty * min(seg)
            hi = cash + qty * max(seg)
            ps = hi if hi > carry.peak_s else carry.peak_s
            pa = hi if hi > carry.peak_a else carry.peak_a
            st = cash + qty * marks[a] if d != carry.day else carry.start
            if ((ps - lo) / ps * 100.0 > max_dd or lo <= pa * kill_f
                    or (st is not None and st > 0 and lo <= st * daily_f)
                    or (stop is not None and min(lows[a:b]) <= stop)):
                return a
            carry.peak_s, carry.peak_a, carry.day, carry.start = ps, pa, d, st
            carry.e, carry.last = cash + qty * marks[b - 1], b - 1
            a = b
        return c

    def _exact(self, k: int, c: int, cash: float, qty: float, stop: float | None, carry: _Carry) -> int:
        """``_scan`` tick by tick: the engine's own comparisons on every tick in (k, c)."""
        if c - k - 1 <= SMALL:
            return self._scan_small(k, c, cash, qty, stop, carry)
        t = self.t
        max_dd, kill_f, daily_f = self.max_dd, self.kill_f, self.daily_f
        a, size = k + 1, CHUNK
        while a < c:
            b = min(c, a + size)
            e = cash + qty * t.mark_px[a:b]  # sleeve_equity's own arithmetic: cash + q x mark
            run_s = np.maximum.accumulate(np.maximum(e, carry.peak_s))
            run_a = np.maximum.accumulate(np.maximum(e, carry.peak_a))
            days = self.days[a:b]
            first = np.empty(len(e), dtype=bool)  # the first tick of a UTC day: its equity starts the day
            first[0] = days[0] != carry.day
            first[1:] = days[1:] != days[:-1]
            began = np.maximum.accumulate(np.where(first, np.arange(len(e)), -1))
            start = np.where(began >= 0, e[np.maximum(began, 0)], np.nan if carry.start is None else carry.start)
            trip = ((run_s - e) / run_s * 100.0 > max_dd) | (e <= run_a * kill_f)
            with np.errstate(invalid="ignore"):
                trip |= (start > 0) & (e <= start * daily_f)
            if stop is not None:
                trip |= t.bar_min[a:b] <= stop
            hits = np.flatnonzero(trip)
            end = int(hits[0]) if len(hits) else b - a
            if end:
                j = end - 1
                carry.peak_s, carry.peak_a, carry.e, carry.last = float(run_s[j]), float(run_a[j]), float(e[j]), a + j
                carry.day, s_j = int(days[j]), float(start[j])
                carry.start = None if s_j != s_j else s_j  # NaN: no day-start yet (as the engine's None)
            if len(hits):
                return a + end
            a, size = b, size * 2
        return c

    def _scan_small(self, k: int, c: int, cash: float, qty: float, stop: float | None, carry: _Carry) -> int:
        """``_scan`` one tick at a time (the same IEEE arithmetic as numpy's, in the same order)."""
        max_dd, kill_f, daily_f = self.max_dd, self.kill_f, self.daily_f
        peak_s, peak_a, day, start = carry.peak_s, carry.peak_a, carry.day, carry.start
        marks, lows, days = self.marks_list, self.bar_min_list, self.days_list
        for i in range(k + 1, c):
            e = cash + qty * marks[i]
            ps = e if e > peak_s else peak_s
            pa = e if e > peak_a else peak_a
            d = days[i]
            st = e if d != day else start
            if ((ps - e) / ps * 100.0 > max_dd or e <= pa * kill_f
                    or (st is not None and st > 0 and e <= st * daily_f) or (stop is not None and lows[i] <= stop)):
                return i
            peak_s, peak_a, day, start = ps, pa, d, st
            carry.peak_s, carry.peak_a, carry.day, carry.start, carry.e, carry.last = ps, pa, d, st, e, i
        return c


@lru_cache(maxsize=4096)
def _iso_day(days: int) -> str:
    """"YYYY-MM-DD" of day ``days`` since 1970-01-01 (cached: a replay asks for the same few
    days on every span; 4096 days is 11 years)."""
    return (_EPOCH + timedelta(days=days)).isoformat()

