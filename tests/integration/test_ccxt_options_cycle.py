"""Options through the real ccxt client, against the local fake exchange serving the real
Deribit chain of ../shared/data: a cycle's fetch step gets each chain once, the checkers
read it from the cycle's cache, and the engine fills at the exchange's bid and ask.
Faults go through the same server: missing bids, stale quotes, 429 with Retry-After."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler.clock import ManualClock
from scheduler.config import parse_config
from scheduler.daemon import Daemon
from scheduler.state_store import read_trade_log
from tests.fake_exchange import fake_exchange, iso_ms

NOW = iso_ms("2026-03-10T10:20")
BOOK = "/api/v2/public/get_book_summary_by_currency"


def _daemon(tmp_path: Path, fx: Any, strategies: list[dict[str, Any]], **market: Any) -> Daemon:
    doc = {"interval_seconds": 600, "state_file": str(tmp_path / "state.json"), "log_dir": str(tmp_path / "logs"),
           "market": {"source": "ccxt", "exchange": "binance", "base_url": fx.url, "options_base_url": fx.url,
                      "timeout_s": 5, "enable_rate_limit": False, **market},
           "strategies": strategies}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    d = Daemon(parse_config(doc, base_dir=tmp_path), path, clock=ManualClock(datetime.fromtimestamp(NOW / 1000, tz=UTC)),
               state_path=tmp_path / "state.json", log_dir=tmp_path / "logs", stdout_logs=False)
    d.open()
    return d


def _options(sid: str, strategy: str, **params: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": sid, "type": "options", "script": "check_options.py", "args": [strategy, "BTC"],
                           "capital": 20_000}
    if params:
        doc["params"] = params
    return doc


def _book(fx: Any) -> dict[str, dict[str, Any]]:
    """The rows the fake exchange serves for BTC at NOW, by instrument."""
    snap = fx.data.chain_snapshot("BTC", NOW)
    return {r["instrument_name"]: r for r in snap.to_dict("records")}


PUTS = _options("pp", "protective_puts", dte_tolerance_days=20)
CALLS = _options("cc", "covered_calls")


def test_real_chain_through_ccxt_fills_at_the_quotes_and_is_fetched_once(shared_data: Path, tmp_path: Path) -> None:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        d = _daemon(tmp_path, fx, [PUTS, CALLS])
        try:
            report = d.run_cycle()
            assert report is not None and report.failed == 0 and report.fills == 2, d.state.sleeves["pp"].last_check
            assert fx.requests[BOOK] == 1  # one chain for both strategies: the checkers read the cache
            trades = read_trade_log(tmp_path / "state.json")
            book = _book(fx)
            for t in trades:
                row = book[t.symbol]
                want = row["ask_price"] if t.side == "buy" else row["bid_price"]
                assert t.option is not None and t.option.price_source == ("ask" if t.side == "buy" else "bid")
                assert math.isclose(t.option.premium_coin, want, rel_tol=1e-12)
                fee = min(0.0003 * t.option.index_usd, 0.125 * t.fill_price) * t.quantity
                assert math.isclose(t.fee_usd, fee, rel_tol=1e-12)
            for sid in ("pp", "cc"):
                (pos,) = d.state.sleeves[sid].option_positions
                assert set(pos.greeks) == {"delta", "gamma", "theta", "vega"}  # the book summary has none: model
        finally:
            d.close()


def test_a_quote_without_a_bid_sells_at_the_mark_less_the_spread_and_says_so(shared_data: Path,
                                                                              tmp_path: Path) -> None:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        fx.add_fault(BOOK, "no_bids", every=1, count=None)  # every row: bid 0 or missing
        d = _daemon(tmp_path, fx, [CALLS])
        try:
            d.run_cycle()
            (t,) = read_trade_log(tmp_path / "state.json")
            mark = d.state.sleeves["cc"].option_positions[0]
            assert t.side == "sell" and t.option.price_source == "mark-spread"
            row = _book(fx)[t.symbol]
            assert math.isclose(t.option.premium_coin, row["mark_price"] * 0.95, rel_tol=1e-9) or (
                t.option.premium_coin <= row["mark_price"] * 0.95 + 1e-4)
            assert mark.entry_premium_coin == t.option.premium_coin
        finally:
            d.close()


def test_a_stale_chain_is_no_quote_and_no_trade(shared_data: Path, tmp_path: Path) -> None:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        fx.add_fault(BOOK, "stale", lag=3 * 3600, count=None)  # every quote 3 hours old
        d = _daemon(tmp_path, fx, [PUTS])
        try:
            report = d.run_cycle()
            check = d.state.sleeves["pp"].last_check
            assert report is not None and report.fills == 0 and d.state.sleeves["pp"].option_positions == []
            text = (check.error or "") + (check.outcome or "")
            assert "old" in text or "stale" in text.lower(), check
        finally:
            d.close()


def test_429_on_the_chain_is_waited_out_and_retried(shared_data: Path, tmp_path: Path) -> None:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        fx.add_fault(BOOK, "status", status=429, retry_after="1", count=1)
        d = _daemon(tmp_path, fx, [PUTS])
        try:
            report = d.run_cycle()
            assert report is not None and report.failed == 0 and report.fills == 1
            assert fx.requests[BOOK] == 2  # the 429 and the retry, nothing more
        finally:
            d.close()


def test_an_options_exchange_that_keeps_failing_fails_the_check_transient(shared_data: Path, tmp_path: Path) -> None:
    with fake_exchange(shared_data, now_ms=NOW, exchange_info="small") as fx:
        fx.add_fault(BOOK, "status", status=503, count=None)
        d = _daemon(tmp_path, fx, [PUTS], retry_budget_s=0.5, max_retries=1, timeout_s=2)
        try:
            report = d.run_cycle()
            check = d.state.sleeves["pp"].last_check
            assert report is not None and report.failed == 1 and not check.ok
            assert check.error_class == "transient" and "option chain" in check.error
            assert fx.requests[BOOK] <= 3  # the fetch step's tries only; the checker read its record
        finally:
            d.close()
