"""``go-trader backtest``: replay strategies through the engine over recorded history.

    go-trader backtest --config config.json [--strategy ID] [--start 2024-01-01] [--end 2025-01-01]
    go-trader backtest --strategy sma_crossover --symbols BTC/USDT --timeframe 1h --source files --data-root data
    go-trader backtest --mode compare --symbols BTC/USDT --source synthetic

Each run is the config's own strategy, fees, slippage, sizing, stops and risk rules
(backtest/runner.py), once with the costs and once without (gross). Prints a table;
``--json OUT`` writes every result, ``--html OUT`` the report.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backtest.result import BacktestResult
from scheduler.engine.errors import ConfigError
from scheduler.engine.timeframes import DAY_MS, timeframe_ms
from scheduler.flags import file_path, json_object


def _date_ms(value: str) -> int:
    try:
        d = datetime.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD (UTC) or an ISO time") from e
    return int((d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp() * 1000)


#: the most Monte Carlo paths of each method (each path holds a copy of the trades' order)
MAX_PATHS = 100_000
#: the most walk-forward processes (a larger number is a typo, not a machine)
MAX_WORKERS = 256
#: the most walk-forward windows (each is a training search over the grid and a test run)
MAX_WINDOWS = 10_000
#: each strategy's capital without --config and --capital
DEFAULT_CAPITAL_USD = 1000.0
#: the exit status when stdout was closed before the output was all written (``| head``): a
#: shell's 128 + SIGPIPE, what a program a closed pipe ends reports; the files were written
EXIT_BROKEN_PIPE = 141
#: the walk-forward's options, each with its default
WALK_DEFAULTS = {"train_days": 180.0, "test_days": 30.0, "objective": "sharpe", "workers": 1}


def _days(value: str) -> float:
    """A finite number of days > 0 (an argparse type)."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not (math.isfinite(days) and days > 0):
        raise argparse.ArgumentTypeError(f"{value!r}: give a finite number of days > 0")
    return days


def _whole(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number; give {what}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{n}: give {what}, {low} to {high:,}")
        return n
    return parse


def parser() -> argparse.ArgumentParser:
    from backtest.walkforward import OBJECTIVES

    p = argparse.ArgumentParser(prog="go-trader backtest", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", type=Path, help="replay this config's strategies (its market unless --source)")
    p.add_argument("--strategy", help="with --config: one strategy id; without: a catalog or options strategy name")
    p.add_argument("--symbols", help="without --config: BTC/USDT[,ETH/USDT] (options: BTC or ETH)")
    p.add_argument("--timeframe", help="without --config (default 1h)")
    p.add_argument("--params", type=json_object(), help="without --config: JSON parameter overrides")
    p.add_argument("--mode", choices=("run", "compare"), default="run",
                   help="compare: every strategy of the config, or every catalog strategy on --symbols, in one table")
    p.add_argument("--start", type=_date_ms, help="first day (UTC, YYYY-MM-DD); default: a year before the end")
    p.add_argument("--end", type=_date_ms, help="last moment (UTC); default: the end of the data (files) or now")
    p.add_argument("--days", type=_days, help="the last DAYS days up to the end (instead of --start)")
    p.add_argument("--capital", type=float, help="USD per strategy (overrides the config)")
    p.add_argument("--fee-pct", type=float, help="taker fee in percent (overrides the config; 0.1 = 0.1 %%)")
    p.add_argument("--slippage-pct", type=float, help="slippage in percent (overrides the config)")
    p.add_argument("--source", choices=("files", "synthetic"), help="market data (default: the config's, or synthetic)")
    p.add_argument("--data-root", type=Path, help="the files source's folder (what download-data's --root wrote)")
    p.add_argument("--seed", type=int, help="the synthetic market's seed (default: the config's, else 42)")
    p.add_argument("--json", type=file_path, metavar="OUT", help="write every result (net and gross) as JSON")
    p.add_argument("--html", type=file_path, metavar="OUT", help="write the HTML report (one file per strategy)")
    p.add_argument("--monte-carlo", type=_whole(0, MAX_PATHS, "a number of paths (0: off)"), default=0,
                   metavar="PATHS",
                   help="also: trade-order permutation and block bootstrap, PATHS paths each (5/50/95th percentiles)")
    p.add_argument("--lookahead-check", action="store_true",
                   help="also: check that each spot strategy's signals on truncated data equal those on the full data")
    p.add_argument("--walk-forward", type=json_object("a JSON object of non-empty lists", '{"fast": [10, 20]}'),
                   metavar="GRID",
                   help='instead: walk-forward over a parameter grid, e.g. \'{"fast": [10, 20], "slow": [50, 100]}\' '
                        "(one strategy); only out-of-sample figures are reported")
    p.add_argument("--train-days", type=_days, help="walk-forward training window (default 180)")
    p.add_argument("--test-days", type=_days, help="walk-forward test window (default 30)")
    p.add_argument("--objective", choices=tuple(OBJECTIVES), help="walk-forward objective (default sharpe)")
    p.add_argument("--workers", type=_whole(1, MAX_WORKERS, "a number of processes"),
                   help="walk-forward processes (default 1)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="run the walk-forward grid on this Dask distributed scheduler (tcp://host:8786)")
    return p


def _config(args: argparse.Namespace) -> Any:
    from scheduler.config import load_config, parse_config
    from scheduler.flags import config_from_flags, market_from_flags
    from strategies.catalog import CATALOG

    if args.config is not None:
        ignored = [(flag, what) for flag, what, given in (
            ("--symbols", "symbols", args.symbols is not None), ("--timeframe", "timeframe", args.timeframe is not None),
            ("--params", "parameters", args.params is not None)) if given]
        if ignored:
            raise ConfigError([f"{flag} is for a run without --config; with --config each strategy's {what} "
                               f"{'comes' if what == 'timeframe' else 'come'} from the config: change "
                               f"{'it' if what == 'timeframe' else 'them'} there, or run without --config "
                               "(--strategy NAME --symbols ...)" for flag, what in ignored])
        config = load_config(args.config)
        _check_market_flags(args, args.source or ("files" if args.data_root is not None else config.market.source))
        if args.source is not None or args.data_root is not None or args.seed is not None:
            market = market_from_flags(args.source or ("files" if args.data_root is not None else "synthetic"),
                                       args.data_root, args.seed if args.seed is not None else
                                       getattr(config.market, "seed", 42))
            config = config.model_copy(update={"market": parse_config(
                {"market": market, "strategies": [s.model_dump() for s in config.strategies]},
                base_dir=Path.cwd()).market})
        if args.strategy:
            from backtest.runner import find_strategy

            picked = config.model_copy(update={"strategies": [find_strategy(config, args.strategy)]})
            return picked, args.config.resolve().parent, config
        return config, args.config.resolve().parent, None
    if not args.symbols:
        raise ConfigError(["--symbols is needed without --config (e.g. --symbols BTC/USDT)"])
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if not symbols or twice:
        raise ConfigError([f"--symbols {args.symbols!r} " + (f"names {', '.join(twice)} twice; name each once"
                                                              if twice else "names no symbol; give e.g. BTC/USDT")])
    if args.mode == "compare" and not args.strategy and any("/" not in s for s in symbols):
        raise ConfigError([f"--symbols {args.symbols}: --mode compare replays the spot catalog, on pairs such as "
                           "BTC/USDT; an options strategy runs one at a time (--strategy NAME --symbols BTC)"])
    _check_market_flags(args, args.source or "synthetic")
    market = market_from_flags(args.source or "synthetic", args.data_root, 42 if args.seed is None else args.seed)
    timeframe = args.timeframe or "1h"
    capital = DEFAULT_CAPITAL_USD if args.capital is None else args.capital
    if args.mode == "compare" and not args.strategy:
        names = [n for n, info in CATALOG.items() if not info.needs_second_symbol or len(symbols) == 2]
        docs = [config_from_flags(n, symbols, timeframe, capital, market) for n in names]
        strategies = [s for d in docs for s in d["strategies"]]
        doc = {**docs[0], "strategies": strategies}
    elif not args.strategy:
        raise ConfigError(["--strategy is needed without --config (a name from go-trader list-strategies), "
                           "or --mode compare for all of them"])
    else:
        doc = config_from_flags(args.strategy, symbols, timeframe, capital, market, params=args.params)
    return parse_config(doc, base_dir=Path.cwd()), Path.cwd(), None


def _check_market_flags(args: argparse.Namespace, source: str) -> None:
    """--seed is the synthetic market's and --data-root the files source's: one given for the
    other market would be dropped without a word, so it is refused, naming what to do."""
    if args.seed is not None and source != "synthetic":
        raise ConfigError([f"--seed {args.seed} is the synthetic market's seed, and this run reads the {source} "
                           "market; drop --seed, or add --source synthetic"])
    if args.data_root is not None and source == "synthetic":
        raise ConfigError([f"--data-root {args.data_root} is the files source's folder, and this run reads the "
                           "synthetic market; drop --data-root, or use --source files"])


def open_sources(config: Any, base: Path) -> tuple[Any, Any]:
    from market.sources import open_options_source, open_source

    spec = config.market.model_dump()
    if spec.get("source") == "ccxt":
        raise ConfigError(["market.source is ccxt: backtests replay recorded data; use --source files "
                           "(after go-trader download-data) or --source synthetic"])
    if spec.get("source") == "files" and not Path(spec["root"]).is_absolute():
        spec["root"] = str((base / spec["root"]).resolve())
    needs_options = any(s.type == "options" for s in config.strategies)
    return open_source(spec), (open_options_source(_options_spec(spec)) if needs_options else None)


def _options_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The files options source reads <root>/deribit: a root that holds ohlcv/ beside deribit/
    (as ../shared/data does) is the parent of the candles' root."""
    if spec.get("source") != "files" or spec.get("options_root"):
        return spec
    root = Path(spec["root"])
    if not (root / "deribit").is_dir() and (root.parent / "deribit").is_dir():
        return {**spec, "root": str(root.parent)}
    return spec


def _is_files(source: Any) -> bool:
    from market.files_source import FilesSource

    return isinstance(source, FilesSource)


def _now_ms() -> int:
    """This hour (the end of a run on a source that makes data at any time)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return int(now.timestamp() * 1000)


class _Progress:
    """One line on stderr, redrawn, only when stderr is a terminal (a log or a pipe gets nothing)."""

    def __init__(self, label: str) -> None:
        self.label, self.on = label, sys.stderr.isatty()
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.on or time.monotonic() - self.started < 0.5 and done < total:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{self.label[:28]:28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} bars")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _print_tables(rows: list[tuple[BacktestResult, BacktestResult]], *, compare_mode: bool) -> None:
    """One run: its metrics beside gross and buy-and-hold (backtest.report); several (a config,
    or --mode compare): one row each, side by side (backtest.compare)."""
    try:
        from backtest import compare, report
    except ImportError:  # the analytics are a separate module set; the runner works without them
        print(plain_table(rows))
        print("(plain table: backtest/report.py is not installed here)", file=sys.stderr)
        return
    if len(rows) == 1 and not compare_mode:
        print(report.terminal_table(*rows[0]))
    else:
        print(compare.compare_table([net for net, _ in rows], [gross for _, gross in rows]))
        shared = set.intersection(*(set(net.notes) for net, _ in rows)) if len(rows) > 1 else set()
        for note in sorted(shared):  # a note every run has (how they were replayed): once
            print(f"NOTE (every strategy): {note}")
        for net, _ in rows:
            for note in net.notes:
                if note not in shared:
                    print(f"NOTE {net.strategy_id}: {note}")


def _prices(source: Any, result: BacktestResult) -> list[tuple[int, float]] | None:
    """(close time, close) of the traded symbol over the run, for the report's price chart."""
    if result.kind != "spot" or not result.timeframe:
        return None
    bars = (result.end_ms - result.start_ms) // result.bar_ms + 1
    candles = source.fetch_candles(result.symbols[0], result.timeframe, now_ms=result.end_ms, limit=bars)
    return [(int(t) + result.bar_ms, float(c)) for t, c in zip(candles.ts_ms, candles.close, strict=True)]


def plain_table(rows: list[tuple[BacktestResult, BacktestResult]]) -> str:
    """The terminal table when backtest.report is not there: one line per strategy."""
    head = ("strategy", "symbols", "tf", "trades", "net %", "gross %", "fees $", "max dd %", "final $", "hold %")
    lines = [head]
    for net, gross in rows:
        lines.append((net.strategy_id, ",".join(net.symbols), net.timeframe or "-", str(len(net.trades)),
                      f"{_ret(net):+.2f}", f"{_ret(gross):+.2f}", f"{net.fees_usd:,.2f}", f"{_max_dd(net):.2f}",
                      f"{net.final_equity_usd:,.2f}",
                      f"{(net.benchmark[-1][1] / net.initial_capital_usd - 1) * 100:+.2f}" if net.benchmark else "-"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
           for r in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _ret(r: BacktestResult) -> float:
    return (r.final_equity_usd / r.initial_capital_usd - 1) * 100


def _max_dd(r: BacktestResult) -> float:
    peak, worst = float("-inf"), 0.0
    for _, v in r.equity:
        peak = max(peak, v)
        worst = max(worst, (peak - v) / peak * 100 if peak > 0 else 0.0)
    return worst


def _html_path(path: Path, strategy_id: str, many: bool) -> Path:
    return path.with_name(f"{path.stem}-{strategy_id}{path.suffix or '.html'}") if many else path


def _flag_problems(args: argparse.Namespace) -> list[str]:
    """Options given together that cannot both be honoured: each named, with what to do
    instead (rather than one of them silently dropped)."""
    problems = []
    if args.json is not None and args.html is not None and args.json.resolve() == args.html.resolve():
        problems.append(f"--json and --html both name {args.html}: one would overwrite the other; give each "
                        "its own file")
    if args.mode == "compare" and args.params is not None:
        problems.append("--params does not apply to --mode compare (each strategy runs with its own defaults); "
                        "drop it, or run one strategy (--strategy NAME --params ...)")
    if args.walk_forward is not None:
        for flag, given, instead in (
                ("--html", args.html is not None, "the walk-forward writes its out-of-sample result with --json OUT"),
                ("--monte-carlo", bool(args.monte_carlo), "run the chosen parameters without --walk-forward "
                                                          "(--params) to get it"),
                ("--lookahead-check", args.lookahead_check, "run it without --walk-forward"),
                ("--mode compare", args.mode == "compare", "the walk-forward takes one strategy: drop --mode "
                                                           "compare (pick one with --strategy)")):
            if given:
                problems.append(f"{flag} does not apply to --walk-forward; {instead}")
    else:
        given = [f"--{name.replace('_', '-')}" for name in (*WALK_DEFAULTS, "dask_scheduler")
                 if getattr(args, name) is not None]
        if given:
            problems.append(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to a walk-forward; add "
                            "--walk-forward GRID, or drop them")
    return problems


def main(argv: list[str]) -> int:
    """The command; a stdout closed early (``| head``) ends it quietly with EXIT_BROKEN_PIPE,
    after the files were written (they are written before anything is printed)."""
    try:
        code = _main(argv)
        if sys.stdout is not None:  # None: started with stdout closed; the files were written
            sys.stdout.flush()  # here, not at exit, where a broken pipe could only be reported
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    return code


def _stdout_to_devnull() -> None:
    """Point stdout's file at /dev/null, so that what is left in its buffer is dropped at exit
    instead of failing again (Python's own advice for SIGPIPE). A stdout with no file (a test
    capturing it) is left alone."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _main(argv: list[str]) -> int:
    from backtest import data_span
    from backtest.runner import check_capital, check_span, find_strategy, run, with_costs
    from scheduler.config import output_problem, write_output

    args = parser().parse_args(argv)
    problems = _flag_problems(args)
    problems += [output_problem(path, option, example) for path, option, example in (
        (args.json, "--json", "backtest.json"), (args.html, "--html", "report.html")) if path is not None]
    if any(problems):  # before the run, not after it
        raise ConfigError([p for p in problems if p])
    if args.capital is not None:  # as a config's capital, before a config is built from it
        check_capital(args.capital)
    config, base, picked_from = _config(args)
    if all(s.type == "options" for s in config.strategies):  # flags no options fill reads: refused, not dropped
        unused = [flag for flag, given in (("--fee-pct", args.fee_pct is not None),
                                           ("--slippage-pct", args.slippage_pct is not None),
                                           ("--timeframe", args.timeframe is not None)) if given]
        if unused:
            raise ConfigError([f"{', '.join(unused)}: {'it applies' if len(unused) == 1 else 'they apply'} to spot "
                               "strategies only; an options strategy trades daily on the chain, at Deribit's fees "
                               "and the quotes' bid and ask (the config's options section sets them): drop "
                               f"{'it' if len(unused) == 1 else 'them'}"])
    config = with_costs(config, fee_pct=args.fee_pct, slippage_pct=args.slippage_pct,
                        capital=args.capital if args.config is not None else None)
    source, options_source = open_sources(config, base)
    ends = data_span.data_end_ms(source, options_source, config)
    data_end, what_ends = ends if ends is not None else (_now_ms(), "the recorded candles")
    if args.end is not None and (ends is not None or _is_files(source)) and args.end > data_end:
        raise ConfigError([f"--end {_iso(args.end)} is after the end of the data ({_iso(data_end)}), where "
                           f"{what_ends} end; give an earlier --end, or fetch more with go-trader download-data"])
    end_ms = args.end if args.end is not None else data_end
    if args.days is not None and args.start is not None:
        raise ConfigError([f"--days {args.days:g} and --start {_iso(args.start)}: give one of them, not both"])
    start_ms = args.start if args.start is not None else end_ms - int((args.days or 365) * DAY_MS)
    check_span(config.strategies, start_ms, end_ms)
    if start_ms >= end_ms:
        raise ConfigError([f"--start {_iso(start_ms)} is not before --end {_iso(end_ms)}"])
    starts = data_span.data_start_ms(source, options_source, config)
    if starts is not None and end_ms <= starts[0]:
        raise ConfigError([f"the run ends at {_iso(end_ms)}, before the data begins: {starts[1]} start at "
                           f"{_iso(starts[0])}; give a later --end (and --start), or fetch earlier data with "
                           "go-trader download-data"])
    if args.walk_forward is not None:
        source.close()
        notes = []
        if starts is not None and starts[0] > start_ms:  # windows before the data would be flat
            notes.append(f"NOTE: {starts[1]} start at {_iso(starts[0])}, after the requested start "
                         f"{_iso(start_ms)}: the walk-forward starts there")
            start_ms = starts[0]
        return _walk_forward(args, config, base, start_ms, end_ms, notes)
    rows: list[tuple[BacktestResult, BacktestResult]]
    if args.mode == "run" and len(config.strategies) > 1:  # as the daemon runs them: one account, one clock
        from backtest.joint import run_together

        rows = run_together(config, source, start_ms, end_ms, options_source=options_source,
                            progress=_Progress("all strategies"))
    else:  # one strategy, or compare mode: each strategy judged alone
        rows = [run(config, s, source, start_ms, end_ms, progress=_Progress(s.id), options_source=options_source)
                for s in config.strategies]
    if picked_from is not None:  # --strategy ID of a config of several: it was replayed alone, say so
        from dataclasses import replace

        from backtest import notes as run_notes

        said = run_notes.alone(picked_from, find_strategy(picked_from, config.strategies[0].id))
        rows = [(replace(net, notes=said + net.notes), replace(g, notes=said + g.notes)) for net, g in rows]
    extras, lines = _extras(args, config, source, rows, start_ms, end_ms)
    # the files first: a reader of the table that stops early (| head) must not cost them
    if args.json is not None:
        from backtest import report

        doc = {"start_ms": start_ms, "end_ms": end_ms,
               "reports": [report.to_json(net, gross, **extras.get(net.strategy_id, {})) for net, gross in rows]}
        write_output(args.json, report.dumps(doc), "--json")
    if args.html is not None:
        from backtest import report

        for net, gross in rows:
            report.write_html(net, gross, _html_path(args.html, net.strategy_id, len(rows) > 1),
                              prices=_prices(source, net))
    source.close()
    if options_source is not None:
        options_source.close()
    _print_tables(rows, compare_mode=args.mode == "compare")
    for line in lines:
        print(line)
    return 0


def _extras(args: argparse.Namespace, config: Any, source: Any, rows: list[tuple[BacktestResult, BacktestResult]],
            start_ms: int, end_ms: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Monte Carlo and the look-ahead check: by strategy id for the JSON report, and the lines
    to print."""
    out: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for net, _ in rows:
        extra = out.setdefault(net.strategy_id, {})
        if args.monte_carlo:
            from backtest import montecarlo

            runs = [montecarlo.trade_permutation(net, paths=args.monte_carlo),
                    montecarlo.block_bootstrap(net, paths=args.monte_carlo)]
            extra["monte_carlo"] = runs
            for m in (r.to_json() for r in runs):
                fe, dd = m["final_equity_usd"], m["max_drawdown_pct"]
                lines.append(f"{net.strategy_id} Monte Carlo ({m['method'].replace('_', ' ')}, {m['paths']} paths): final equity "
                      f"p5 {fe['p5']:,.2f} / p50 {fe['p50']:,.2f} / p95 {fe['p95']:,.2f} USD; max drawdown "
                      f"p5 {dd['p5']:.2f} / p50 {dd['p50']:.2f} / p95 {dd['p95']:.2f} %")
    if args.lookahead_check:
        from backtest import lookahead
        from backtest.runner import load_spot

        for s in config.strategies:
            if s.type != "spot":
                lines.append(f"{s.id}: look-ahead check skipped (options strategies decide on the chain of the day)")
                continue
            market = load_spot(source, s, start_ms, end_ms, config.runner.candles_limit)
            found = lookahead.check_strategy(s.strategy_name, market.candles, s.params, market.candles_b)
            out.setdefault(s.id, {})["lookahead"] = found
            lines.append(f"{s.id}: look-ahead check " + ("passed" if found.ok else "FAILED: "
                                                         + found.first_mismatch.describe())
                         + f" ({len(found.checked_bars)} bars checked)")
    return out, lines


def _walk_forward(args: argparse.Namespace, config: Any, base: Path, start_ms: int, end_ms: int,
                  notes: list[str]) -> int:
    """The walk-forward over ``--walk-forward``'s grid for the config's one strategy; ``notes``
    printed before its figures."""
    from backtest import walkforward
    from backtest.walk_runner import ConfigRunner

    args = argparse.Namespace(**{**vars(args), **{k: v for k, v in WALK_DEFAULTS.items() if getattr(args, k) is None}})

    if len(config.strategies) != 1:
        raise ConfigError([f"--walk-forward needs one strategy; the config has {len(config.strategies)}: "
                           "pick one with --strategy ID"])
    grid = args.walk_forward
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(['--walk-forward takes a JSON object of non-empty lists, e.g. {"fast": [10, 20]}'])
    s = config.strategies[0]
    runner = ConfigRunner(config.model_dump(mode="json"), s.id, str(base))
    train_ms, test_ms = int(args.train_days * DAY_MS), int(args.test_days * DAY_MS)
    bar_ms = DAY_MS if s.type == "options" else timeframe_ms(s.timeframe or "1h")
    if min(train_ms, test_ms) < 2 * bar_ms:  # two, so that a window holds a whole bar wherever it starts
        raise ConfigError([f"--train-days {args.train_days:g} and --test-days {args.test_days:g}: each window must "
                           f"span at least two of {s.id}'s bars ({2 * bar_ms / DAY_MS:g} days)"])
    if (end_ms - start_ms - train_ms) // test_ms > MAX_WINDOWS:
        raise ConfigError([f"--test-days {args.test_days:g} cuts the range into more than {MAX_WINDOWS:,} test windows; "
                           "give longer windows or a shorter range"])
    try:
        wins = walkforward.windows(start_ms, end_ms, train_ms, test_ms)
    except ValueError:
        raise ConfigError([f"the range {_iso(start_ms)} .. {_iso(end_ms)} holds no {args.train_days:g}-day training "
                           f"window followed by a {args.test_days:g}-day test window; widen it or shorten "
                           "them"]) from None
    result = walkforward.walk_forward(runner, walkforward.param_grid(grid), wins, objective=args.objective,
                                      workers=args.workers, scheduler_address=args.dask_scheduler)
    doc = result.to_json()
    if args.json is not None:  # before the table: a reader that stops early (| head) must not cost it
        from backtest import report
        from scheduler.config import write_output

        write_output(args.json, report.dumps({"walk_forward": doc}), "--json")
    for note in notes:
        print(note)
    print(f"walk-forward of {s.id}: {len(wins)} windows, {doc['grid_size']} parameter sets, objective "
          f"{doc['objective']}; out-of-sample only:")
    for w in doc["windows"]:
        print(f"  test {_iso(w['test_start_ms'])[:10]} .. {_iso(w['test_end_ms'])[:10]}: params {w['params']}, "
              f"return {w['total_return_pct']:+.2f} %" if w["total_return_pct"] is not None else
              f"  test {_iso(w['test_start_ms'])[:10]}: params {w['params']}")
    c = result.metrics.curve
    ret = "n/a" if c.total_return_pct is None else f"{c.total_return_pct:+.2f} %"
    dd = "n/a" if c.max_drawdown_pct is None else f"{c.max_drawdown_pct:.2f} %"
    print(f"  stitched out-of-sample: return {ret}, max drawdown {dd}, {len(result.oos.trades)} trades")
    return 0


def _iso(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat()
