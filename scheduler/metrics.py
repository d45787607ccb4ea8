"""Prometheus metrics (text exposition format 0.0.4) for ``GET /metrics``.

Built from the same committed /status document the status page serves, plus the daemon's
process-lifetime counters, so the numbers on a Grafana chart are the numbers /status shows.
Names follow Prometheus conventions: a ``go_trader_`` prefix, the unit as a suffix
(``_usd``, ``_seconds``, ``_pct``), ``_total`` on counters (which restart at zero with the
process, as Prometheus expects; ``rate()`` handles the reset). A value that is unknown (an
unpriced position) is left out rather than invented.
https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Counters:
    """What the daemon counts while it runs (the trade counts start from the trade log)."""

    trades: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (strategy, side, reason)
    check_failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (strategy, class)
    cycles: int = 0
    fetch_steps: int = 0
    fetch_failures: int = 0
    last_cycle_seconds: float | None = None
    last_cycle_cpu_seconds: float | None = None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, str], float | int | None]]) -> None:
        rows = [(labels, v) for labels, v in samples
                if v is not None and not isinstance(v, bool) and math.isfinite(float(v))]
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, v in rows:
            self.lines.append(f"{name}{_labels(labels)} {float(v)!r}")


def render(status: Mapping[str, Any], counters: Counters) -> bytes:
    """The exposition text for one /status document and the daemon's counters. What depends on
    the time of the scrape (``go_trader_up``) is not in it: ``health_text`` adds it per scrape."""
    w = _Writer()
    strategies = status.get("strategies", [])

    def per_strategy(key: str) -> list[tuple[dict[str, str], Any]]:
        return [({"strategy": s["id"]}, s.get(key)) for s in strategies]

    def position_value(s: Mapping[str, Any]) -> float | None:
        values = [p.get("value_usd") for p in s.get("positions", [])]
        return None if any(v is None for v in values) else float(sum(values))

    w.family("go_trader_strategy_equity_usd", "gauge", "Sleeve equity: cash plus positions at mark.",
             per_strategy("portfolio_value_usd"))
    w.family("go_trader_strategy_cash_usd", "gauge", "Sleeve cash.", per_strategy("cash_usd"))
    w.family("go_trader_strategy_position_value_usd", "gauge", "Sleeve spot positions at mark.",
             [({"strategy": s["id"]}, position_value(s)) for s in strategies])
    w.family("go_trader_strategy_realized_pnl_usd", "gauge", "Realized P&L, net of fees.",
             per_strategy("realized_pnl_usd"))
    w.family("go_trader_strategy_fees_usd", "gauge", "Fees paid by the sleeve so far.", per_strategy("fees_paid_usd"))
    w.family("go_trader_strategy_drawdown_pct", "gauge", "Sleeve equity below its saved peak, percent.",
             [({"strategy": s["id"]}, s.get("risk", {}).get("drawdown_pct")) for s in strategies])
    w.family("go_trader_trades_total", "counter", "Fills, by strategy, side and reason.",
             [({"strategy": sid, "side": side, "reason": reason}, n)
              for (sid, side, reason), n in sorted(counters.trades.items())])
    blocks: list[tuple[dict[str, str], float]] = []
    for s in strategies:
        blocks += [({"scope": s["id"], "code": b["code"]}, 1) for b in s.get("risk", {}).get("blocks", [])]
    account = status.get("account", {})
    blocks += [({"scope": "account", "code": b["code"]}, 1) for b in account.get("blocks", [])]
    w.family("go_trader_blocks_active", "gauge", "Active blocks on new entries, by scope and reason code.", blocks)
    w.family("go_trader_check_failures_total", "counter", "Failed checks, by strategy and error class.",
             [({"strategy": sid, "class": cls}, n) for (sid, cls), n in sorted(counters.check_failures.items())])
    equity, peak = account.get("equity_usd"), account.get("peak_equity_usd")
    w.family("go_trader_account_equity_usd", "gauge", "Account equity: the sum of every sleeve.", [({}, equity)])
    w.family("go_trader_account_peak_equity_usd", "gauge", "The account's saved peak equity.", [({}, peak)])
    w.family("go_trader_account_exposure_usd", "gauge", "Value of all open positions.",
             [({}, account.get("exposure_usd"))])
    drawdown = None if equity is None or not peak else max(0.0, (1 - equity / peak) * 100)
    w.family("go_trader_account_drawdown_pct", "gauge", "Account equity below its peak, percent.", [({}, drawdown)])
    w.family("go_trader_cycles_total", "counter", "Cycles run by this process.", [({}, counters.cycles)])
    w.family("go_trader_cycle_duration_seconds", "gauge", "Wall time of the last cycle.",
             [({}, counters.last_cycle_seconds)])
    w.family("go_trader_cycle_cpu_seconds", "gauge", "CPU time of the last cycle, checkers included.",
             [({}, counters.last_cycle_cpu_seconds)])
    last = status.get("last_cycle_at")
    last_s = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() if last else None
    w.family("go_trader_last_cycle_timestamp_seconds", "gauge", "When the last cycle ran (Unix time).",
             [({}, last_s)])
    w.family("go_trader_fetch_steps_total", "counter", "Fetch steps run (one per cycle and manual trade).",
             [({}, counters.fetch_steps)])
    w.family("go_trader_fetch_failures_total", "counter", "Fetch steps whose market source failed.",
             [({}, counters.fetch_failures)])
    _options(w, strategies, account)
    _notifications(w, status.get("notifications") or {})
    return ("\n".join(w.lines) + "\n").encode()


def health_text(health_code: int) -> bytes:
    """The health-derived samples for a scrape, from the verdict /health gives at that moment
    (the same function: the daemon's ``_health``), so a daemon that stopped cycling (/health 503
    "stale") reads 0 here too, though nothing was published since."""
    w = _Writer()
    w.family("go_trader_up", "gauge", "1 while /health is 200; 0 when it is 503 (halted, degraded, stale or starting).",
             [({}, 1 if health_code == 200 else 0)])
    return ("\n".join(w.lines) + "\n").encode()


#: /status greek key -> metric name and help (units in scheduler/engine/option_risk.py)
_GREEKS = {
    "delta_usd": ("go_trader_option_delta_usd", "Option delta in USD (signed quantity x delta x index)."),
    "gamma_usd_per_1pct": ("go_trader_option_gamma_usd", "Option gamma: the change of the USD delta for a 1% move of the underlying."),
    "vega_usd_per_vol_pt": ("go_trader_option_vega_usd_per_vol_pt", "Option value change in USD per vol point."),
    "theta_usd_per_day": ("go_trader_option_theta_usd_per_day", "Option value change in USD per day."),
}


def _options(w: _Writer, strategies: list[Mapping[str, Any]], account: Mapping[str, Any]) -> None:
    """Greeks of every options strategy, and of the account (``go_trader_account_option_...``)."""
    for key, (name, help_text) in _GREEKS.items():
        w.family(name, "gauge", help_text, [({"strategy": s["id"]}, ((s.get("options") or {}).get("greeks") or {}).get(key))
                                            for s in strategies if s.get("options")])
    for key, (name, help_text) in _GREEKS.items():
        w.family(name.replace("go_trader_", "go_trader_account_", 1), "gauge", f"Account: {help_text}",
                 [({}, ((account.get("options") or {}).get("greeks") or {}).get(key))])


def _notifications(w: _Writer, n: Mapping[str, Any]) -> None:
    """The outbox, per destination: ``channel`` telegram or webhook, ``destination`` its name."""
    dests = n.get("destinations") or {}

    def labels(name: str) -> dict[str, str]:
        return {"channel": name.split(":", 1)[0], "destination": name}

    w.family("go_trader_outbox_messages", "gauge", "Notifications waiting for delivery, per destination.",
             [(labels(d), v.get("pending")) for d, v in sorted(dests.items())])
    w.family("go_trader_notifications_delivered_total", "counter", "Notifications delivered (kept in the state).",
             [(labels(d), v.get("delivered_total")) for d, v in sorted(dests.items())])
    w.family("go_trader_notifications_failed_total", "counter", "Failed delivery attempts by this process.",
             [(labels(d), v.get("failed_total")) for d, v in sorted(dests.items())])
    w.family("go_trader_outbox_dropped_total", "counter", "Notifications dropped unsent because the outbox was full.",
             [({}, n.get("dropped"))] if n.get("enabled") else [])
