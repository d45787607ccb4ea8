"""Benchmark: one 22-strategy cycle on the offline (synthetic) market.

Measures, in the same run:
- our daemon's cycle: wall time, CPU seconds of every process of the cycle (daemon,
  zygote, checkers, fetch step), peak memory of the process tree during the cycle (sum of
  RSS, and sum of PSS, which counts shared copy-on-write pages once), and the daemon's
  idle RSS between cycles;
- the naive baseline: the same 22 checks, each a fresh python3 that imports pandas, numpy
  and ccxt, one at a time and two at a time.

Run: .venv/bin/python bench/bench_cycle.py
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def _tree(root: int) -> list[int]:
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return pids


def _mem_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, pss


class TreeSampler:
    """Samples the summed RSS and PSS of one or more process trees every few milliseconds."""

    def __init__(self) -> None:
        self.roots: set[int] = set()
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = pss = 0
            for root in list(self.roots):
                for pid in _tree(root):
                    r, p = _mem_kb(pid)
                    rss, pss = rss + r, pss + p
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            time.sleep(0.003)

    def reset(self) -> None:
        self.peak_rss = self.peak_pss = 0

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _events(folder: Path) -> list[dict]:
    path = folder / "logs" / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def measure_daemon(folder: Path, checkers_dir: Path | None = None) -> dict[str, float]:
    doc = json.loads((REPO / "config.demo.json").read_text())
    interval = 8
    folder.mkdir(parents=True, exist_ok=True)
    doc.update(interval_seconds=interval, log_dir=str(folder / "logs"), state_file=str(folder / "state.json"),
               status={"host": "127.0.0.1", "port": 0})
    if checkers_dir is not None:
        doc["checkers_dir"] = str(checkers_dir)
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(doc))
    with TreeSampler() as sampler:
        proc = subprocess.Popen([PY, "-m", "scheduler", "--config", str(cfg)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sampler.roots.add(proc.pid)
        try:
            while not any(e["kind"] == "cycle" for e in _events(folder)):
                time.sleep(0.05)
            time.sleep(1.0)
            idle_rss_kb, _ = _mem_kb(proc.pid)
            idle_pss_kb = _mem_kb(proc.pid)[1]
            sampler.reset()  # the peak of the second cycle, in a warm daemon
            while sum(e["kind"] == "cycle" for e in _events(folder)) < 2:
                time.sleep(0.02)
            cycle = [e for e in _events(folder) if e["kind"] == "cycle"][1]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {"wall_s": cycle["seconds"], "cpu_s": cycle["cpu_s"], "peak_rss_mb": sampler.peak_rss / 1024,
            "peak_pss_mb": sampler.peak_pss / 1024, "idle_rss_mb": idle_rss_kb / 1024,
            "idle_pss_mb": idle_pss_kb / 1024}


def naive_jobs(folder: Path) -> tuple[list[list[str]], dict[str, str]]:
    """The 22 checks of the demo, each as a fresh python importing pandas, numpy and ccxt."""
    doc = json.loads((REPO / "config.demo.json").read_text())
    now_ms = int(time.time() * 1000)
    cache = folder / "cache"
    cache.mkdir()
    pairs = sorted({(sym, s["args"][2]) for s in doc["strategies"] if s["type"] == "spot"
                    for sym in [s["args"][1], *s["args"][3:]]})
    request = {"market": doc["market"], "now_ms": now_ms, "pairs": pairs, "price_symbols": [],
               "cache_dir": str(cache), "limit": 500}
    subprocess.run([PY, "-m", "market.prefetch"], input=json.dumps(request), text=True, check=True,
                   capture_output=True, cwd=REPO)
    env = {**os.environ, "GO_TRADER_NOW_MS": str(now_ms), "GO_TRADER_MARKET": json.dumps(doc["market"]),
           "GO_TRADER_CACHE_DIR": str(cache)}
    jobs = []
    for s in doc["strategies"]:
        script = str(REPO / "checkers" / s["script"])
        code = ("import pandas, numpy, ccxt, runpy, sys; "
                f"sys.argv = {[script, *s['args']]!r}; runpy.run_path({script!r}, run_name='__main__')")
        jobs.append([PY, "-c", code])
    return jobs, env


def measure_naive(folder: Path, workers: int) -> dict[str, float]:
    jobs, env = naive_jobs(folder / f"naive{workers}")
    with TreeSampler() as sampler:
        def run(cmd: list[str]) -> None:
            p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL)
            sampler.roots.add(p.pid)
            p.wait()
            sampler.roots.discard(p.pid)
        cpu0, t0 = _children_cpu(), time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, jobs))
        wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": sampler.peak_rss / 1024, "peak_pss_mb": sampler.peak_pss / 1024}


#: check_options.py before the options issue: it validated its input and skipped, trading nothing
BEFORE_OPTIONS = "5ddb7de"


def checkers_before_options(folder: Path) -> Path:
    """A copy of checkers/ whose check_options.py is the one of BEFORE_OPTIONS."""
    out = folder / "checkers"
    shutil.copytree(REPO / "checkers", out)
    old = subprocess.run(["git", "show", f"{BEFORE_OPTIONS}:checkers/check_options.py"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    (out / "check_options.py").write_text(old)
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "naive1").mkdir()
        (folder / "naive2").mkdir()
        ours = measure_daemon(folder / "now")
        try:
            before = measure_daemon(folder / "before", checkers_before_options(folder / "before-checkers"))
        except (subprocess.CalledProcessError, FileNotFoundError) as e:  # no git history (a source tarball)
            print(f"(no 'before the options issue' run: {e})")
            before = None
        one = measure_naive(folder, 1)
        two = measure_naive(folder, 2)
    print("22-strategy cycle on the synthetic market (2 cores; same run)")
    print(f"{'':36}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'peak PSS MB':>13}")
    rows = [("go-trader cycle (fork zygote)", ours)]
    if before is not None:
        rows.append(("same, options not trading (before)", before))
    rows += [("naive, one at a time", one), ("naive, two at a time", two)]
    for name, m in rows:
        print(f"{name:36}{m['wall_s']:9.2f}{m['cpu_s']:9.2f}{m['peak_rss_mb']:13.1f}{m['peak_pss_mb']:13.1f}")
    print(f"daemon idle between cycles: RSS {ours['idle_rss_mb']:.1f} MB (PSS {ours['idle_pss_mb']:.1f} MB)")
    print("ratios (target):")
    print(f"  cycle CPU / naive CPU              {ours['cpu_s'] / one['cpu_s']:.3f}  (<= 0.100)")
    if before is not None:
        print(f"  cycle CPU / before options trading {ours['cpu_s'] / before['cpu_s']:.3f}  (the cost of 8 live options "
              "strategies)")
    print(f"  cycle peak PSS / naive 2-at-a-time {ours['peak_pss_mb'] / two['peak_pss_mb']:.3f}  (<= 0.500)")
    print(f"  cycle peak RSS / naive 2-at-a-time {ours['peak_rss_mb'] / two['peak_rss_mb']:.3f}  (RSS counts shared pages per process)")
    print(f"  daemon idle RSS                    {ours['idle_rss_mb']:.1f} MB  (<= 40 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
