"""Benchmark: what notifications, /metrics and the dashboard cost the daemon.

In the same run, two real daemons (``python -m scheduler``) on the synthetic market, the
same strategies filling every cycle (tests/fault_checkers/check_alternate.py):

- OFF: no status server (so no /metrics, no dashboard), no notifications;
- ON: the status server, notifications to a fake Telegram Bot API on 127.0.0.1
  (tests/fake_telegram.py) with Telegram commands polled, and a webhook.

Printed: the daemon's idle RSS (its own process, sampled between cycles; target <= 40 MB), CPU
per cycle of the daemon process alone and of its whole process tree (guardians, checkers, the
fetch step, the notification zygotes and their delivery and poll jobs; target: ON at most 10 %
above OFF), measured over whole cycles (from one cycle's save to a later one's, about
``--seconds`` apart), and, for ON, the latency of ``/metrics`` and ``/`` under 50 concurrent
clients while cycles run. Every cycle fills, so every cycle makes one message: the worst case
for notifications (a quiet daemon sends none and starts no delivery job).

Run: .venv/bin/python bench/bench_notify.py [--seconds 40] [--strategies 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402
from tests.integration.harness import DaemonProcess, spot, wait_for, write_config  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _stat(pid: int) -> tuple[int, int]:
    """(own, reaped children's) CPU ticks of ``pid``; (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return ut + st, cut + cst


def _descendants(root: int) -> list[int]:
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids = [int(c) for c in f.read().split()]
                out += kids
                stack += kids
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def _cpu_s(pid: int) -> tuple[float, float]:
    """(the daemon alone, the daemon's whole tree) CPU seconds: every live descendant's own and
    reaped children's time too (the notify guardians live on, so their jobs' CPU is theirs)."""
    own, reaped = _stat(pid)
    tree = own + reaped + sum(sum(_stat(k)) for k in _descendants(pid))
    return own / CLK, tree / CLK


def _cycles(folder: Path) -> int:
    try:
        return int(json.loads((folder / "state.json").read_text())["cycle_count"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def _next_cycle(folder: Path, after: int) -> int:
    """Waits (polling state.json every 20 ms) until the daemon has saved cycle ``after + 1``."""
    deadline = time.monotonic() + 120
    while (now := _cycles(folder)) <= after:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no cycle after {after} in 120 s")
        time.sleep(0.02)
    return now


def _load(port: int, path: str, clients: int, seconds: float) -> list[float]:
    """``clients`` threads GETting ``path`` for ``seconds``; every latency in ms (bounded)."""
    out: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        for _ in range(10_000):
            if time.monotonic() >= stop:
                return
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                r.read()
            with lock:
                out.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def run(label: str, folder: Path, n: int, seconds: float, fake: FakeTelegram | None) -> dict:
    folder.mkdir()
    extra: dict = {}
    env = {"ALTERNATE_PERIOD_S": "5", "GO_TRADER_STATUS_TOKEN": ""}
    args: tuple[str, ...] = ()
    if fake is not None:
        extra["notifications"] = {"telegram": {"chat_ids": [42], "api_base": fake.url, "chat_interval_s": 0.05,
                                               "commands": {"chat_ids": [42], "poll_timeout_s": 20}},
                                  "webhook": {"interval_s": 0.0}, "summary_interval_hours": 0}
        env.update(GO_TRADER_TELEGRAM_TOKEN=TOKEN, GO_TRADER_WEBHOOK_URL=f"{fake.url}/webhook/x")
    else:
        args = ("--no-status-server",)
    config = write_config(folder, [spot(f"s{i}", interval_seconds=5) for i in range(n)], interval_seconds=5,
                          **extra)
    d = DaemonProcess(config, env, *args)
    try:
        wait_for(lambda: _cycles(folder) >= 2, 120, f"{label}: two cycles")
        # CPU from one cycle's save to another's: whole cycles (each with the delivery of the
        # previous one's message), so the count of cycles and the CPU measured agree
        c0 = _next_cycle(folder, _cycles(folder))
        cpu0, t0 = _cpu_s(d.proc.pid), time.monotonic()
        rss: list[float] = []
        latency: dict[str, list[float]] = {}
        while time.monotonic() - t0 < seconds:
            rss.append(_rss_mb(d.proc.pid))
            time.sleep(0.25)
        c1 = _next_cycle(folder, _cycles(folder))
        cpu1 = _cpu_s(d.proc.pid)  # (before the load below, which costs CPU of its own)
        if fake is not None:  # while cycles run: 50 clients on each page
            port = d.port()
            for path in ("/metrics", "/"):
                latency[path] = _load(port, path, 50, 6.0)
    finally:
        d.signal(15)
        d.wait(60)
    cycles = max(1, c1 - c0)
    return {"label": label, "cycles": cycles, "idle_rss_mb_median": statistics.median(rss),
            "rss_mb_max": max(rss), "cpu_own_per_cycle_s": (cpu1[0] - cpu0[0]) / cycles,
            "cpu_tree_per_cycle_s": (cpu1[1] - cpu0[1]) / cycles, "latency": latency}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--strategies", type=int, default=8)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp, FakeTelegram() as fake:
        off = run("OFF", Path(tmp) / "off", a.strategies, a.seconds, None)
        on = run("ON", Path(tmp) / "on", a.strategies, a.seconds, fake)
        delivered = len(fake.texts(42))
    print(f"{a.strategies} strategies filling every cycle, interval 5 s, {a.seconds:.0f} s measured per daemon")
    for r in (off, on):
        print(f"{r['label']:>3}: {r['cycles']} cycles | idle RSS median {r['idle_rss_mb_median']:.1f} MB "
              f"(max {r['rss_mb_max']:.1f}) | CPU per cycle: daemon {r['cpu_own_per_cycle_s'] * 1000:.0f} ms, "
              f"whole tree {r['cpu_tree_per_cycle_s'] * 1000:.0f} ms")
    own = on["cpu_own_per_cycle_s"] / off["cpu_own_per_cycle_s"]
    tree = on["cpu_tree_per_cycle_s"] / off["cpu_tree_per_cycle_s"]
    print(f"ratios ON/OFF: idle RSS {on['idle_rss_mb_median'] / off['idle_rss_mb_median']:.2f}, CPU per cycle "
          f"daemon {own:.2f}, whole tree {tree:.2f} (target <= 1.10); messages delivered to the fake: {delivered}")
    ok_rss = on["rss_mb_max"] <= 40
    print(f"idle RSS target (<= 40 MB, ON, max sample): {'met' if ok_rss else 'NOT met'}")
    for path, values in on["latency"].items():
        print(f"{path:>8} under 50 clients: {len(values)} requests, p50 {_pct(values, 0.5):.1f} ms, "
              f"p95 {_pct(values, 0.95):.1f} ms, max {max(values):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
