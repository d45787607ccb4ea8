"""Which ticks of a spot replay need ``engine.step``, and which are quiet.

A plain replay calls ``step`` on every tick. On most ticks nothing happens but the marks:
the strategy holds, no stop is touched, no breaker trips, no block ends. ``Planner``
finds the next tick where something CAN happen, from the state after the last step and
the prices ahead, and the runner fills the quiet ticks' equity with the same arithmetic
the engine uses (cash + quantity x mark). What makes a tick necessary (one spot sleeve,
one symbol; anything else is stepped on every tick):

- a due decision that can act: a buy while flat, a sell while long;
- a block that ends (``until``): it lifts, and a MAX_DRAWDOWN lift rebases the peak;
- while long: a closed bar at or through the protective stop; the first tick of a UTC
  day (the account's day-start equity is taken then); a tick where the sleeve's
  drawdown from its running peak exceeds the limit, where the account's equity falls to
  the kill switch or the daily-loss threshold; and the tick of the highest equity before
  any of those, so the peaks the engine keeps are the ones a plain run would have;
- the last tick (the final marks).

Conservative on purpose: a necessary tick that turns out quiet costs one ``step``; a
missed one would change the result, so a test compares this with the plain run on
adversarial configs (tight stops, breakers, daily loss, kill switch).
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from market.base import Candles
from scheduler.config import StrategyConfig
from scheduler.engine.models import State
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import SleeveRules

DAY_MS = 86_400_000
CHUNK = 512  # ticks scanned per look-ahead chunk (doubling)
SMALL = 48  # spans up to this many ticks are scanned in plain Python (numpy's per-call cost dominates)


class Planner:
    def __init__(self, ticks: np.ndarray, mark_px: np.ndarray, candles: Candles, newest: np.ndarray,
                 new_bar: np.ndarray, sig: np.ndarray, decides: np.ndarray, rules: SleeveRules,
                 account: AccountRules, s: StrategyConfig) -> None:
        self.ticks, self.mark_px = ticks, mark_px
        self.n = len(ticks)
        self.t0 = int(ticks[0])
        self.bar_ms = int(ticks[1] - ticks[0]) if len(ticks) > 1 else DAY_MS
        self.symbol = s.symbols[0]
        self.buy_at = np.flatnonzero(decides & (sig == 1)).tolist()
        self.sell_at = np.flatnonzero(decides & (sig == -1)).tolist()
        low = np.minimum(candles.open, candles.low)[newest]
        self.bar_min = np.where(new_bar, low, np.inf)  # the bar passed to the stops at each tick
        self.marks_list, self.bar_min_list = mark_px.tolist(), self.bar_min.tolist()
        self.rules, self.account = rules, account

    def _next_of(self, at: list[int], k: int) -> int:
        j = bisect_right(at, k)
        return at[j] if j < len(at) else self.n - 1

    def _index_at(self, t_ms: int) -> int:
        """The first tick at or after ``t_ms`` (the ticks are a regular grid)."""
        return max(0, -(-(t_ms - self.t0) // self.bar_ms))

    def next_step(self, k: int, state: State, sid: str) -> int:
        """The next tick after ``k`` that needs a step (``n`` when ``k`` was the last)."""
        n = self.n
        if k + 1 >= n:
            return n
        sleeve = state.sleeves[sid]
        acct = state.account
        pos = sleeve.positions.get(self.symbol)
        if len(sleeve.positions) > (pos is not None) or sleeve.option_positions:
            return k + 1  # not the one-symbol spot case this planner reasons about
        c = n - 1
        for b in [*sleeve.risk.blocks.values(), *acct.blocks.values()]:
            if b.until is not None:
                c = min(c, max(k + 1, self._index_at(int(b.until.timestamp() * 1000))))
        c = min(c, self._next_of(self.sell_at if pos is not None else self.buy_at, k))
        if pos is None:
            return c
        c = min(c, self._index_at((int(self.ticks[k]) // DAY_MS + 1) * DAY_MS))  # the next UTC day
        return self._scan(k, c, sleeve.cash_usd, pos.quantity, pos.stop_price, sleeve.risk.peak_equity_usd,
                          acct.peak_equity_usd, acct.day_start_equity_usd)

    def _scan(self, k: int, c: int, cash: float, qty: float, stop: float | None, peak_s: float,
              peak_a: float | None, day_start: float | None) -> int:
        """The first tick in (k, c) where a held position trips something, or the highest
        equity before it; ``c`` when neither."""
        if peak_a is None:
            return k + 1
        max_dd, kill, daily = self.rules.max_drawdown_pct, self.account.portfolio_kill_pct, self.account.daily_loss_pct
        if c - k - 1 <= SMALL:
            return self._scan_small(k, c, cash, qty, stop, peak_s, peak_a, day_start)
        base = min(peak_s, peak_a)
        best_i, best_v = -1, -np.inf
        a, size = k + 1, CHUNK
        while a < c:
            b = min(c, a + size)
            e = cash + qty * self.mark_px[a:b]  # sleeve_equity's own arithmetic: cash + q x mark
            run_s = np.maximum.accumulate(np.maximum(e, peak_s))
            run_a = np.maximum.accumulate(np.maximum(e, peak_a))
            trip = ((run_s - e) / run_s * 100.0 > max_dd) | (e <= run_a * (1 - kill / 100))
            if day_start is not None and day_start > 0:
                trip |= e <= day_start * (1 - daily / 100)
            if stop is not None:
                trip |= self.bar_min[a:b] <= stop
            hits = np.flatnonzero(trip)
            end = int(hits[0]) if len(hits) else b - a
            if end:
                j = int(np.argmax(e[:end]))
                if e[j] > best_v:
                    best_i, best_v = a + j, float(e[j])
            if len(hits):
                return best_i if best_v > base else a + end
            peak_s, peak_a = float(run_s[-1]), float(run_a[-1])
            a, size = b, size * 2
        return best_i if best_v > base else c

    def _scan_small(self, k: int, c: int, cash: float, qty: float, stop: float | None, peak_s: float,
                    peak_a: float, day_start: float | None) -> int:
        """``_scan`` one tick at a time (the same IEEE arithmetic as numpy's, in the same order)."""
        max_dd, kill, daily = self.rules.max_drawdown_pct, self.account.portfolio_kill_pct, self.account.daily_loss_pct
        base = min(peak_s, peak_a)
        kill_f, daily_f = 1 - kill / 100, 1 - daily / 100
        use_daily = day_start is not None and day_start > 0
        best_i, best_v = -1, -np.inf
        marks, lows = self.marks_list, self.bar_min_list
        for i in range(k + 1, c):
            e = cash + qty * marks[i]
            peak_s = e if e > peak_s else peak_s
            peak_a = e if e > peak_a else peak_a
            if ((peak_s - e) / peak_s * 100.0 > max_dd or e <= peak_a * kill_f
                    or (use_daily and e <= day_start * daily_f) or (stop is not None and lows[i] <= stop)):  # type: ignore[operator]
                return best_i if best_v > base else i
            if e > best_v:
                best_i, best_v = i, e
        return best_i if best_v > base else c
