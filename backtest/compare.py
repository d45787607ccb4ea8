"""Compare mode (issue 10 item 9): several runs side by side (every strategy of a config, or
every catalog strategy on one symbol), one row each. ``compare`` gives the rows (for JSON and
for the CLI to sort or filter), ``compare_table`` the terminal table. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backtest import metrics
from backtest.result import BacktestResult

#: (key, header, format) of every column, in order; the gross columns only with gross runs
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("strategy_id", "strategy", "text"),
    ("symbols", "symbols", "text"),
    ("return_pct", "return", "pct"),
    ("cagr_pct", "CAGR", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("max_drawdown_pct", "max DD", "pct"),
    ("trades", "trades", "int"),
    ("win_rate_pct", "win rate", "pct"),
    ("fees_usd", "fees", "usd"),
    ("buy_hold_return_pct", "buy&hold", "pct"),
)
GROSS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("gross_return_pct", "gross", "pct"),
    ("edge_eaten", "costs eat edge", "flag"),
)


def row(result: BacktestResult, gross: BacktestResult | None = None) -> dict[str, Any]:
    """One run's figures (``backtest.metrics``); with its gross run, the gross return and the
    edge-eaten flag (``metrics.compare_costs``)."""
    m = metrics.compute(result)
    out: dict[str, Any] = {
        "strategy_id": result.strategy_id, "strategy": result.strategy, "symbols": ",".join(result.symbols),
        "timeframe": result.timeframe,
        "return_pct": m.curve.total_return_pct, "cagr_pct": m.curve.cagr_pct, "sharpe": m.curve.sharpe,
        "max_drawdown_pct": m.curve.max_drawdown_pct, "trades": m.trades.trades,
        "win_rate_pct": m.trades.win_rate_pct, "fees_usd": m.fees_usd, "slippage_usd": m.slippage_usd,
        "buy_hold_return_pct": m.benchmark.total_return_pct if m.benchmark else None,
    }
    if gross is not None:
        c = metrics.compare_costs(result, gross)
        out.update(gross_return_pct=c.gross_return_pct, edge_eaten=c.edge_eaten, edge_reason=c.reason)
    return out


def compare(results: Sequence[BacktestResult], gross: Sequence[BacktestResult] | None = None) -> list[dict[str, Any]]:
    """One ``row`` per run, in the order given; ``gross`` (optional) is the same runs without
    costs, in the same order."""
    if gross is not None and len(gross) != len(results):
        raise ValueError(f"{len(gross)} gross runs for {len(results)} runs; give one gross run per run, in the same order")
    return [row(r, gross[i] if gross is not None else None) for i, r in enumerate(results)]


def fmt(value: Any, kind: str) -> str:
    """A figure for a table: None as "-" (undefined; the JSON report says why)."""
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value:,.2f}%"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "usd":
        return f"{value:,.2f}"
    if kind == "int":
        return str(int(value))
    if kind == "flag":
        return "YES" if value else "no"
    if kind == "days":
        return f"{value:,.1f} d"
    return str(value)


def table(headers: Sequence[str], body: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Columns padded to their widest cell (text left, figures right), a rule under the head."""
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in body)])


def compare_table(results: Sequence[BacktestResult], gross: Sequence[BacktestResult] | None = None) -> str:
    """The terminal table of ``compare``: one line per run."""
    rows = compare(results, gross)
    cols = COLUMNS + (GROSS_COLUMNS if gross is not None else ())
    return table([h for _, h, _ in cols], [[fmt(r[k], kind) for k, _, kind in cols] for r in rows],
                 [kind != "text" for _, _, kind in cols])
