"""Reports of a backtest run (issue 10 items 6 and 10): JSON for machines (every trade, fill and
figure), a terminal table, and one self-contained HTML file for people.

The HTML report loads nothing: its own Content-Security-Policy (a meta tag) allows only its one
inline script and style (by hash) and data: images, so it works offline and a hostile strategy
name cannot run code. The figures and tables are written here (escaped); the charts (equity
with buy-and-hold and the gross run, drawdown, the trades marked on price) are hand-written SVG
that the inline script draws from the JSON embedded beside it, the way scheduler/dashboard.html
draws its chart, with no third-party code. After drawing, each chart's ``<svg>`` carries
``data-points`` (points drawn) and the price chart ``data-markers``; the body gets
``data-rendered="1"`` (what the browser test reads).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backtest import metrics
from backtest.compare import fmt, table
from backtest.result import BacktestResult, Curve

REPORT_VERSION = 1
MAX_CHART_POINTS = 2000  # per series in the HTML (min/max per bucket keeps every extreme)

#: (label, attribute path in Metrics, format) of the metrics table rows
_CURVE_ROWS = (
    ("final equity", "final_equity_usd", "usd"), ("total return", "total_return_pct", "pct"),
    ("CAGR", "cagr_pct", "pct"), ("volatility (ann.)", "volatility_pct", "pct"), ("Sharpe", "sharpe", "ratio"),
    ("Sortino", "sortino", "ratio"), ("Calmar", "calmar", "ratio"), ("max drawdown", "max_drawdown_pct", "pct"),
    ("max drawdown duration", "max_drawdown_days", "days"),
)
_TRADE_ROWS = (
    ("trades", "trades", "int"), ("win rate", "win_rate_pct", "pct"), ("profit factor", "profit_factor", "ratio"),
    ("expectancy (USD)", "expectancy_usd", "usd"), ("expectancy (%)", "expectancy_pct", "pct"),
    ("average win", "avg_win_usd", "usd"), ("average loss", "avg_loss_usd", "usd"),
    ("max consecutive losses", "max_consecutive_losses", "int"), ("trades per year", "trades_per_year", "ratio"),
)


def to_json(result: BacktestResult, gross: BacktestResult | None = None, metrics_: metrics.Metrics | None = None,
            *, monte_carlo: Sequence[Any] = (), lookahead: Any = None, walk_forward: Any = None) -> dict[str, Any]:
    """The machine report: the run itself (every trade and fill), its metrics, the gross run and
    its metrics with the cost comparison, and whatever analyses were run (each a ``to_json``)."""
    m = metrics_ if metrics_ is not None else metrics.compute(result)
    doc: dict[str, Any] = {"version": REPORT_VERSION, "result": result.to_json(), "metrics": m.to_json(),
                           "gross": None, "costs": None}
    if gross is not None:
        doc["gross"] = {"result": gross.to_json(), "metrics": metrics.compute(gross).to_json()}
        doc["costs"] = metrics.compare_costs(result, gross).to_json()
    doc["monte_carlo"] = [s.to_json() for s in monte_carlo]
    doc["lookahead"] = lookahead.to_json() if lookahead is not None else None
    doc["walk_forward"] = walk_forward.to_json() if walk_forward is not None else None
    return doc


def dumps(doc: dict[str, Any]) -> str:
    """Strict JSON (no NaN: every undefined figure is already null)."""
    return json.dumps(doc, indent=1, allow_nan=False)


def _metric_rows(m: metrics.Metrics | None) -> list[tuple[str, str, Any]]:
    """(label, format, value) of every row, for one run (None: a blank column)."""
    rows: list[tuple[str, str, Any]] = []
    for label, attr, kind in _CURVE_ROWS:
        rows.append((label, kind, getattr(m.curve, attr) if m else None))
    for label, attr, kind in _TRADE_ROWS:
        rows.append((label, kind, getattr(m.trades, attr) if m else None))
    rows.append(("exposure", "pct", m.exposure_pct if m else None))
    rows.append(("fees paid", "usd", m.fees_usd if m else None))
    rows.append(("slippage paid", "usd", m.slippage_usd if m else None))
    return rows


def _columns(result: BacktestResult, gross: BacktestResult | None) -> tuple[list[str], list[list[str]]]:
    net = metrics.compute(result)
    runs: list[tuple[str, metrics.Metrics | None]] = [("net", net)]
    if gross is not None:
        runs.append(("gross (no costs)", metrics.compute(gross)))
    if net.benchmark is not None:
        bench = metrics.Metrics(net.benchmark, metrics.trade_metrics((), net.benchmark.years), None, 0.0, 0.0, None)
        runs.append(("buy & hold", bench))
    columns = [_metric_rows(m) for _, m in runs]
    trade_labels = {label for label, _, _ in _TRADE_ROWS} | {"exposure", "fees paid", "slippage paid"}
    body = []
    for i, (label, kind, _) in enumerate(columns[0]):
        cells = [label]
        for (name, _), col in zip(runs, columns, strict=True):
            # buy-and-hold's trade figures are not a strategy's: left blank
            cells.append("" if name == "buy & hold" and label in trade_labels else fmt(col[i][2], kind))
        body.append(cells)
    return ["metric", *(name for name, _ in runs)], body


def terminal_table(result: BacktestResult, gross: BacktestResult | None = None) -> str:
    """One run's metrics, net beside gross and buy-and-hold, then the cost verdict and the
    reason behind each undefined ("-") figure."""
    headers, body = _columns(result, gross)
    lines = [f"{result.strategy_id} ({result.strategy}) {','.join(result.symbols)} {result.timeframe or ''}".rstrip(),
             table(headers, body, [False] + [True] * (len(headers) - 1))]
    if gross is not None:
        c = metrics.compare_costs(result, gross)
        lines.append(("COSTS EAT THE EDGE: " if c.edge_eaten else "costs: ") + c.reason)
    net = metrics.compute(result)
    reasons = {**net.curve.reasons, **net.trades.reasons}
    if reasons:
        lines.append("undefined: " + "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items())))
    lines += [f"NOTE: {n}" for n in result.notes]
    return "\n".join(lines)


def decimate(points: Sequence[tuple[int, float]], max_points: int = MAX_CHART_POINTS) -> list[tuple[int, float]]:
    """At most ``max_points`` of ``points`` for drawing: the first and last, and the lowest and
    highest of each of equal buckets in between (in time order), so no peak or trough is lost."""
    curve = Curve.of(points)
    n = len(curve)
    if n <= max_points:
        return list(curve)
    values = curve.values
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = {0, n - 1}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            seg = values[lo:hi]
            keep.update((int(lo + np.argmin(seg)), int(lo + np.argmax(seg))))
    return [curve[i] for i in sorted(keep)]


def _chart_data(result: BacktestResult, gross: BacktestResult | None,
                prices: Sequence[tuple[int, float]] | None) -> dict[str, Any]:
    dd = metrics.drawdown_series(result.equity.values) * 100.0
    return {
        "equity": decimate(result.equity),
        "gross": decimate(gross.equity) if gross is not None else [],
        "benchmark": decimate(result.benchmark),
        "drawdown": decimate(Curve(result.equity.times, dd)),
        # a non-finite price (a hole in the data) is left out of the line, not drawn as garbage
        "prices": decimate([(int(t), float(v)) for t, v in prices if np.isfinite(v)]) if prices else [],
        "entries": [[t.entry_ms, t.entry_price, t.side] for t in result.trades],
        "exits": [[t.exit_ms, t.exit_price, t.exit_reason] for t in result.trades],
    }


def _embed(doc: dict[str, Any]) -> str:
    # inside <script type="application/json">: no "</script>" (nor "<!--") can end it early
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _html_table(headers: Sequence[str], body: Sequence[Sequence[str]], cls: str = "") -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _ts(ts_ms: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ts_ms), "ms"), unit="m").replace("T", " ")


def render_html(result: BacktestResult, gross: BacktestResult | None = None,
                prices: Sequence[tuple[int, float]] | None = None, title: str | None = None) -> str:
    """The HTML report as text (see ``write_html``)."""
    e = html.escape
    name = title or f"{result.strategy_id}: {result.strategy} on {', '.join(result.symbols)}"
    headers, body = _columns(result, gross)
    costs = ""
    if gross is not None:
        c = metrics.compare_costs(result, gross)
        costs = f'<p class="{"bad" if c.edge_eaten else "ok"}">{"Costs eat the edge: " if c.edge_eaten else "Costs: "}{e(c.reason)}</p>'
    trade_rows = [[_ts(t.entry_ms), _ts(t.exit_ms), t.symbol, t.side, f"{t.quantity:.8g}", f"{t.entry_price:,.8g}",
                   f"{t.exit_price:,.8g}", f"{t.pnl_usd:,.2f}", f"{t.return_pct:.2f}%", f"{t.fees_usd:,.2f}", t.exit_reason]
                  for t in result.trades]
    trades = _html_table(["entry", "exit", "symbol", "side", "quantity", "entry price", "exit price", "P&L (USD)",
                          "return", "fees", "exit reason"], trade_rows, "trades") if trade_rows else "<p>No closed trades.</p>"
    about = (f"{e(result.source or 'unknown source')} · {e(result.timeframe or str(result.bar_ms) + ' ms bars')} · "
             f"{e(_ts(result.start_ms))} to {e(_ts(result.end_ms))} UTC · capital {result.initial_capital_usd:,.2f} USD · "
             f"costs {e(json.dumps(result.costs))} · params {e(json.dumps(result.params, sort_keys=True))}")
    notes = "".join(f'<p class="bad">Note: {e(n)}</p>' for n in result.notes)
    price_note = "" if prices else '<p class="note">No prices were given: the trades are marked at their fill prices only.</p>'
    # no double quote in it (the attribute's delimiter): single-quoted CSP keywords stay readable
    csp = (f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(csp, quote=False)}">
<meta name="referrer" content="no-referrer">
<title>{e(name)}</title>
<style>{_STYLE}</style></head>
<body data-rendered="0">
<h1>{e(name)}</h1>
<p class="note">{about}</p>
<section><h2>Metrics</h2>{_html_table(headers, body, "metrics")}{costs}{notes}</section>
<section><h2>Equity</h2><svg id="equity" viewBox="0 0 1000 280" data-points="0"></svg><div class="legend" id="equity-legend"></div></section>
<section><h2>Drawdown</h2><svg id="drawdown" viewBox="0 0 1000 180" data-points="0"></svg></section>
<section><h2>Trades on price</h2>{price_note}<svg id="price" viewBox="0 0 1000 280" data-points="0" data-markers="0"></svg><div class="legend" id="price-legend"></div></section>
<section><h2>Trades</h2>{trades}</section>
<script type="application/json" id="report-data">{_embed(_chart_data(result, gross, prices))}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_html(result: BacktestResult, gross: BacktestResult | None, path: str | Path, *,
               prices: Sequence[tuple[int, float]] | None = None, title: str | None = None) -> Path:
    """Write the self-contained HTML report of ``result`` (and its gross run, when given) to
    ``path``; ``prices`` ((ts_ms, close) of the traded symbol) draws the price the trades are
    marked on. Returns the path."""
    from scheduler.config import write_output

    out = Path(path)
    write_output(out, render_html(result, gross, prices, title), "the HTML report")
    return out


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #1d2733; background: #fff; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.note { color: #5b6b7c; font-size: 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e3e8ee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.trades { font-size: 12px; }
svg { width: 100%; height: auto; display: block; background: #fbfcfd; border: 1px solid #e3e8ee; }
.legend span { margin-right: 16px; font-size: 12px; }
.bad { color: #b42318; font-weight: 600; } .ok { color: #1a7f37; }
.s-net { color: #1f6feb; } .s-gross { color: #8a97a6; } .s-bench { color: #d97706; }
.s-price { color: #5b6b7c; } .s-entry { color: #1a7f37; } .s-exit { color: #b42318; }
"""

_SCRIPT = """
"use strict";
const NS = "http://www.w3.org/2000/svg";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const PAD = {l: 80, r: 12, t: 12, b: 24};
function node(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}
function day(ts) { return new Date(ts).toISOString().slice(0, 16).replace("T", " "); }
function num(v) { return Math.abs(v) >= 1000 ? v.toLocaleString("en-US", {maximumFractionDigits: 0}) : v.toPrecision(4); }
function legend(id, items) {
  const box = document.getElementById(id);
  if (!box) return;
  box.replaceChildren(...items.map(([cls, label]) => { const s = document.createElement("span"); s.className = cls; s.textContent = "\\u25a0 " + label; return s; }));
}
// one chart: series [{values: [[ts, v]], stroke, dash, fill}], optional markers [[ts, v, up]]
function chart(id, series, markers, unit) {
  const svg = document.getElementById(id);
  const box = svg.viewBox.baseVal, w = box.width, h = box.height;
  const all = series.flatMap((s) => s.values).concat((markers || []).map((m) => [m[0], m[1]]));
  if (all.length < 2) {
    svg.appendChild(node("text", {x: 12, y: 24, fill: "#8a97a6"}, "nothing to draw"));
    return 0;
  }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
  const X = (t) => PAD.l + (w - PAD.l - PAD.r) * (t - x0) / (x1 - x0 || 1);
  const Y = (v) => PAD.t + (h - PAD.t - PAD.b) * (1 - (v - lo) / (hi - lo));
  svg.appendChild(node("line", {x1: PAD.l, y1: h - PAD.b, x2: w - PAD.r, y2: h - PAD.b, stroke: "#c9d1da"}));
  svg.appendChild(node("text", {x: 4, y: PAD.t + 10, "font-size": 11, fill: "#5b6b7c"}, num(hi) + unit));
  svg.appendChild(node("text", {x: 4, y: h - PAD.b, "font-size": 11, fill: "#5b6b7c"}, num(lo) + unit));
  svg.appendChild(node("text", {x: PAD.l, y: h - 6, "font-size": 11, fill: "#5b6b7c"}, day(x0)));
  svg.appendChild(node("text", {x: w - PAD.r, y: h - 6, "font-size": 11, fill: "#5b6b7c", "text-anchor": "end"}, day(x1)));
  let drawn = 0;
  for (const s of series) {
    if (s.values.length < 2) continue;
    let d = s.values.map((p, i) => (i ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1)).join("");
    if (s.fill) d += "L" + X(s.values[s.values.length - 1][0]).toFixed(1) + " " + Y(0).toFixed(1) + "L" + X(s.values[0][0]).toFixed(1) + " " + Y(0).toFixed(1) + "Z";
    const attrs = {d: d, fill: s.fill || "none", stroke: s.stroke, "stroke-width": s.width || 1.5, "data-points": s.values.length};
    if (s.dash) attrs["stroke-dasharray"] = s.dash;
    svg.appendChild(node("path", attrs));
    drawn += s.values.length;
  }
  let marks = 0;
  for (const [t, v, up] of markers || []) {
    const cx = X(t), cy = Y(v), k = up ? 1 : -1;
    const d = "M" + cx.toFixed(1) + " " + cy.toFixed(1) + "l-5 " + (9 * k) + "h10z";
    svg.appendChild(node("path", {d: d, fill: up ? "#1a7f37" : "#b42318", class: up ? "entry" : "exit"}));
    marks += 1;
  }
  svg.setAttribute("data-points", String(drawn));
  svg.setAttribute("data-markers", String(marks));
  return drawn;
}
chart("equity", [
  {values: DATA.benchmark, stroke: "#d97706", width: 1.2},
  {values: DATA.gross, stroke: "#8a97a6", dash: "4 3", width: 1.2},
  {values: DATA.equity, stroke: "#1f6feb", width: 2},
], [], "");
legend("equity-legend", [["s-net", "strategy (net of costs)"]].concat(DATA.gross.length ? [["s-gross", "gross (no costs)"]] : [], DATA.benchmark.length ? [["s-bench", "buy & hold"]] : []));
chart("drawdown", [{values: DATA.drawdown, stroke: "#b42318", fill: "rgba(180, 35, 24, 0.15)", width: 1}], [], "%");
// entries point up from below the price, exits down from above (a long's entry is a buy)
const marks = DATA.entries.map((e) => [e[0], e[1], true]).concat(DATA.exits.map((x) => [x[0], x[1], false]));
chart("price", [{values: DATA.prices, stroke: "#5b6b7c", width: 1}], marks, "");
legend("price-legend", [["s-price", "price"], ["s-entry", "entry"], ["s-exit", "exit"]]);
document.body.setAttribute("data-rendered", "1");
"""
