"""The ``go-trader`` command.

    go-trader --config config.json              run forever (the systemd service)
    go-trader --config config.json --once       one cycle of every strategy, then exit
    go-trader validate-config --config FILE     check a config, run nothing
    go-trader status --config FILE              print /status from the saved state (no daemon needed)
    go-trader list-strategies                   names, defaults, descriptions
    go-trader download-data ...                 fetch candles into the files layout
    go-trader reset-breaker --strategy ID       lift a strategy's risk blocks (audited)
    go-trader reset-kill-switch                 lift the portfolio kill switch (audited)
    go-trader trade --strategy ID enter|close   a manual trade, sized by the backend
    go-trader reconcile                         rebuild the books from the trade log and compare
    go-trader backtest ...                      replay strategies through the engine over history
    go-trader paper --strategy macd --symbols BTC/USDT --capital 1000   a daemon from flags alone
    go-trader help [COMMAND]                    this list, or one command's options

The commands that change state go to the running daemon over HTTP (they need
GO_TRADER_STATUS_TOKEN) or, when no daemon holds the state file, apply directly.

Exit status: 0 success, 2 configuration error, 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path

from scheduler.engine.errors import ConfigError, GoTraderError
from scheduler.flags import config_from_flags, file_path, json_object, market_from_flags

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=Path("config.json"), metavar="FILE",
                   help="config file (default: config.json)")


#: every command and what it does, for `go-trader --help` (the keys must match COMMANDS)
SUMMARIES = {
    "validate-config": "check a config and report every problem; runs nothing",
    "status": "print the /status document from the saved state (no daemon needed)",
    "list-strategies": "spot and options strategy names, defaults and descriptions",
    "download-data": "fetch candles through ccxt into the files layout, only what is missing",
    "reset-breaker": "lift every risk block of one strategy (audited)",
    "reset-kill-switch": "lift the portfolio kill switch (audited)",
    "trade": "a manual enter or close through the same engine and risk rules",
    "reconcile": "rebuild the books from the trade log and compare with the state",
    "backtest": "replay one strategy or a whole config through the engine over recorded history",
    "paper": "paper-trade one strategy built from flags (no config file): --strategy, --symbols, --capital",
    "help": "this text, or `go-trader help COMMAND` for one command's options",
}


def _run_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:19} {text}" for name, text in SUMMARIES.items())
    p = argparse.ArgumentParser(
        prog="go-trader", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="go-trader [--config FILE] [--once] [--state-file P] [--log-dir D] [--no-status-server]\n"
              "       go-trader COMMAND [options]",
        description="Paper-trading scheduler. Without a command it runs the scheduler: forever (the\n"
                    "systemd service), or one cycle of every strategy with --once.",
        epilog=f"commands:\n{commands}\n\nExit status: 0 success, 2 configuration error, 1 any other failure.")
    _config_arg(p)
    p.add_argument("--once", action="store_true", help="run one cycle of every strategy, save, and exit")
    p.add_argument("--state-file", type=file_path, metavar="P", help="override the config's state_file")
    p.add_argument("--log-dir", type=Path, metavar="D", help="override the config's log_dir")
    p.add_argument("--no-status-server", action="store_true", help="do not serve /status and /health")
    return p


def _paths(args: argparse.Namespace, config):  # type: ignore[no-untyped-def]
    from scheduler.config import resolve_path

    state = Path(args.state_file or resolve_path(args.config, config.state_file))
    logs = args.log_dir or resolve_path(args.config, config.log_dir)
    try:  # the state file's own name is not resolved: a link there is refused, never followed
        return state.parent.resolve() / state.name, Path(logs).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name the system refuses
        raise ConfigError([f"{'--state-file' if args.state_file else 'state_file'} / "
                           f"{'--log-dir' if args.log_dir else 'log_dir'}: cannot resolve the path: {e}"]) from e


def _check_startup(args: argparse.Namespace, config, state_path: Path, log_dir: Path, *,  # type: ignore[no-untyped-def]
                   serve_status: bool) -> None:
    """Every check that can run before a file is written (ConfigError, exit status 2)."""
    import os

    from scheduler.config import check_startup

    check_startup(config, args.config, state_path=state_path, log_dir=log_dir,
                  env=os.environ if serve_status else None,
                  state_label="--state-file" if getattr(args, "state_file", None) else "state_file",
                  log_label="--log-dir" if getattr(args, "log_dir", None) else "log_dir")


def _require_state(state_path: Path, config_path: Path) -> None:
    """Commands that read or change a saved state refuse to start one: only the daemon does."""
    if not state_path.exists():
        raise GoTraderError(f"state file {state_path} does not exist: no daemon has run with this config yet (or "
                            f"--state-file names the wrong file); start one with 'go-trader --config {config_path}' "
                            "(or --once), then try again")


def cmd_run(argv: Sequence[str]) -> int:
    from scheduler.config import load_config

    args = _run_parser().parse_args(argv)
    return _run_daemon(args, load_config(args.config))


def _run_daemon(args: argparse.Namespace, config) -> int:  # type: ignore[no-untyped-def]
    """Start the daemon for ``config`` (``args``: config path, --once, --state-file, ...)."""
    from scheduler.clock import SystemClock
    from scheduler.daemon import Daemon, install_signal_handlers

    state_path, log_dir = _paths(args, config)
    _check_startup(args, config, state_path, log_dir, serve_status=not args.no_status_server)
    daemon = Daemon(config, args.config, clock=SystemClock(), state_path=state_path, log_dir=log_dir)
    stop = threading.Event()
    install_signal_handlers(stop, daemon.wake)
    if not args.once and not args.no_status_server:
        daemon.bind_status_server()  # a port in use refuses the start before a file is written
    try:
        daemon.open()
    except BaseException:
        daemon.close()
        raise
    try:
        if args.once:
            report = daemon.run_cycle(force=True, stop=stop)
            if report is not None and report.failed:
                print(f"go-trader: {report.failed} of {report.checked} checks failed: {', '.join(report.failed_ids)}"
                      " (the reasons are in the log above)", file=sys.stderr)
            return EXIT_OK if report is not None and not report.failed else EXIT_FAILURE
        if not args.no_status_server:
            daemon.start_status_server()
        daemon.serve_forever(stop)
        return EXIT_OK if not daemon.halted else EXIT_FAILURE
    finally:
        daemon.close()


def cmd_validate(argv: Sequence[str]) -> int:
    from scheduler.config import load_config

    p = argparse.ArgumentParser(prog="go-trader validate-config", description="Check a config file; run nothing.")
    _config_arg(p)
    args = p.parse_args(argv)
    config = load_config(args.config)
    state_path, log_dir = _paths(argparse.Namespace(state_file=None, log_dir=None, config=args.config), config)
    _check_startup(args, config, state_path, log_dir, serve_status=True)
    kinds = {k: sum(s.type == k for s in config.strategies) for k in ("spot", "options")}
    print(f"{args.config}: OK ({kinds['spot']} spot and {kinds['options']} options strategies, "
          f"market {config.market.source}, every {config.interval_seconds}s)")
    return EXIT_OK


def cmd_status(argv: Sequence[str]) -> int:
    from datetime import datetime

    from scheduler.config import load_config
    from scheduler.engine.models import State
    from scheduler.state_store import load_state
    from scheduler.status import build_status

    p = argparse.ArgumentParser(prog="go-trader status", description="Print the /status document from the saved "
                                "state (reads state.json; needs no running daemon).")
    _config_arg(p)
    p.add_argument("--state-file", type=file_path)
    args = p.parse_args(argv)
    config = load_config(args.config)
    state_path, _ = _paths(argparse.Namespace(state_file=args.state_file, log_dir=None, config=args.config), config)
    _require_state(state_path, args.config)
    state = load_state(state_path) or State()
    from scheduler.notify.service import NotifyService

    notifications = NotifyService(config.notifications, state_path).status_of(state, live=False)
    doc = build_status(state, config, {}, started_at=datetime.now(UTC), halted=None, notifications=notifications)
    print(json.dumps(doc, indent=2))
    return EXIT_OK


def cmd_list_strategies(argv: Sequence[str]) -> int:
    argparse.ArgumentParser(prog="go-trader list-strategies",
                            description="List the spot and the options strategies, with their parameters.").parse_args(argv)
    try:
        import strategies

        print(strategies.describe())
    except (ImportError, AttributeError):
        from strategies.catalog import CATALOG

        for info in CATALOG.values():
            print(f"{info.name:16} {', '.join(f'{k}={v}' for k, v in info.defaults.items()):60} {info.description}")
    import dataclasses

    from options.params import PARAMS, Params

    print("\noptions strategies (args: [strategy, BTC|ETH]; parameters shared by all: quantity, "
          "dte_tolerance_days=7.0, max_positions=4, min_score=0.3, min_premium=0.0001, rate=0.0):")
    shared = {f.name for f in dataclasses.fields(Params)}
    for name, cls in PARAMS.items():
        own = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls) if f.name not in shared)
        print(f"{name:20} {own}")
    return EXIT_OK


def cmd_download(argv: Sequence[str]) -> int:
    from market.download import main as download_main

    return int(download_main(list(argv)))


def _text_arg(name: str, max_chars: int | None = None) -> Callable[[str], str]:
    """An argparse type: the option's text, or exit 2 saying what is allowed (text that cannot be
    saved as UTF-8, such as a byte of another encoding, would halt the daemon at its next save)."""
    from scheduler.control import TEXT_MAX_CHARS, text_problem

    def check(value: str) -> str:
        problem = text_problem(name, value, max_chars or TEXT_MAX_CHARS)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    return check


def _request_id_arg(value: str) -> str:
    from scheduler.control import REQUEST_ID, REQUEST_ID_RULE

    if not REQUEST_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{REQUEST_ID_RULE}, not {value[:80]!r}")
    return value


def _control(prog: str, description: str, kind: str, extra: Callable[[argparse.ArgumentParser], None] | None,
             body: Callable[[argparse.Namespace], dict[str, str]], argv: Sequence[str]) -> int:
    import getpass
    import os
    import time
    import urllib.error
    import urllib.request
    import uuid

    from scheduler.clock import SystemClock
    from scheduler.config import STATUS_TOKEN_ENV, load_config
    from scheduler.control import BY_MAX_CHARS, text_problem
    from scheduler.daemon import Daemon
    from scheduler.http_status import CONTROL
    from scheduler.state_store import LockHeld, StateLock, check_owner, endpoint_path, refuse_links

    p = argparse.ArgumentParser(prog=f"go-trader {prog}", description=description)
    _config_arg(p)
    p.add_argument("--state-file", type=file_path)
    p.add_argument("--by", type=_text_arg("--by", BY_MAX_CHARS),
                   help="who is doing this, for the audit record (default: your user name)")
    if kind != "reconcile":
        p.add_argument("--request-id", type=_request_id_arg, help="makes the command idempotent: the same id again is answered with "
                       "the first run's result instead of running twice (default: a new random id, printed)")
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if args.by is None:
        user = getpass.getuser()
        problem = text_problem("your user name", user, BY_MAX_CHARS)
        if problem:
            p.error(f"{problem}: it cannot go in the audit record as it is; give --by NAME")
    config = load_config(args.config)
    state_path, log_dir = _paths(argparse.Namespace(state_file=args.state_file, log_dir=None, config=args.config),
                                 config)
    _check_startup(args, config, state_path, log_dir, serve_status=False)
    _require_state(state_path, args.config)
    by = f"{args.by or getpass.getuser()} (cli)"
    payload: dict[str, str] = body(args)
    if kind != "reconcile":
        payload["request_id"] = args.request_id or uuid.uuid4().hex
    # before anything is created or locked: a lock file made by another user (root) would keep
    # the service (its owner) from starting
    refuse_links(state_path)
    check_owner(state_path)
    lock = StateLock(state_path)
    try:
        lock.acquire()
    except LockHeld:  # only a held lock means a running daemon; any other error says what it is
        token = os.environ.get(STATUS_TOKEN_ENV)
        if not token:
            raise GoTraderError(f"a running daemon holds {state_path}; set {STATUS_TOKEN_ENV} to the token it was "
                                "started with, so this command can be sent to it over HTTP (a daemon started "
                                "without one has its control endpoints off: restart it with the variable set, or "
                                "stop it and run this command again to apply it directly)") from None
        host = "127.0.0.1" if config.status.host in ("0.0.0.0", "::") else config.status.host
        host = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL
        path = next(k for k, v in CONTROL.items() if v == kind)
        result = None
        for attempt in range(3):  # the request id makes a retry safe: it is answered, not run twice
            try:  # the running daemon's actual address (its port may be ephemeral)
                base = endpoint_path(state_path).read_text().strip()
            except OSError:
                base = f"http://{host}:{config.status.port}"
            req = urllib.request.Request(f"{base}{path}", method="POST",
                                         data=json.dumps({**payload, "by": by}).encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    result = json.load(r)
                break
            except urllib.error.HTTPError as e:
                result = json.load(e)
                e.close()
                break
            except OSError as e:
                last_error = e
                time.sleep(2.0 * (attempt + 1))
        if result is None:
            again = (f"; its outcome is unknown: run the same command again with --request-id "
                     f"{payload['request_id']} (if it was applied you get its answer, otherwise it is applied "
                     "once)" if "request_id" in payload else "")
            raise GoTraderError(f"could not reach the daemon at {base}: {last_error}{again}") from None
    else:
        lock.release()
        daemon = Daemon(config, args.config, clock=SystemClock(), state_path=state_path,
                        log_dir=log_dir, stdout_logs=False)
        daemon.open(strict=kind != "reconcile")  # reconcile reports a difference, the rest refuse it
        from scheduler.control import error_text

        try:
            result = daemon.execute(kind, payload, by)
        except (KeyError, ValueError) as e:
            result = {"ok": False, "error": error_text(e)}
        finally:
            daemon.close()
    print(json.dumps(result, indent=2))
    return EXIT_OK if result.get("ok") else EXIT_FAILURE


def cmd_reset_breaker(argv: Sequence[str]) -> int:
    return _control("reset-breaker", "Lift every risk block of one strategy (drawdown, consecutive losses) and "
                    "restart its loss streak; the drawdown peak is rebased to the current equity. It never opens "
                    "or closes a position. Audited.", "reset_breaker",
                    lambda p: p.add_argument("--strategy", required=True, type=_text_arg("--strategy")),
                    lambda a: {"strategy": a.strategy}, argv)


def cmd_reset_kill_switch(argv: Sequence[str]) -> int:
    return _control("reset-kill-switch", "Lift the portfolio kill switch and rebase the account peak to the "
                    "current equity. Other blocks stay. It never opens or closes a position. Audited.",
                    "reset_kill_switch", None, lambda a: {}, argv)


def cmd_trade(argv: Sequence[str]) -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--strategy", required=True, type=_text_arg("--strategy"))
        p.add_argument("action", choices=("enter", "close"))
        p.add_argument("--symbol", type=_text_arg("--symbol"), help="default: the strategy's symbol")

    return _control("trade", "Enter or close a strategy's symbol now, through the same engine and risk rules. "
                    "The size is the backend's (the strategy's sizing and the account caps).", "trade", extra,
                    lambda a: {"strategy": a.strategy, "action": a.action, **({"symbol": a.symbol} if a.symbol else {})},
                    argv)


def cmd_reconcile(argv: Sequence[str]) -> int:
    return _control("reconcile", "Rebuild every strategy's books from the trade log and compare them with "
                    "state.json (cash, positions, counters); exit 1 when they differ.", "reconcile", None,
                    lambda a: {}, argv)


def _symbols_arg(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_backtest(argv: Sequence[str]) -> int:
    from backtest.cli import main as backtest_main  # numpy and the engine's replay load only here

    return backtest_main(list(argv))


def cmd_paper(argv: Sequence[str]) -> int:
    """The original's one-strategy paper trader: a daemon whose config comes from flags."""
    import os

    from scheduler.config import parse_config

    p = argparse.ArgumentParser(prog="go-trader paper", description="Paper-trade one strategy without a config "
                                "file: the daemon, built from these flags (state and logs in the current folder).")
    p.add_argument("--strategy", required=True, help="a catalog name (go-trader list-strategies) or an options "
                   "strategy (with --symbols BTC)")
    p.add_argument("--symbols", type=_symbols_arg, required=True, metavar="BTC/USDT[,ETH/USDT]")
    p.add_argument("--timeframe", default="1h")
    p.add_argument("--capital", type=float, default=1000.0, help="USD per strategy (default 1000; an options strategy that sells "
                   "needs the initial margin of at least Deribit's minimum contract, 0.1 BTC or 1 ETH, "
                   "which can be more than that)")
    p.add_argument("--params", type=json_object(), default=None, help="JSON object of parameter overrides")
    p.add_argument("--interval", type=int, default=None, help="seconds between checks (default: the timeframe)")
    p.add_argument("--source", choices=("ccxt", "synthetic", "files"), default="ccxt",
                   help="market data: live Binance through ccxt (default), the synthetic market, or files")
    p.add_argument("--data-root", type=Path, help="the files source's folder (download-data's --root)")
    p.add_argument("--state-file", type=file_path, default=None, help="default: ./paper-state.json")
    p.add_argument("--log-dir", type=Path, default=None, help="default: ./paper-logs")
    p.add_argument("--once", action="store_true", help="one cycle, then exit")
    p.add_argument("--no-status-server", action="store_true")
    args = p.parse_args(argv)
    doc = config_from_flags(args.strategy, args.symbols, args.timeframe, args.capital,
                            market_from_flags(args.source, args.data_root), params=args.params,
                            interval_s=args.interval, state_file=str(args.state_file or "paper-state.json"),
                            log_dir=str(args.log_dir or "paper-logs"))
    here = Path(os.getcwd())
    config = parse_config(doc, base_dir=here)
    run_args = argparse.Namespace(config=here / "paper.json", state_file=args.state_file, log_dir=args.log_dir,
                                  once=args.once, no_status_server=args.no_status_server)
    return _run_daemon(run_args, config)


COMMANDS = {"reset-breaker": cmd_reset_breaker, "reset-kill-switch": cmd_reset_kill_switch, "trade": cmd_trade,
            "reconcile": cmd_reconcile, "validate-config": cmd_validate, "status": cmd_status, "list-strategies": cmd_list_strategies,
            "download-data": cmd_download, "backtest": cmd_backtest, "paper": cmd_paper}


def cmd_help(argv: Sequence[str]) -> int:
    if not argv:
        _run_parser().print_help()
        return EXIT_OK
    if argv[0] in COMMANDS and argv[0] != "help":
        return COMMANDS[argv[0]](["--help"])
    return _unknown_command(argv[0])


def _unknown_command(name: str) -> int:
    import difflib

    close = difflib.get_close_matches(name, list(COMMANDS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    print(f"go-trader: unknown command {name!r}; {hint}commands: {', '.join(COMMANDS)} "
          "(go-trader --help lists what each does)", file=sys.stderr)
    return EXIT_CONFIG


COMMANDS["help"] = cmd_help
#: the commands whose answer is one JSON document on stdout, whatever happens
JSON_COMMANDS = (cmd_status, cmd_trade, cmd_reset_breaker, cmd_reset_kill_switch, cmd_reconcile)
assert set(COMMANDS) == set(SUMMARIES), "every command needs a line in SUMMARIES"


def main(argv: Sequence[str] | None = None) -> int:
    """The program (``argv`` None: this process IS go-trader, the console script or
    ``python -m scheduler``), or one command run in a host process (tests)."""
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    if argv and command is None and not argv[0].startswith("-"):
        return _unknown_command(argv[0])
    if program and command in (None, cmd_paper):  # this process becomes the daemon
        from scheduler.memory import keep_openssl_out

        keep_openssl_out()
    answers_json = command in JSON_COMMANDS
    try:
        return command(argv[1:]) if command else cmd_run(argv)
    except ConfigError as e:
        print(f"go-trader: configuration error ({len(e.problems)} problem{'s' * (len(e.problems) != 1)}):",
              file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        if answers_json:
            print(json.dumps({"ok": False, "error": "configuration error", "problems": e.problems}, indent=2))
        return EXIT_CONFIG
    except GoTraderError as e:
        print(f"go-trader: {e}", file=sys.stderr)
        if answers_json:  # its one JSON document on stdout, a failure's too (README: Commands)
            print(json.dumps({"ok": False, "error": str(e)}, indent=2))
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
