"""A running daemon stuck in a cycle (a checker sleeping far past the interval): /health turns
503 "stale" and /metrics says go_trader_up 0 at the same scrape, though nothing was published;
/history names an unknown strategy."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import DaemonProcess, spot, wait_for, write_config


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, body


def _up(port: int) -> float:
    code, body = _get(port, "/metrics")
    assert code == 200
    fam = {f.name: f.samples for f in text_string_to_metric_families(body.decode())}
    return fam["go_trader_up"][0].value


def test_a_stuck_daemon_reads_down_in_metrics_as_in_health(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", interval_seconds=1), spot("stuck", "check_hang.py",
                                                                                  interval_seconds=1)],
                          interval_seconds=1, runner={"timeout_s": 60, "shutdown_grace_s": 0})
    with DaemonProcess(config) as d:
        port = d.port()
        wait_for(lambda: _get(port, "/health")[0] == 503, 30, "/health 503 while the cycle hangs")
        code, body = _get(port, "/health")
        assert json.loads(body)["status"] == "stale"
        assert _up(port) == 0.0
        code, body = _get(port, "/history?strategy=nope")
        assert code == 404 and "unknown strategy 'nope'; known: alpha, stuck" in json.loads(body)["error"]
        d.signal(signal.SIGTERM)
        assert d.wait(60) == 0
