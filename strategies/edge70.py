"""edge70: the older live engine's daily Donchian trend breakout.

At each daily bar t (L = long_lookback, S = short_lookback):

- long fires when ``high[t] > max(high[t-L .. t-1])`` (a new L-day high);
- short fires when ``low[t] < min(low[t-S .. t-1])`` (a new S-day low).

An *event* is a bar where exactly one fires (both firing on one bar keeps the
old direction, so it is no event). A direction state machine acts only on a
change: the very first event sets the direction without trading; a later event
in the other direction trades (1 on a change to long, -1 on a change to short);
an event in the same direction (repeated highs) does nothing.

The live engine is stateless between checker runs, so it seeds the direction by
replaying the last ``seed_bars`` candles (the bar being decided included).
The signal at bar t is therefore defined as the outcome of that replay over the
``seed_bars`` bars ending at t, each with its own lookback: a backtest over the
full history and a live check on the last ``seed_bars + max(L, S)`` candles make
the same decision at every bar. ``replay`` is the state machine itself; the
vectorised ``compute`` is tested against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies import indicators as ind
from strategies.spot import Arrays, Bars, Params, Spec


def lookback(p: Params) -> int:
    return max(int(p["long_lookback"]), int(p["short_lookback"]))


def events(high: np.ndarray, low: np.ndarray, p: Params) -> tuple[np.ndarray, Arrays]:
    """Per bar: +1 (only long fires), -1 (only short fires), 0 (neither or both).

    0 before ``lookback(p)`` (the rules are not both evaluable yet).
    """
    n_long, n_short = int(p["long_lookback"]), int(p["short_lookback"])
    size = len(high)
    top, bottom = np.full(size, np.nan), np.full(size, np.nan)
    top[1:] = ind.donchian_high(high, n_long)[:-1]  # channel of the previous L bars
    bottom[1:] = ind.donchian_low(low, n_short)[:-1]
    long_fire = high > top
    short_fire = low < bottom
    e = long_fire.astype(np.int8) - short_fire.astype(np.int8)
    e[: lookback(p)] = 0
    return e, {"breakout_high": top, "breakdown_low": bottom}


def replay(
    ev: Sequence[int], start_direction: int | None = None
) -> tuple[list[int], list[int | None]]:
    """The direction state machine over a sequence of events (+1, -1, 0).

    Returns the signal and the direction after each step. With no starting
    direction the first event only sets it (no trade).
    """
    direction = start_direction
    signals: list[int] = []
    directions: list[int | None] = []
    for e in ev:
        signal = 0
        if e != 0:
            if direction is not None and e != direction:
                signal = int(e)
            direction = int(e)
        signals.append(signal)
        directions.append(direction)
    return signals, directions


def compute(bars: Bars, p: Params) -> tuple[np.ndarray, Arrays]:
    """Signal at each bar t: the replay over the seed_bars bars ending at t.

    0 (and NaN direction) until ``min_bars(p)`` bars exist, as evaluate() on
    that many bars would say "warming up".
    """
    high, low, close = bars["high"], bars["low"], bars["close"]
    e, arrays = events(high, low, p)
    size = len(e)
    seed = int(p["seed_bars"])
    first = lookback(p)
    idx = np.arange(size)
    last_event = np.maximum.accumulate(np.where(e != 0, idx, -1)) if size else idx
    window_start = np.maximum(idx - seed + 1, first)
    prev_event = np.full(size, -1)
    prev_event[1:] = last_event[:-1]
    has_prev = prev_event >= window_start
    prev_dir = np.where(has_prev, e[np.maximum(prev_event, 0)], 0)
    signal = np.where((e != 0) & has_prev & (prev_dir == -e), e, 0).astype(np.int8)
    has_dir = last_event >= window_start
    direction = np.where(has_dir, e[np.maximum(last_event, 0)], 0).astype(np.float64)
    direction[~has_dir] = np.nan
    before = np.where(has_prev, prev_dir, np.nan).astype(np.float64)  # direction entering bar t
    warm = min(size, min_bars(p) - 1)
    signal[:warm] = 0
    direction[:warm] = np.nan
    before[:warm] = np.nan
    stop = np.full(size, np.nan)
    buys = signal == 1
    stop[buys] = close[buys] * (1.0 - float(p["stop_pct"]) / 100.0)
    arrays.update({
        "high": high, "low": low, "close": close, "direction": direction, "previous_direction": before,
        "event": e.astype(np.float64), "stop_price": stop,
    })
    return signal, arrays


def explain(a: Arrays, p: Params, t: int) -> dict[str, object]:
    def name(d: float) -> str | None:
        return None if d != d else ("long" if d > 0 else "short")

    high, low = float(a["high"][t]), float(a["low"][t])
    top, bottom = float(a["breakout_high"][t]), float(a["breakdown_low"][t])
    out: dict[str, object] = {
        "direction": name(float(a["direction"][t])),
        "previous_direction": name(float(a["previous_direction"][t])),
        "high": high, "breakout_high": top, "long_fires": bool(high > top),
        "low": low, "breakdown_low": bottom, "short_fires": bool(low < bottom),
        # how far each rule was from firing (> 0: not fired)
        "high_to_breakout": top - high, "low_to_breakdown": low - bottom,
        "seed_bars": int(p["seed_bars"]),
    }
    stop = float(a["stop_price"][t])
    if stop == stop:
        out["stop_price"] = stop
    return out


def min_bars(p: Params) -> int:
    """seed_bars replayed bars, each with its lookback before it."""
    return int(p["seed_bars"]) + lookback(p)


EDGE70 = Spec(compute, explain, min_bars, ("high", "low", "close"))
