"""Options strategies through the backtester: the checker's proposals on the chain of each
day, filled, marked and settled by the engine (synthetic chain; the real Deribit chains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest import runner
from backtest.result import BacktestResult
from market.synthetic import ORIGIN_MS, SyntheticSource
from market.synthetic_options import SyntheticOptions
from scheduler.config import parse_config

DAY = 86_400_000


def _config(name: str, params: dict, market: dict):
    doc = {"market": market, "strategies": [{"id": "o", "type": "options", "script": "check_options.py",
                                             "args": [name, "BTC"], "capital": 100_000, "params": params}]}
    return parse_config(doc, base_dir=Path("."))


def test_the_wheel_on_the_synthetic_chain_sells_settles_and_is_assigned():
    config = _config("wheel", {}, {"source": "synthetic", "seed": 42})
    start = ORIGIN_MS + 400 * DAY
    net, gross = runner.run(config, config.strategies[0], SyntheticSource(42), start, start + 75 * DAY,
                            options_source=SyntheticOptions(42))
    assert BacktestResult.from_json(net.to_json()) == net
    reasons = [f["reason"] for f in net.fills]
    assert "signal" in reasons and "expiry" in reasons and "assignment" in reasons
    assert net.kind == "options" and net.bar_ms == DAY and len(net.equity) == 75  # the first point, then 74 whole days
    assert all(t % DAY == 10 * 3_600_000 for t, _ in net.equity[1:])  # daily at 10:00 UTC
    assert net.trades and all(t.exit_reason in ("expiry", "signal", "profit_target", "loss_stop", "min_dte")
                              for t in net.trades)
    assert gross.fees_usd == 0.0 and net.fees_usd > 0
    assert net.costs["fee_pct"] == 0.03 and gross.costs["fee_pct"] == 0.0
    assert runner.run(config, config.strategies[0], SyntheticSource(42), start, start + 75 * DAY,
                      options_source=SyntheticOptions(42), with_gross=False) == (net, None)


@pytest.mark.shared_data
def test_vol_mean_reversion_on_the_real_deribit_chains(shared_data):
    from market.files_options import FilesOptions
    from market.files_source import FilesSource

    config = _config("vol_mean_reversion", {"sell_above_rank": 50, "buy_below_rank": 50, "dte_tolerance_days": 18},
                     {"source": "files", "root": str(shared_data / "ohlcv")})
    start = 1_767_225_600_000  # 2026-01-01
    net, _ = runner.run(config, config.strategies[0], FilesSource(shared_data / "ohlcv"), start, start + 40 * DAY,
                        options_source=FilesOptions(shared_data))
    fills = [f for f in net.fills if f.get("option")]
    assert fills, "it trades on the real chains"
    for f in fills:  # each at the real chain's bid or ask of that day
        assert f["option"]["price_source"] in ("ask", "bid", "mark+spread", "mark-spread")
    assert net.source == "files:binance+files:deribit"


def test_legs_that_expire_with_no_delivery_price_are_named_in_the_result(shared_data):
    """The real files hold no 1m/5m/15m candles and no delivery prices: an expired leg cannot be
    settled (never at a guessed price), so the result says which legs stayed open, and why."""
    from datetime import datetime

    from backtest import report
    from market.files_options import FilesOptions
    from market.files_source import FilesSource

    config = _config("vol_mean_reversion", {"sell_above_rank": 50, "buy_below_rank": 50, "dte_tolerance_days": 18},
                     {"source": "files", "root": str(shared_data / "ohlcv")})
    start = 1_767_225_600_000  # 2026-01-01
    end = start + 60 * DAY
    net, _ = runner.run(config, config.strategies[0], FilesSource(shared_data / "ohlcv"), start, end,
                        options_source=FilesOptions(shared_data))
    opened = {f["symbol"]: f["option"] for f in net.fills if f.get("option") and f["option"]["effect"] == "open"}
    closed = {f["symbol"] for f in net.fills if f.get("option") and f["option"]["effect"] == "close"}
    expired = sorted(sym for sym, o in opened.items() if sym not in closed
                     and datetime.fromisoformat(o["expiry"].replace("Z", "+00:00")).timestamp() * 1000 <= end)
    assert expired, "the range must hold an expiry for this to prove anything"
    assert len(net.notes) == 1 and all(sym in net.notes[0] for sym in expired), net.notes
    assert "no delivery price" in net.notes[0]
    assert f"NOTE: {net.notes[0]}" in report.terminal_table(net)
    assert BacktestResult.from_json(net.to_json()).notes == net.notes


@pytest.mark.shared_data
def test_orders_refused_on_a_day_old_recorded_chain_say_why_and_what_to_do(shared_data):
    """From January to May 2026, on days whose snapshot comes after the 10:00 check (04-22: the
    check sees 04-21's, taken 10:26), the chain is older than options.max_quote_age_s (1 h):
    STALE_QUOTE, and a note on the daily snapshots; raised to a day, only chains more than a day
    old are refused."""
    from market.files_options import FilesOptions
    from market.files_source import FilesSource

    doc = {"market": {"source": "files", "root": str(shared_data / "ohlcv")},
           "strategies": [{"id": "o", "type": "options", "script": "check_options.py",
                           "args": ["vol_mean_reversion", "BTC"], "capital": 1000}]}
    start, end = 1_767_225_600_000, 1_767_225_600_000 + 135 * DAY  # 2026-01-01 .. 05-16
    runs = []
    for age in (None, 86_400):
        config = parse_config(doc, base_dir=Path("."))
        if age is not None:
            config = config.model_copy(update={"options": config.options.model_copy(update={"max_quote_age_s": age})})
        runs.append(runner.run(config, config.strategies[0], FilesSource(shared_data / "ohlcv"), start, end,
                               options_source=FilesOptions(shared_data), with_gross=False)[0])
    stale, day_old_ok = runs
    assert any("refused by the engine with STALE_QUOTE" in n for n in stale.notes), stale.notes
    assert any("one snapshot a day" in n and "raise options.max_quote_age_s" in n for n in stale.notes)

    def refused(result):
        return sum(int(n.split()[0]) for n in result.notes if "refused by the engine with STALE_QUOTE" in n)

    assert refused(stale) >= 10 and refused(day_old_ok) < refused(stale) / 2, (stale.notes, day_old_ok.notes)
    assert stale.costs["no_side_spread_pct"] == 5.0
