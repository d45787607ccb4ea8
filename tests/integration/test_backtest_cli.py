"""``go-trader backtest`` and ``go-trader paper`` as a user runs them (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backtest.result import BacktestResult
from tests.integration.harness import REPO, run_cli, write_config


def _cli_in(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def test_backtest_from_flags_on_the_synthetic_market_writes_json(tmp_path):
    out = tmp_path / "bt.json"
    result = run_cli("backtest", "--strategy", "sma_crossover", "--symbols", "BTC/USDT,ETH/USDT", "--source",
                     "synthetic", "--start", "2025-01-01", "--end", "2025-04-01", "--fee-pct", "0.2",
                     "--slippage-pct", "0.1", "--capital", "500", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "sma_crossover-btc" in result.stdout and "sma_crossover-eth" in result.stdout
    doc = json.loads(out.read_text())
    # two strategies (one per symbol), replayed together: their rows, then the account's
    assert [r["result"]["strategy_id"] for r in doc["reports"]] == ["sma_crossover-btc", "sma_crossover-eth", "account"]
    for entry in doc["reports"]:
        net, gross = BacktestResult.from_json(entry["result"]), BacktestResult.from_json(entry["gross"]["result"])
        assert entry["metrics"] and entry["costs"] is not None
        assert net.costs == {"fee_pct": 0.2, "slippage_pct": 0.1}
        assert net.initial_capital_usd == (1000 if net.strategy_id == "account" else 500)
        assert gross.costs == {"fee_pct": 0.0, "slippage_pct": 0.0}
        assert net.fills and net.fees_usd > 0 and net.source == "synthetic"
        assert net.final_equity_usd < gross.final_equity_usd  # the same trades, minus their costs


def test_backtest_of_one_strategy_of_a_config(tmp_path):
    config = write_config(tmp_path, [
        {"id": "a", "type": "spot", "script": "check_strategy.py", "args": ["rsi", "SOL/USDT", "1h"], "capital": 800},
        {"id": "b", "type": "spot", "script": "check_strategy.py", "args": ["macd", "BTC/USDT", "4h"], "capital": 900},
    ], checkers_dir=str(REPO / "checkers"))
    out = tmp_path / "one.json"
    result = run_cli("backtest", "--config", str(config), "--strategy", "b", "--start", "2025-01-01", "--end",
                     "2025-03-01", "--json", str(out))
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(out.read_text())["reports"]
    net = BacktestResult.from_json(entry["result"])
    assert (net.strategy_id, net.timeframe, net.initial_capital_usd) == ("b", "4h", 900)


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "nope", "--symbols", "BTC/USDT"], "unknown spot strategy 'nope'"),
    (["--symbols", "BTC/USDT"], "--strategy is needed"),
    (["--strategy", "rsi", "--symbols", "BTC/USDT", "--start", "2025-02-01", "--end", "2025-01-01"],
     "is not before --end"),
])
def test_backtest_refuses_bad_flags_with_exit_2(args, message):
    result = run_cli("backtest", "--source", "synthetic", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_one_run_prints_its_report_and_writes_the_html(tmp_path):
    html = tmp_path / "r.html"
    result = run_cli("backtest", "--strategy", "rsi", "--symbols", "ETH/USDT", "--source", "synthetic",
                     "--start", "2025-01-01", "--end", "2025-02-01", "--html", str(html))
    assert result.returncode == 0, result.stderr
    assert "rsi-eth (rsi) ETH/USDT 1h" in result.stdout and "costs" in result.stdout
    text = html.read_text()
    assert text.startswith("<!doctype html") or text.lower().startswith("<!doctype html")
    assert "report-data" in text


def test_compare_mode_puts_every_catalog_strategy_in_one_table():
    result = run_cli("backtest", "--mode", "compare", "--symbols", "BTC/USDT", "--source", "synthetic",
                     "--start", "2025-03-01", "--end", "2025-04-01")
    assert result.returncode == 0, result.stderr
    for name in ("sma_crossover", "rsi", "macd", "edge70"):
        assert f"{name}-btc" in result.stdout


@pytest.mark.shared_data
def test_backtest_on_the_real_candles(shared_data, tmp_path):
    out = tmp_path / "real.json"
    result = run_cli("backtest", "--strategy", "bollinger_bands", "--symbols", "BTC/USDT", "--source", "files",
                     "--data-root", str(shared_data / "ohlcv"), "--start", "2024-01-01", "--json", str(out))
    assert result.returncode == 0, result.stderr
    net = BacktestResult.from_json(json.loads(out.read_text())["reports"][0]["result"])
    assert net.source == "files:binance" and len(net.fills) > 10
    assert net.end_ms == 1_778_954_400_000 + 3_600_000  # the default end: where the file ends
    late = run_cli("backtest", "--strategy", "rsi", "--symbols", "BTC/USDT", "--source", "files", "--data-root",
                   str(shared_data / "ohlcv"), "--start", "2027-01-01", "--end", "2027-02-01")
    assert late.returncode == 2 and "is after the end of the data (2026-05-16T19:00:00+00:00)" in late.stderr


def test_a_range_outside_the_synthetic_market_says_where_it_is():
    result = run_cli("backtest", "--strategy", "rsi", "--symbols", "BTC/USDT", "--source", "synthetic",
                     "--start", "2020-01-01", "--end", "2020-02-01")
    assert result.returncode == 1 and "choose --start/--end inside the data" in result.stderr


def test_paper_from_flags_runs_a_daemon_cycle_in_the_current_folder(tmp_path):
    result = _cli_in(tmp_path, "paper", "--strategy", "macd", "--symbols", "BTC/USDT", "--capital", "1000",
                     "--source", "synthetic", "--once", "--no-status-server")
    assert result.returncode == 0, result.stderr
    state = json.loads((tmp_path / "paper-state.json").read_text())
    sleeve = state["sleeves"]["macd-btc"]
    assert sleeve["initial_capital_usd"] == 1000 and sleeve["last_check"]["ok"] is True
    assert state["cycle_count"] == 1
    assert (tmp_path / "paper-logs" / "macd-btc.log").exists()
    again = _cli_in(tmp_path, "paper", "--strategy", "macd", "--symbols", "BTC/USDT", "--source", "synthetic",
                    "--once", "--no-status-server", "--state-file", str(tmp_path / "other.json"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "other.json").exists()


def test_paper_refuses_an_unknown_strategy():
    result = run_cli("paper", "--strategy", "macdd", "--symbols", "BTC/USDT", "--source", "synthetic", "--once")
    assert result.returncode == 2 and "did you mean 'macd'" in result.stderr


def test_the_daemon_command_does_not_import_numpy():
    code = "import sys, scheduler.cli, scheduler.daemon; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True).stdout.strip() \
        == "False"
