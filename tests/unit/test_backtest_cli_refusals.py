"""``go-trader backtest`` refuses every out-of-range option with exit 2 and a sentence, before it
allocates or starts anything (each of these once ended in a traceback: NaN fees, slippage of
200 %, --days inf or 1e9, a billion Monte Carlo paths, 100,000 worker processes, ...)."""

from __future__ import annotations

import pytest

from scheduler.cli import main
from tests.integration.harness import REPO, write_config

FLAGS = ["backtest", "--source", "synthetic", "--strategy", "sma_crossover", "--symbols", "BTC/USDT"]
WALK = [*FLAGS, "--days", "400", "--walk-forward", '{"fast": [10, 15]}']


@pytest.mark.parametrize(("args", "message"), [
    ([*FLAGS, "--days", "5", "--fee-pct", "nan"], "--fee-pct nan: input should be a finite number; it is the taker "
                                                  "fee in percent, a finite number >= 0 and < 5"),
    ([*FLAGS, "--days", "5", "--fee-pct", "-0.1"], "--fee-pct -0.1: input should be greater than or equal to 0"),
    ([*FLAGS, "--days", "5", "--slippage-pct", "200"], "--slippage-pct 200.0: input should be less than 5"),
    ([*FLAGS, "--days", "5", "--slippage-pct", "inf"], "--slippage-pct inf: input should be a finite number"),
    ([*FLAGS, "--days", "inf"], "argument --days: 'inf': give a finite number of days > 0"),
    ([*FLAGS, "--days", "nan"], "argument --days: 'nan': give a finite number of days > 0"),
    ([*FLAGS, "--days", "-3"], "argument --days: '-3': give a finite number of days > 0"),
    ([*FLAGS, "--days", "1e9"], "the run would start before 1970-01-01"),
    ([*FLAGS, "--start", "2026-01-01", "--days", "4"], "--days 4 and --start 2026-01-01T00:00:00+00:00: give one"),
    ([*FLAGS, "--start", "2020-01-01", "--end", "9999-01-01"],
     "holds 69,942,480 1h bars, more than the 5,000,000 one replay takes"),
    ([*FLAGS, "--days", "5", "--monte-carlo", "1000000000"], "give a number of paths (0: off), 0 to 100,000"),
    ([*FLAGS, "--days", "5", "--monte-carlo", "-1"], "give a number of paths (0: off), 0 to 100,000"),
    ([*WALK, "--train-days", "nan"], "argument --train-days: 'nan': give a finite number of days > 0"),
    ([*WALK, "--test-days", "0.0000001"], "each window must span at least two of sma_crossover-btc's bars"),
    ([*WALK, "--train-days", "-5"], "argument --train-days: '-5': give a finite number of days > 0"),
    ([*FLAGS, "--days", "2000", "--walk-forward", '{"fast": [10]}', "--train-days", "2", "--test-days", "0.1"],
     "more than 10,000 test windows"),
    ([*FLAGS, "--days", "100", "--walk-forward", '{"fast": [10]}'], "holds no 180-day training window followed by "
                                                                   "a 30-day test window"),
    ([*WALK, "--workers", "0"], "argument --workers: 0: give a number of processes, 1 to 256"),
    ([*WALK, "--workers", "100000"], "argument --workers: 100000: give a number of processes, 1 to 256"),
    ([*WALK, "--workers", "two"], "argument --workers: 'two' is not a whole number"),
    ([*WALK, "--objective", "nope"], "argument --objective: invalid choice: 'nope'"),
    ([*FLAGS, "--days", "5", "--capital", "0"], "--capital 0.0: input should be greater than 0; it is each "
                                                "strategy's starting cash in USD"),
    (["backtest", "--source", "synthetic", "--mode", "compare", "--symbols", "BTC/USDT", "--days", "5", "--capital",
      "0"], "--capital 0.0: input should be greater than 0; it is each strategy's starting cash in USD"),
    ([*WALK, "--html", "r.html"], "--html does not apply to --walk-forward; the walk-forward writes its "
                                  "out-of-sample result with --json OUT"),
    ([*WALK, "--monte-carlo", "10"], "--monte-carlo does not apply to --walk-forward"),
    ([*WALK, "--lookahead-check"], "--lookahead-check does not apply to --walk-forward"),
    ([*WALK, "--mode", "compare"], "--mode compare does not apply to --walk-forward"),
    ([*FLAGS, "--days", "5", "--workers", "2", "--train-days", "9"],
     "--train-days, --workers only apply to a walk-forward; add --walk-forward GRID, or drop them"),
    ([*FLAGS, "--days", "5", "--dask-scheduler", "tcp://x:1"], "--dask-scheduler only applies to a walk-forward"),
    (["backtest", "--source", "files", "--data-root", "d", "--strategy", "rsi", "--symbols", "BTC/USDT", "--seed", "3"],
     "--seed 3 is the synthetic market's seed, and this run reads the files market; drop --seed, or add --source "
     "synthetic"),
    ([*FLAGS, "--days", "5", "--data-root", "d"], "--data-root d is the files source's folder, and this run reads "
                                                  "the synthetic market; drop --data-root, or use --source files"),
    ([*FLAGS, "--days", "5", "--json", "same.out", "--html", "same.out"],
     "--json and --html both name same.out: one would overwrite the other"),
    ([*FLAGS, "--days", "5", "--json", "reports/"], "argument --json: 'reports/' names a folder (it ends in a slash)"),
    ([*FLAGS, "--days", "5", "--html", "reports/"], "argument --html: 'reports/' names a folder"),
    (["backtest", "--source", "synthetic", "--mode", "compare", "--symbols", "BTC/USDT", "--days", "5", "--params",
      '{"fast": 5}'], "--params does not apply to --mode compare"),
    (["backtest", "--source", "synthetic", "--strategy", "vol_mean_reversion", "--symbols", "BTC", "--days", "5",
      "--fee-pct", "1", "--slippage-pct", "1"], "--fee-pct, --slippage-pct: they apply to spot strategies only"),
    (["backtest", "--source", "synthetic", "--strategy", "vol_mean_reversion", "--symbols", "BTC", "--days", "5",
      "--timeframe", "1d"], "--timeframe: it applies to spot strategies only"),
])
def test_a_bad_option_is_refused_with_exit_2_and_no_traceback(args, message, capsys):
    try:
        code = main(args)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err, err


def test_a_closed_stdout_still_writes_the_files_and_exits_0(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r.json"
    run = subprocess.run(f"{sys.executable} -m scheduler {' '.join(FLAGS)} --days 3 --json {out} >&-", shell=True,
                         cwd=REPO, capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert out.read_text().startswith("{")


def test_a_config_run_checks_the_capital_override(tmp_path, capsys):
    config = write_config(tmp_path, [{"id": "a", "type": "spot", "script": "check_strategy.py",
                                      "args": ["rsi", "BTC/USDT", "1h"], "capital": 800}],
                          checkers_dir=str(REPO / "checkers"))
    for bad, said in (("inf", "--capital inf: input should be a finite number"),
                      ("-5", "--capital -5.0: input should be greater than 0"),
                      ("2e12", "--capital 2000000000000.0: input should be less than or equal to 1000000000000")):
        assert main(["backtest", "--config", str(config), "--days", "3", "--capital", bad]) == 2
        assert said in capsys.readouterr().err


def test_a_config_run_refuses_the_flags_that_only_build_a_config(tmp_path, capsys):
    config = write_config(tmp_path, [{"id": "a", "type": "spot", "script": "check_strategy.py",
                                      "args": ["rsi", "BTC/USDT", "1h"], "capital": 800}],
                          checkers_dir=str(REPO / "checkers"))
    for flag, value, said in (("--symbols", "ETH/USDT", "each strategy's symbols come from the config"),
                              ("--timeframe", "4h", "each strategy's timeframe comes from the config"),
                              ("--params", '{"period": 3}', "each strategy's parameters come from the config")):
        assert main(["backtest", "--config", str(config), "--source", "synthetic", "--days", "3", flag, value]) == 2
        assert f"{flag} is for a run without --config; with --config {said}" in capsys.readouterr().err


@pytest.mark.parametrize(("where", "message"), [
    ("folder", "--json: {tmp} is a folder; name a file in it, e.g. {tmp}/backtest.json"),
    ("under_a_file", "--json: {tmp}/f exists and is not a folder, so {tmp}/f/x.json cannot be created"),
])
def test_an_unusable_report_path_is_refused_before_the_run(where, message, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    path = {"folder": tmp_path, "under_a_file": tmp_path / "f" / "x.json"}[where]
    assert main([*FLAGS, "--days", "5", "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err, err


def test_report_folders_are_created_and_a_failed_write_says_where(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "bt.json"
    assert main([*FLAGS, "--days", "5", "--json", str(out), "--html", str(tmp_path / "html" / "r.html")]) == 0
    assert out.is_file() and (tmp_path / "html" / "r.html").is_file()
    capsys.readouterr()
    assert main([*FLAGS, "--days", "5", "--html", "/proc/no-such-report.html"]) == 1  # /proc takes no new files
    err = capsys.readouterr().err
    assert "the HTML report: could not write /proc/no-such-report.html" in err and "Traceback" not in err, err


def test_an_options_run_outside_the_chains_says_so(shared_data, capsys):
    # the real chains run from 2025-12-30 to 2026-08-22: November 2026 is past their end (refused as
    # a spot run past its candles is), June 2025 before their start
    args = ["backtest", "--source", "files", "--data-root", str(shared_data), "--strategy", "covered_calls",
            "--symbols", "BTC"]
    assert main([*args, "--start", "2026-11-01", "--end", "2026-11-30"]) == 2
    err = capsys.readouterr().err
    assert ("--end 2026-11-30T00:00:00+00:00 is after the end of the data (2026-08-22T10:35:36.141000+00:00), where "
            "the BTC option chains of covered_calls-btc (the last taken at 2026-08-22T09:35:36.141000Z) end") in err, err
    assert main([*args, "--start", "2025-06-01", "--end", "2025-07-01"]) == 2
    err = capsys.readouterr().err
    assert ("the run ends at 2025-07-01T00:00:00+00:00, before the data begins: the BTC option chains of "
            "covered_calls-btc start at 2025-12-30T17:31:15.944000+00:00") in err, err


def test_the_seed_of_a_config_run_is_the_configs_unless_seed_is_given(tmp_path, capsys):
    """--source synthetic used to replace a synthetic config's seed by 42, and --seed alone was
    dropped; a files config with --seed is refused."""
    import json

    strategies = [{"id": "a", "type": "spot", "script": "check_strategy.py", "args": ["rsi", "BTC/USDT", "1h"],
                   "params": {"period": 5, "oversold": 40, "overbought": 60}, "capital": 800}]
    config = write_config(tmp_path, strategies, checkers_dir=str(REPO / "checkers"),
                          market={"source": "synthetic", "seed": 5})
    runs = {}
    for name, extra in (("config", []), ("source", ["--source", "synthetic"]), ("seed5", ["--seed", "5"]),
                        ("seed6", ["--seed", "6"])):
        out = tmp_path / f"run-{name}.json"
        assert main(["backtest", "--config", str(config), "--start", "2026-01-01", "--end", "2026-01-08",
                     "--json", str(out), *extra]) == 0, capsys.readouterr().err
        runs[name] = json.loads(out.read_text())["reports"][0]["result"]["fills"]
    assert runs["config"] and runs["config"] == runs["source"] == runs["seed5"] != runs["seed6"]
    files = tmp_path / "files.json"
    files.write_text(json.dumps({**json.loads(config.read_text()), "market": {"source": "files", "root": str(tmp_path)}}))
    assert main(["backtest", "--config", str(files), "--days", "3", "--seed", "1"]) == 2
    assert "--seed 1 is the synthetic market's seed, and this run reads the files market" in capsys.readouterr().err
