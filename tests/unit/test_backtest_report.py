"""backtest.report and backtest.compare without a browser (issue 10 items 6, 9, 10): the JSON
report carries every trade and figure and is strict JSON, the terminal tables, decimation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backtest import compare, metrics, report
from backtest.montecarlo import trade_permutation
from backtest.result import BacktestResult
from tests.unit.backtest_fixtures import DAY_MS, T0_MS, result, trade

GROSS = {"fee_pct": 0.0, "slippage_pct": 0.0}


def _pair(strategy_id: str = "s1", net_end: float = 1050.0, gross_end: float = 1062.0):
    trades = [trade(10.0, T0_MS, T0_MS + DAY_MS), trade(-5.0, T0_MS + 2 * DAY_MS, T0_MS + 3 * DAY_MS)]
    net = result([1000, 1010, 990, 1030, net_end], trades=trades, benchmark=[1000, 1020, 980, 1000, 1100],
                 fees_usd=2.0, slippage_usd=0.5, strategy_id=strategy_id)
    gross = result([1000, 1012, 995, 1040, gross_end], trades=trades, costs=GROSS, strategy_id=strategy_id)
    return net, gross


def test_json_report_has_every_trade_and_figure_and_is_strict() -> None:
    net, gross = _pair()
    flat = result([1000.0] * 4)  # undefined Sharpe etc. must be null, never NaN
    for doc in (report.to_json(net, gross, monte_carlo=[trade_permutation(net, paths=20)]), report.to_json(flat)):
        text = report.dumps(doc)
        back = json.loads(text)
        assert back["version"] == report.REPORT_VERSION
    doc = json.loads(report.dumps(report.to_json(net, gross)))
    assert BacktestResult.from_json(doc["result"]) == net  # all trades and fills, exactly
    assert doc["metrics"] == json.loads(json.dumps(metrics.compute(net).to_json()))
    assert doc["gross"]["metrics"]["curve"]["total_return_pct"] == pytest.approx(6.2)
    assert doc["costs"]["edge_eaten"] is False and doc["costs"]["cost_drag_usd"] == pytest.approx(12.0)
    assert json.loads(report.dumps(report.to_json(flat)))["metrics"]["curve"]["sharpe"] is None


def test_terminal_table_shows_net_gross_buy_and_hold_and_the_verdict() -> None:
    net, gross = _pair(net_end=995.0)  # a gross profit of 62 turned into a loss
    text = report.terminal_table(net, gross)
    head = text.splitlines()[1]
    assert "net" in head and "gross (no costs)" in head and "buy & hold" in head
    assert "COSTS EAT THE EDGE" in text and "Sharpe" in text and "max drawdown duration" in text
    assert "-0.50%" in text  # the net total return
    only = report.terminal_table(result([1000.0] * 3))
    assert "gross" not in only and "undefined: " in only and "sharpe: the per-bar returns do not vary" in only


def test_compare_rows_and_table() -> None:
    a, ga = _pair("alpha")
    b, gb = _pair("beta", net_end=995.0)
    rows = compare.compare([a, b], [ga, gb])
    assert [r["strategy_id"] for r in rows] == ["alpha", "beta"]
    assert rows[0]["return_pct"] == pytest.approx(5.0) and rows[0]["buy_hold_return_pct"] == pytest.approx(10.0)
    assert rows[0]["trades"] == 2 and rows[0]["win_rate_pct"] == 50 and rows[0]["fees_usd"] == 2.0
    assert (rows[0]["edge_eaten"], rows[1]["edge_eaten"]) == (False, True)
    json.dumps(rows, allow_nan=False)
    text = compare.compare_table([a, b], [ga, gb])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].split()[:2] == ["strategy", "symbols"]
    assert lines[2].startswith("alpha") and lines[3].rstrip().endswith("YES")
    assert "costs eat edge" not in compare.compare_table([a, b])
    with pytest.raises(ValueError, match="1 gross runs for 2 runs"):
        compare.compare([a, b], [ga])
    assert compare.compare_table([]).count("\n") == 1  # an empty comparison is a header only


def test_decimate_keeps_the_extremes_and_the_ends() -> None:
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(0, 1, 50_000))
    points = [(T0_MS + i, float(v)) for i, v in enumerate(values)]
    out = report.decimate(points, 500)
    assert len(out) <= 500 and out[0] == points[0] and out[-1] == points[-1]
    assert min(v for _, v in out) == values.min() and max(v for _, v in out) == values.max()
    assert [t for t, _ in out] == sorted({t for t, _ in out})
    assert report.decimate(points[:10], 500) == points[:10]


def test_html_embeds_its_data_safely_and_hashes_its_script() -> None:
    net, gross = _pair('x</script><script>alert(1)</script>')
    page = report.render_html(net, gross, [(T0_MS, 1.0), (T0_MS + DAY_MS, 2.0)])
    assert "</script><script>alert(1)" not in page
    assert report._sha256(report._SCRIPT) in page and report._sha256(report._STYLE) in page
    data = page.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
    doc = json.loads(data)
    assert len(doc["entries"]) == len(doc["exits"]) == 2 and doc["gross"] and doc["prices"]
