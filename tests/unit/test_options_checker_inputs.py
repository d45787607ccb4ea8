"""check_options.py on bad or incomplete input: a broken DVOL fails the check instead of
switching the IV rank to another measure; every bad input gives exactly one JSON document
with an error naming it; a held option without greeks in the chain gets a model delta."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from checkers.check_options import _iv_rank, held_options
from market.files_options import FilesOptions
from options.chain import OptionChain, OptionQuote, expiry_ms_from_code, format_instrument_name
from options.ivrank import IvRank, IvRankUnavailable
from options.pricing import black76_greeks, black76_price, year_fraction
from scheduler.engine.errors import DataError, PermanentExchangeError, TransientExchangeError

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400_000
NOW = 1_772_445_000_000  # 2026-03-02T09:50Z
EXP = expiry_ms_from_code("27MAR26")


def _candles(n: int = 420, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    ts = NOW - (np.arange(n)[::-1] + 1) * DAY
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    return SimpleNamespace(ts_ms=ts, close=close)


class _Source:
    name = "fake"

    def __init__(self, dvol: Any) -> None:
        self.dvol = dvol

    def fetch_dvol(self, underlying: str, *, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        if isinstance(self.dvol, Exception):
            raise self.dvol
        return self.dvol


# --- defect 1: a broken DVOL is a failed check, never a silent realized-vol rank ---


@pytest.mark.parametrize("error", [DataError("BTC_DVOL-1d.csv: missing column(s) ['close']"),
                                   PermanentExchangeError("the fetch step of this cycle failed to get the DVOL")])
def test_a_dvol_that_exists_but_cannot_be_read_fails_the_check(error: Exception) -> None:
    with pytest.raises(DataError, match=r"the DVOL of BTC is unusable, so no IV rank and no trade: .*"):
        _iv_rank(_Source(error), "BTC", NOW, _candles)


def test_a_transient_dvol_failure_is_raised_as_is() -> None:
    with pytest.raises(TransientExchangeError):
        _iv_rank(_Source(TransientExchangeError("timeout")), "BTC", NOW, _candles)


def test_only_a_source_without_dvol_falls_back_to_realized_vol_and_says_so() -> None:
    rank = _iv_rank(_Source([]), "ETH", NOW, _candles)
    assert isinstance(rank, IvRank) and rank.method == "realized_vol_percentile"
    assert rank.fallback_reason == "fake has no DVOL history for ETH"


def test_a_dvol_too_short_to_rank_is_no_rank_not_the_realized_vol_one() -> None:
    short = [(NOW - (i + 1) * DAY, 50.0 + i) for i in range(30)][::-1]
    rank = _iv_rank(_Source(short), "BTC", NOW, _candles)
    assert isinstance(rank, IvRankUnavailable) and rank.method == "dvol" and rank.reason == "TOO_LITTLE_HISTORY"


def _dvol_folder(tmp_path: Path, shared_data: Path, edit: Any) -> FilesOptions:
    folder = tmp_path / "deribit"
    folder.mkdir()
    lines = (shared_data / "deribit" / "BTC_DVOL-1d.csv").read_text().splitlines()
    (folder / "BTC_DVOL-1d.csv").write_text("\n".join(edit(lines)) + "\n")
    return FilesOptions(tmp_path)


def _set_close(line: str, value: str) -> str:
    cells = line.split(",")
    cells[2] = value
    return ",".join(cells)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda ls: [ls[0].replace(",close,", ",Close,"), *ls[1:]], r"missing column\(s\) \['close'\]"),
    (lambda ls: [*ls[:100], _set_close(ls[100], "abc"), *ls[101:]], r"line 101: close 'abc' is not a finite"),
    (lambda ls: [*ls[:7], _set_close(ls[7], ""), *ls[8:]], r"line 8: close '' is not a finite"),
    (lambda ls: [*ls[:7], _set_close(ls[7], "-3"), *ls[8:]], r"line 8: close '-3' is not a finite"),
    (lambda ls: ls[:1], "has a header and no rows"),
    (lambda ls: [], "unreadable DVOL file"),
])
def test_a_corrupt_dvol_file_names_the_file_the_problem_and_the_fix(tmp_path: Path, shared_data: Path, edit: Any,
                                                                    message: str) -> None:
    files = _dvol_folder(tmp_path, shared_data, edit)
    with pytest.raises(DataError, match=message) as e:
        files.fetch_dvol("BTC", start_ms=NOW - 366 * DAY, end_ms=NOW)
    assert "BTC_DVOL-1d.csv" in str(e.value) and "remove it to rank on realized vol" in str(e.value)
    with pytest.raises(DataError, match="the DVOL of BTC is unusable"):
        _iv_rank(files, "BTC", NOW, _candles)


def test_the_real_dvol_file_ranks_on_dvol(tmp_path: Path, shared_data: Path) -> None:
    files = _dvol_folder(tmp_path, shared_data, lambda ls: ls)
    rank = _iv_rank(files, "BTC", NOW, _candles)
    assert isinstance(rank, IvRank) and rank.method == "dvol" and rank.value_pct == pytest.approx(43.5566, abs=1e-3)


# --- defect 4: a held option whose quote has no greeks ---


def _quote(strike: float, kind: str = "call", **kw: Any) -> OptionQuote:
    return OptionQuote(format_instrument_name("BTC", EXP, strike, kind), "BTC", EXP, strike, kind,  # type: ignore[arg-type]
                       **kw)


def _chain(*quotes: OptionQuote) -> OptionChain:
    return OptionChain("BTC", NOW, 66_000.0, quotes)


def _position(strike: float, kind: str = "call", **kw: Any) -> dict[str, Any]:
    return {"instrument": format_instrument_name("BTC", EXP, strike, kind), "side": "short", "quantity": 0.1, **kw}


def test_a_quote_without_delta_or_mark_iv_gets_the_delta_its_mark_implies() -> None:
    forward, vol, t = 66_200.0, 0.55, year_fraction(NOW, EXP)
    mark = float(black76_price(forward, 74_000.0, t, vol, True)) / forward
    chain = _chain(_quote(74_000.0, mark=mark, underlying_price=forward))
    (held,) = held_options([_position(74_000.0)], chain, NOW, 66_000.0)
    assert held.delta == pytest.approx(float(black76_greeks(forward, 74_000.0, t, vol, True)["delta"]), abs=1e-6)


def test_a_quote_without_delta_but_with_mark_iv_gets_the_model_delta_at_it() -> None:
    chain = _chain(_quote(60_000.0, "put", mark=0.02, mark_iv_pct=60.0, underlying_price=66_000.0))
    (held,) = held_options([_position(60_000.0, "put")], chain, NOW, 66_000.0)
    t = year_fraction(NOW, EXP)
    assert held.delta == pytest.approx(float(black76_greeks(66_000.0, 60_000.0, t, 0.6, False)["delta"]))
    assert held.delta < 0


def test_a_listed_quote_with_nothing_to_price_on_says_so_not_that_it_is_unlisted() -> None:
    chain = _chain(_quote(74_000.0))  # no mark, no IV, no delta
    with pytest.raises(ValueError, match="listed, but its quote has no delta and no mark IV") as e:
        held_options([_position(74_000.0)], chain, NOW, 66_000.0)
    assert "not listed" not in str(e.value)


def test_an_unlisted_instrument_says_it_is_not_listed() -> None:
    with pytest.raises(ValueError, match="not in the BTC chain .*it is not listed; give 'delta'"):
        held_options([_position(90_000.0)], _chain(_quote(74_000.0, delta=0.2)), NOW, 66_000.0)


def test_an_expired_position_awaiting_settlement_takes_its_intrinsic_delta() -> None:
    past = expiry_ms_from_code("27FEB26")
    pos = {"instrument": format_instrument_name("BTC", past, 70_000.0, "put"), "side": "short", "quantity": 0.1}
    (held,) = held_options([pos], _chain(_quote(74_000.0, delta=0.2)), NOW, 66_000.0)
    assert held.delta == -1.0


def test_a_position_on_another_underlying_is_the_wrong_underlying() -> None:
    pos = {"instrument": "ETH-27MAR26-2000-P", "side": "short", "quantity": 1}
    with pytest.raises(ValueError, match="an option on ETH, but this checker runs BTC: wrong underlying"):
        held_options([pos], _chain(_quote(74_000.0, delta=0.2)), NOW, 66_000.0)


# --- defect 5: every bad input is one JSON document with an error that names it ---


def _run(*args: str, stdin: str | None = None) -> tuple[int, list[Any]]:
    out = subprocess.run([sys.executable, "checkers/check_options.py", *args, "--config", "config.demo.json"],
                         cwd=ROOT, input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=60)
    docs = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return out.returncode, docs


@pytest.mark.parametrize(("args", "stdin", "needle"), [
    (("wheel", "SOL", "[]"), None, "underlying 'SOL' has no options here; expected one of BTC, ETH"),
    (("wheelx", "BTC", "[]"), None, "unknown options strategy 'wheelx'; expected one of"),
    (("wheel",), None, "the following arguments are required: underlying"),
    (("wheel", "BTC", "[]", "--params", "[1]"), None, "--params must be a JSON object"),
    (("wheel", "BTC", "[]", "--params", "nope"), None, "--params is not JSON"),
    (("wheel", "BTC", "not json"), None, "the positions argument is not JSON"),
    (("wheel", "BTC"), "not json", "the positions on stdin is not JSON"),
    (("wheel", "BTC", "[]", "--spot-held", "-3"), None, "--spot-held -3.0; expected a finite coin amount >= 0"),
    (("wheel", "BTC", "[]", "--spot-held", "nan"), None, "--spot-held nan; expected a finite coin amount"),
    (("wheel", "BTC", "[]", "--spot-held", "inf"), None, "--spot-held inf; expected a finite coin amount"),
    (("wheel", "BTC", "[]", "--spot-held", "abc"), None, "argument --spot-held: invalid float value"),
    (("wheel", "BTC"), '{"positions": [], "spot_held": -3}', "spot_held -3; expected a finite coin amount"),
    (("wheel", "BTC", "[]", "--params", '{"quantity": 0.15}'), None, "use 0.1, 0.2, 0.3, ... BTC"),
])
def test_bad_input_prints_one_json_document_with_an_error_naming_it(args: tuple[str, ...], stdin: str | None,
                                                                    needle: str) -> None:
    rc, docs = _run(*args, stdin=stdin)
    assert rc == 1 and len(docs) == 1, (rc, docs)
    assert needle in docs[0]["error"] and docs[0]["error_class"] == "permanent" and docs[0]["signal"] == 0


def test_a_nan_spot_held_is_refused_on_stdin_as_on_the_command_line() -> None:
    rc, docs = _run("wheel", "BTC", stdin='{"positions": [], "spot_held": NaN}')
    assert rc == 1 and "spot_held nan" in docs[0]["error"]
