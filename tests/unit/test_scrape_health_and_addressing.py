"""go_trader_up follows /health at the moment of the scrape; /history refuses an unknown strategy
by name; Telegram commands addressed to another bot are not run."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler import metrics
from scheduler.http_status import Snapshot, StatusServer, unknown_strategy_problem
from scheduler.notify.commands import Command, addressed, parse


def _up(body: bytes) -> float:
    fam = {f.name: f.samples for f in text_string_to_metric_families(body.decode())}
    [sample] = fam["go_trader_up"]
    return sample.value


@contextmanager
def _server(snap: Snapshot) -> Iterator[str]:
    server = StatusServer("127.0.0.1", 0, snap, None)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, body


def _snapshot() -> tuple[Snapshot, list[tuple[int, dict]]]:
    """A snapshot published once, whose health verdict the test changes afterwards (as time
    passing with no cycle turns the daemon's /health to 503 "stale" without a publish)."""
    verdict = [(200, {"status": "ok"})]
    snap = Snapshot()
    doc = {"strategies": [{"id": "alpha"}, {"id": "beta"}], "account": {}}
    snap.status_body = json.dumps(doc).encode()
    snap.metrics_body = metrics.render(doc, metrics.Counters())
    snap.health = lambda: verdict[0]
    snap.history = lambda since_ms, strategy: json.dumps({"points": [], "strategy": strategy}).encode()
    return snap, verdict


def test_go_trader_up_is_computed_at_the_scrape_with_the_health_rule() -> None:
    snap, verdict = _snapshot()
    with _server(snap) as url:
        assert _get(url + "/health")[0] == 200 and _up(_get(url + "/metrics")[1]) == 1.0
        verdict[0] = (503, {"status": "stale", "reason": "no cycle for 40s"})  # nothing published since
        assert _get(url + "/health")[0] == 503 and _up(_get(url + "/metrics")[1]) == 0.0
        verdict[0] = (200, {"status": "ok"})
        assert _up(_get(url + "/metrics")[1]) == 1.0
    assert "go_trader_up" not in metrics.render({"strategies": [], "account": {}}, metrics.Counters()).decode()


def test_history_of_an_unknown_strategy_is_a_404_naming_it_and_the_known_ids() -> None:
    snap, _ = _snapshot()
    with _server(snap) as url:
        code, body = _get(url + "/history?strategy=nope")
        assert code == 404
        assert json.loads(body)["error"].startswith("unknown strategy 'nope'; known: alpha, beta")
        code, body = _get(url + "/history?strategy=alpha%0A")  # not "alpha": the whole value must match
        assert code == 404 and "'alpha\\n'" in json.loads(body)["error"]
        code, body = _get(url + "/history?strategy=beta")
        assert code == 200 and json.loads(body)["strategy"] == "beta"
        assert _get(url + "/history")[0] == 200
    # before the first publish the ids are unknown: nothing is refused
    assert Snapshot().strategy_ids() is None and unknown_strategy_problem("x", None) is None


def test_history_since_takes_ascii_digits_only() -> None:
    snap, _ = _snapshot()
    with _server(snap) as url:
        assert _get(url + "/history?since=%D9%A1%D9%A2")[0] == 400  # Arabic-Indic digits: str.isdigit() says yes
        assert _get(url + "/history?since=1767225600000")[0] == 200


@pytest.mark.parametrize(("text", "username", "verdict"), [
    ("/close BTC", None, None),  # bare: everyone's
    ("/close BTC", "trader_bot", None),
    ("/close@Trader_Bot BTC", "trader_bot", None),  # case-insensitive
    ("/close@trader_bot BTC", "@Trader_Bot", None),
    ("/close@otherbot BTC x", "trader_bot", ""),  # another bot's: ignored
    ("/pnl@otherbot", "trader_bot", ""),
    ("/close@ BTC", "trader_bot", ""),
    ("/pnl@theirbot", None, None),  # unknown username: reading is harmless
    ("/help@theirbot", None, None),
    ("/weather@otherbot", None, ""),  # not ours, and maybe another bot's: silence
])
def test_a_command_addressed_by_name_runs_only_for_this_bot(text: str, username: str | None,
                                                           verdict: str | None) -> None:
    cmd = parse(text)
    assert cmd is not None and addressed(cmd, username) == verdict


@pytest.mark.parametrize("text", ["/close@otherbot BTC x", "/long@theirbot BTC"])
def test_without_a_known_username_a_named_trade_is_refused_with_the_way_out(text: str) -> None:
    cmd = parse(text)
    assert cmd is not None
    answer = addressed(cmd, None)
    assert answer is not None and answer.startswith(f"not traded: /{cmd.name}@{cmd.to}")
    assert "without @name" in answer and "notifications.telegram.bot_username" in answer


def test_parse_keeps_the_addressee() -> None:
    assert parse("/Close@Other_Bot  BTC  x\n") == Command("close", ["BTC", "x"], "Other_Bot")
    assert parse("/status") == Command("status", [], None) and parse("status") is None and parse(None) is None


@pytest.mark.parametrize(("query", "problem"), [
    ("strategy=a&strategy=b", "strategy is given 2 times; give it once"),
    ("since=", "since is given with no value"),
    ("strategy=", "strategy is given with no value"),
    ("since=1796597700", "since 1796597700 reads as Unix milliseconds, 1796598 s after 1970; for seconds, give "
                         "1796597700000"),
])
def test_a_history_query_that_would_be_read_wrongly_is_refused(query: str, problem: str) -> None:
    from scheduler.http_status import parse_history_query

    with pytest.raises(ValueError, match="^" + re.escape(problem)):
        parse_history_query(query)
    assert parse_history_query("since=0&strategy=a") == (0, "a")
    assert parse_history_query("since=1796597700000") == (1_796_597_700_000, None)
