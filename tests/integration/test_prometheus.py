"""The shipped Grafana dashboard against a real Prometheus (Debian's package) scraping a real
daemon on 127.0.0.1: every query of every panel returns data through Prometheus's HTTP API."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.integration.harness import REPO, DaemonProcess, spot, state_doc, wait_for, write_config

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = REPO / "dashboards" / "grafana-go-trader.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p.get("targets", [])]


def test_the_dashboard_names_only_metrics_the_daemon_exports() -> None:
    from scheduler.metrics import Counters, health_text, render

    text = render({"strategies": [], "account": {}}, Counters()) + health_text(200)
    exported = {line.split()[2] for line in text.decode().splitlines()
                if line.startswith("# TYPE")}
    import re

    for title, expr in dashboard_queries():
        for name in re.findall(r"\bgo_trader_[a-z_]+", expr):
            assert name in exported, f"panel {title!r} queries {name}, which /metrics does not export"


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (scripts/test installs it "
                                               "when run as root with apt)")
def test_every_dashboard_query_returns_data_from_a_real_prometheus(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", interval_seconds=1), spot("beta", "check_crash.py",
                                                                                  interval_seconds=1)],
                          interval_seconds=1)
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": "", "ALTERNATE_PERIOD_S": "1"}) as d:
        port = d.port()
        wait_for(lambda: (state_doc(tmp_path) or {}).get("cycle_count", 0) >= 2, what="two cycles")
        prom_port = _free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: go-trader\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
        log = (tmp_path / "prometheus.log").open("w")
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            def scraped() -> bool:
                try:
                    return bool(_query(prom_port, 'up{job="go-trader"} == 1'))
                except OSError:
                    return False

            wait_for(scraped, 60, "Prometheus to scrape the daemon")
            missing: list[str] = []
            deadline = time.monotonic() + 60
            for title, expr in dashboard_queries():
                while not _query(prom_port, expr):
                    if time.monotonic() > deadline:
                        missing.append(f"{title}: {expr}")
                        break
                    time.sleep(0.5)
            assert not missing, f"queries that returned no data: {missing}"
        finally:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
