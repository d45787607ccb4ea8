"""/metrics and /history on a running daemon: Prometheus's own parser reads the metrics, the
history grows a row per cycle, and both follow /status's bearer-token rule."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import DaemonProcess, spot, state_doc, wait_for, write_config

TOKEN = "t0ken"


def _get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, e.headers["Content-Type"], body


def test_metrics_and_history_of_a_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, [spot("alpha", interval_seconds=1), spot("beta", "check_crash.py",
                                                                                  interval_seconds=1)],
                          interval_seconds=1)
    with DaemonProcess(config, {"GO_TRADER_STATUS_TOKEN": TOKEN}) as d:
        port = d.port()
        wait_for(lambda: (state_doc(tmp_path) or {}).get("cycle_count", 0) >= 3, what="three cycles")
        assert _get(port, "/metrics", token=None)[0] == 401
        assert _get(port, "/history", token=None)[0] == 401
        code, ctype, body = _get(port, "/metrics")
        assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
        fam = {f.name: f.samples for f in text_string_to_metric_families(body.decode())}
        equity = {s.labels["strategy"]: s.value for s in fam["go_trader_strategy_equity_usd"]}
        assert set(equity) == {"alpha", "beta"} and equity["beta"] == 1000.0
        assert sum(s.value for s in fam["go_trader_trades"] if s.labels["strategy"] == "alpha") >= 1
        failures = [s for s in fam["go_trader_check_failures"] if s.labels["strategy"] == "beta"]
        assert failures and failures[0].labels["class"] == "permanent" and failures[0].value >= 1
        assert fam["go_trader_cycles"][0].value >= 1
        code, _, body = _get(port, "/history")
        assert code == 200
        points = json.loads(body)["points"]
        assert len(points) >= 2 and points[-1]["strategies"]["beta"] == 1000.0
        assert [p["cycle"] for p in points] == sorted(p["cycle"] for p in points)
        code, _, body = _get(port, "/history?strategy=alpha&since=2000-01-01T00:00:00Z")
        assert code == 200 and set(json.loads(body)["points"][-1]["strategies"]) == {"alpha"}
        assert _get(port, "/history?nope=1")[0] == 400
        assert _get(port, "/history?since=yesterday")[0] == 400
        assert _get(port, "/history?since=2026-01-01T00:00:00")[0] == 400  # no time zone
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    lines = (tmp_path / "state.history.jsonl").read_text().splitlines()
    assert len(lines) == state_doc(tmp_path)["cycle_count"]
