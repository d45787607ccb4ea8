"""check_strategy.py's and check_options.py's wall time and peak RSS per run beside a plain
``python3 -c pass``.

    .venv/bin/python bench/bench_check_strategy.py [--runs N]

Fills a per-cycle market cache once (synthetic market, seed 42, via
``python -m market.prefetch``, with the BTC and ETH option chains and DVOL), then runs
each case N times as a child process (stdin /dev/null: no open option positions)
with GO_TRADER_CACHE_DIR / GO_TRADER_NOW_MS / GO_TRADER_MARKET set, the way the
scheduler runs checkers. Wall time is the median over the runs; peak RSS is
each child's own ru_maxrss from ``os.wait4`` (per child, so unlike
RUSAGE_CHILDREN it is not a running maximum over earlier children), median over
the runs. The baselines (``-c pass``, ``-c "import numpy"``) are measured the
same way in the same run. Finally one checker run under a wrapper lists the
heavy modules it imported (scipy, pandas, ccxt must be absent on the cached
path). Exits 0; it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z: 517 days after the synthetic market opens
MARKET = {"source": "synthetic", "seed": 42}
HEAVY = ("scipy", "pandas", "ccxt", "matplotlib", "numba", "aiohttp", "requests", "pydantic", "yaml")

CHECKER = str(ROOT / "checkers" / "check_strategy.py")
OPTIONS = str(ROOT / "checkers" / "check_options.py")
CASES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import numpy'", ["-c", "import numpy"]),
    ("sma_crossover BTC/USDT 1h", [CHECKER, "sma_crossover", "BTC/USDT", "1h"]),
    ("pairs_spread BTC/USDT 1d ETH/USDT", [CHECKER, "pairs_spread", "BTC/USDT", "1d", "ETH/USDT"]),
    ("edge70 BTC/USDT 1d", [CHECKER, "edge70", "BTC/USDT", "1d"]),
    *[(f"{name} {u}", [OPTIONS, name, u]) for name, u in (
        ("protective_puts", "BTC"), ("covered_calls", "BTC"), ("vol_mean_reversion", "BTC"),
        ("butterfly", "BTC"), ("momentum_options", "ETH"), ("wheel", "ETH"))],
]

# Runs the checker in-process, then reports which top-level modules were loaded.
_WRAPPER = """
import runpy, sys, json
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code or 0
tops = sorted({m.split(".")[0] for m in sys.modules})
sys.__stderr__.write("MODULES " + json.dumps(tops) + "\\n")
sys.exit(code)
"""


def _fill_cache(folder: Path) -> None:
    request = {
        "market": MARKET, "now_ms": NOW_MS, "cache_dir": str(folder), "limit": 500,
        "pairs": [["BTC/USDT", "1h"], ["BTC/USDT", "1d"], ["ETH/USDT", "1d"], ["ETH/USDT", "4h"]],
        "price_symbols": [], "option_underlyings": ["BTC", "ETH"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "market.prefetch"], input=json.dumps(request), capture_output=True,
        text=True, cwd=ROOT, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"market.prefetch failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def _run_reaped(argv: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS KiB, exit code, stdout) of one child, forked by hand so that
    os.wait4 reaps it and hands back its own rusage."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(ROOT)
            os.dup2(w, 1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.close(r)
            os.execve(sys.executable, [sys.executable, *argv], env)
        finally:
            os._exit(127)
    os.close(w)
    chunks = []
    while data := os.read(r, 65536):
        chunks.append(data)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    return wall, int(usage.ru_maxrss), os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        folder = Path(tmp) / "cache"
        folder.mkdir()
        _fill_cache(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GO_TRADER_")}
        env.update({
            "GO_TRADER_CACHE_DIR": str(folder), "GO_TRADER_NOW_MS": str(NOW_MS),
            "GO_TRADER_MARKET": json.dumps(MARKET), "PYTHONDONTWRITEBYTECODE": "1",
        })
        rows = []
        for name, argv in CASES:
            _run_reaped(argv, env)  # warm the page cache and .pyc files
            walls, rss = [], []
            for _ in range(args.runs):
                wall, peak, code, out = _run_reaped(argv, env)
                if code != 0:
                    raise SystemExit(f"{name} exited {code}: {out.strip()[-400:]}")
                walls.append(wall)
                rss.append(peak)
            rows.append((name, statistics.median(walls) * 1e3, min(walls) * 1e3, statistics.median(rss) / 1024))
            if argv[0] in (CHECKER, OPTIONS):
                doc = json.loads(out)
                said = doc.get("error") or doc.get("skip_reason") or ""
                rows[-1] += (f"signal {doc.get('signal')}" + (f", {said[:40]}" if said else ""),)
            else:
                rows[-1] += ("",)

        base_ms, base_mb = rows[0][1], rows[0][3]
        print(f"python {sys.version.split()[0]}; {args.runs} runs per case; cached synthetic market (seed 42)")
        print(f"{'case':<36}{'median ms':>10}{'min ms':>9}{'x pass':>8}{'RSS MiB':>9}{'x pass':>8}  result")
        for name, med, best, mb, note in rows:
            print(f"{name:<36}{med:>10.1f}{best:>9.1f}{med / base_ms:>7.2f}x{mb:>9.1f}{mb / base_mb:>7.2f}x  {note}")

        for label, argv in (("sma_crossover", [CHECKER, "sma_crossover", "BTC/USDT", "1h"]),
                            ("vol_mean_reversion", [OPTIONS, "vol_mean_reversion", "BTC"])):
            probe = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], env=env, cwd=ROOT, capture_output=True,
                                   text=True, check=False, stdin=subprocess.DEVNULL)
            line = next((s for s in probe.stderr.splitlines() if s.startswith("MODULES ")), None)
            if line is None:
                print(f"module probe failed: {probe.stderr.strip()[-400:]}")
                continue
            tops = json.loads(line[len("MODULES "):])
            heavy = [m for m in HEAVY if m in tops]
            project = [m for m in tops if (ROOT / m).is_dir()]
            print(f"\n{label} imported {len(tops)} top-level modules; project packages: {', '.join(project)}")
            print("heavy modules loaded: " + (", ".join(heavy) if heavy else "none") + f" (checked: {', '.join(HEAVY)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
