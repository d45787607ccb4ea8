"""``go-trader backtest`` as a pipeline stage and on the real files: the files are written before
the table, a stdout closed early ends the run quietly, and an options run ends where its data
does (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.harness import REPO, _child_env, run_cli


def test_a_closed_stdout_ends_quietly_after_the_files_are_written(tmp_path):
    out, html = tmp_path / "bt.json", tmp_path / "bt.html"
    with subprocess.Popen([sys.executable, "-m", "scheduler", "backtest", "--strategy", "sma_crossover", "--symbols",
                           "BTC/USDT", "--source", "synthetic", "--days", "20", "--monte-carlo", "20", "--json",
                           str(out), "--html", str(html)], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=_child_env(None)) as proc:
        proc.stdout.close()  # the reader is gone before the first line (as `| head -0`)
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=300)
    assert code == 141, err  # 128 + SIGPIPE, as a shell reports a program a pipe ended
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert json.loads(out.read_text())["reports"] and html.is_file()


@pytest.mark.shared_data
def test_an_options_run_ends_where_its_data_ends(shared_data, tmp_path):
    """protective_puts on BTC needs the chains (to 2026-08-22) and the BTC/USDT candles (to
    2026-05-16 19:00): by default the run ends at the earlier, and an --end past it is refused
    naming what ends there (not the wall clock)."""
    out = tmp_path / "pp.json"
    flags = ["backtest", "--strategy", "protective_puts", "--symbols", "BTC", "--source", "files", "--data-root",
             str(shared_data / "ohlcv")]
    result = run_cli(*flags, "--days", "30", "--json", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["end_ms"] == 1_778_958_000_000  # 2026-05-16T19:00Z, the close of the last BTC/USDT 1h candle
    assert doc["reports"][0]["result"]["end_ms"] == 1_778_925_600_000  # that day's 10:00 step
    late = run_cli(*flags, "--start", "2026-05-01", "--end", "2027-01-01")
    assert late.returncode == 2
    assert ("--end 2027-01-01T00:00:00+00:00 is after the end of the data (2026-05-16T19:00:00+00:00), where the "
            "BTC/USDT spot candles of protective_puts-btc end") in late.stderr, late.stderr
