"""The HTML backtest report in a real headless browser (Debian's chromium), as
tests/integration/test_dashboard.py drives it: the equity, drawdown and price charts render
(SVG paths with points, one marker per entry and exit), no console errors (a CSP violation is
one), nothing is loaded from elsewhere, and a hostile strategy name is only text."""

from __future__ import annotations

import math
import re
from pathlib import Path

from backtest import report
from backtest.result import BacktestResult, ClosedTrade
from tests.integration.browser import chromium, console, needs_chromium

HOUR_MS = 3_600_000
T0_MS = 1_704_067_200_000

def _price(bar: int) -> float:
    return 100.0 * math.exp(0.2 * math.sin(bar / 25.0) + 0.0004 * bar)


def _run(bars: int = 3000, fee: float = 0.001, strategy_id: str = "sma-btc") -> tuple[BacktestResult, list]:
    """All in for 30 bars every 90 bars, at the close, paying ``fee`` per side."""
    value, equity, exposure, trades, fees = 1000.0, [(T0_MS, 1000.0)], [0.0], [], 0.0
    qty = entry_value = 0.0
    for bar in range(bars):
        if bar % 90 == 10:
            fees += value * fee
            entry_value, value = value, value * (1 - fee)
            qty = value / _price(bar)
        elif bar % 90 == 40 and qty:
            value = qty * _price(bar) * (1 - fee)
            fees += qty * _price(bar) * fee
            trades.append(ClosedTrade("BTC/USDT", "long", T0_MS + (bar - 29) * HOUR_MS, T0_MS + (bar + 1) * HOUR_MS, qty,
                                      _price(bar - 30), _price(bar), value - entry_value, 0.0, 0.0, "signal"))
            qty = 0.0
        held = 10 < bar % 90 <= 40 and qty
        mark = qty * _price(bar + 1) if held else value
        equity.append((T0_MS + (bar + 1) * HOUR_MS, mark))
        exposure.append(1.0 if held else 0.0)
    bench = [(t, 1000.0 * _price(i) / _price(0)) for i, (t, _) in enumerate(equity)]
    result = BacktestResult(strategy_id, "spot", "sma_crossover", ("BTC/USDT",), "1h", HOUR_MS, T0_MS, equity[-1][0],
                            1000.0, tuple(equity), tuple(exposure), tuple(trades), (), fees, 0.0, tuple(bench),
                            {"fast": 20, "slow": 50}, {"fee_pct": fee * 100, "slippage_pct": 0.0}, "synthetic")
    prices = [(T0_MS + (i + 1) * HOUR_MS, _price(i)) for i in range(bars)]
    return result, prices


def _attr(dom: str, svg_id: str, name: str) -> int:
    tag = re.search(rf'<svg id="{svg_id}"[^>]*>', dom)
    assert tag, f"no <svg id={svg_id}> in the page"
    return int(re.search(rf'{name}="(\d+)"', tag.group(0)).group(1))


def test_the_report_is_self_contained(tmp_path: Path) -> None:
    net, prices = _run(400)
    gross, _ = _run(400, fee=0.0)
    page = report.write_html(net, gross, tmp_path / "r.html", prices=prices).read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page), "the report must work offline"
    assert "innerHTML" not in page and "default-src 'none'" in page
    assert page.count("<script") == 2  # the data block and the drawing code: nothing else


@needs_chromium
def test_the_report_renders_in_a_real_browser(tmp_path: Path) -> None:
    net, prices = _run()
    gross, _ = _run(fee=0.0)
    path = report.write_html(net, gross, tmp_path / "report.html", prices=prices)
    dom, err = chromium(tmp_path, path.as_uri(), "--dump-dom", window="1200,2400")
    assert console(err) == [], console(err)
    assert 'data-rendered="1"' in dom, "the drawing script did not finish"
    # net + gross + buy-and-hold, each decimated to at most MAX_CHART_POINTS
    assert _attr(dom, "equity", "data-points") > 3 * 1000
    assert _attr(dom, "drawdown", "data-points") > 1000
    assert _attr(dom, "price", "data-points") > 1000
    assert _attr(dom, "price", "data-markers") == 2 * len(net.trades) > 0
    assert len(re.findall(r'<path d="M[\d.]+ [\d.]+L', dom)) >= 5  # lines with points, not empty paths
    assert "Sharpe" in dom and "gross (no costs)" in dom and "buy &amp; hold" in dom
    shot = tmp_path / "report.png"
    _, err = chromium(tmp_path, path.as_uri(), f"--screenshot={shot}", window="1200,2400")
    assert shot.stat().st_size > 10_000 and console(err) == []


@needs_chromium
def test_a_hostile_name_is_only_text_and_no_prices_still_renders(tmp_path: Path) -> None:
    evil = '</script><script>document.title="pwned"</script><img src=x onerror=alert(1)>'
    net, _ = _run(300, strategy_id=evil)
    path = report.write_html(net, None, tmp_path / "evil.html")
    dom, err = chromium(tmp_path, path.as_uri(), "--dump-dom", window="1200,2400")
    assert console(err) == [], console(err)
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("&lt;/script&gt;&lt;script&gt;document.title=")  # the name, as text
    assert "<img src=" not in dom and 'data-rendered="1"' in dom
    assert _attr(dom, "price", "data-markers") == 2 * len(net.trades)  # marked at the fill prices
    assert "No prices were given" in dom


@needs_chromium
def test_the_policy_blocks_any_other_script(tmp_path: Path) -> None:
    """The CSP is in force: a script that is not the report's own does not run."""
    net, prices = _run(200)
    page = report.render_html(net, None, prices)
    injected = page.replace("</body>", '<script>document.body.setAttribute("data-injected", "1")</script></body>')
    path = tmp_path / "injected.html"
    path.write_text(injected)
    dom, err = chromium(tmp_path, path.as_uri(), "--dump-dom", window="1200,2400")
    assert 'data-rendered="1"' in dom and "data-injected" not in dom.split("<script")[0]
    assert any("Content Security Policy" in line for line in console(err)), console(err)
