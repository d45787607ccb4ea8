"""options/params.py refuses what the engine could never trade as meant: a quantity off
Deribit's contract minimum or step, and parameters outside their allowed ranges. The
contract table is one: options.chain.DERIBIT_DEFAULT_CONTRACTS (the engine's default
rules must agree with it)."""

from __future__ import annotations

import pytest

from options.chain import (
    DERIBIT_DEFAULT_CONTRACTS,
    OptionChain,
    OptionQuote,
    expiry_ms_from_code,
    screen_quotes,
)
from options.params import CONTRACT_MINIMUM, PARAMS, validate_params
from options.strategies import StrategyInputs, propose
from scheduler.engine.option_fills import DEFAULT_CONTRACTS


@pytest.mark.parametrize(("quantity", "underlying", "message"), [
    (0.05, "BTC", r"quantity 0.05 BTC is below Deribit's minimum of 0.1 BTC .*use 0.1, 0.2, 0.3, ... BTC"),
    (0.15, "BTC", r"quantity 0.15 BTC is not a multiple of Deribit's amount step 0.1 BTC .*round it down to 0.1"),
    (0.5, "ETH", r"below Deribit's minimum of 1 ETH .*use 1, 2, 3, ... ETH"),
    (1.5, "ETH", r"not a multiple of Deribit's amount step 1 ETH"),
    (0.05, None, r"no Deribit option accepts; use 0.1, 0.2, 0.3, ... BTC or 1, 2, 3, ... ETH"),
    (0.15, None, r"no Deribit option accepts"),
])
def test_a_quantity_deribit_would_refuse_or_round_is_refused(quantity: float, underlying: str | None,
                                                             message: str) -> None:
    for strategy in PARAMS:
        with pytest.raises(ValueError, match=message):
            validate_params(strategy, {"quantity": quantity}, underlying=underlying)


@pytest.mark.parametrize(("quantity", "underlying"), [(0.1, "BTC"), (0.3, "BTC"), (1.2, "BTC"), (2, "BTC"),
                                                      (1, "ETH"), (3, "ETH"), (0.5, None), (2, None)])
def test_listed_amounts_are_accepted(quantity: float, underlying: str | None) -> None:
    assert validate_params("wheel", {"quantity": quantity}, underlying=underlying).quantity == quantity


def test_the_strategy_skips_a_quantity_its_underlying_refuses_even_if_validated_without_it() -> None:
    exp = expiry_ms_from_code("27MAR26")
    q = OptionQuote("ETH-27MAR26-2000-P", "ETH", exp, 2000.0, "put", bid=0.05, ask=0.06, mark=0.055,
                    mark_iv_pct=60.0, delta=-0.3, gamma=0.001, theta=-1.0, vega=2.0)
    chain = OptionChain("ETH", exp - 37 * 86_400_000, 2100.0, (q,))
    params = validate_params("wheel", {"quantity": 0.5})  # a BTC amount: passes without the underlying
    result = propose("wheel", StrategyInputs(chain=chain, spot_usd=2100.0, now_ms=chain.now_ms), params)
    assert result.skip_reason is not None and result.skip_reason.startswith("BAD_INPUT: quantity 0.5 ETH is below")


def test_one_contract_table_the_engine_defaults_agree_with() -> None:
    for u, (_size, minimum, step, _tick) in DERIBIT_DEFAULT_CONTRACTS.items():
        assert CONTRACT_MINIMUM[u] == minimum
        assert (DEFAULT_CONTRACTS[u].min_amount, DEFAULT_CONTRACTS[u].amount_step) == (minimum, step)
    assert set(DEFAULT_CONTRACTS) == set(DERIBIT_DEFAULT_CONTRACTS)


@pytest.mark.parametrize(("strategy", "name", "value", "allowed"), [
    ("wheel", "put_moneyness", 1e9, "[0.5, 2]"),
    ("wheel", "call_moneyness", 0.1, "[0.5, 2]"),
    ("wheel", "put_dte_days", 5000.0, "(0, 400]"),
    ("covered_calls", "dte_tolerance_days", 1000.0, "(0, 90]"),
    ("covered_calls", "min_score", 7.0, "[-2, 2]"),
    ("covered_calls", "max_positions", 1000, "[1, 50]"),
    ("covered_calls", "min_premium", 3.0, "(0, 1]"),
    ("covered_calls", "rate", 5.0, "[-0.1, 0.5]"),
    ("momentum_options", "threshold_pct", 500.0, "[0, 100]"),
    ("momentum_options", "roc_period", 10_000, "[1, 500]"),
])
def test_absurd_parameters_are_refused_with_their_allowed_range(strategy: str, name: str, value: float,
                                                                allowed: str) -> None:
    with pytest.raises(ValueError, match=f"{name} .* is out of range; allowed " + allowed.replace("[", r"\[")
                       .replace("(", r"\(").replace("]", r"\]")):
        validate_params(strategy, {name: value})


def test_the_defaults_are_within_their_ranges() -> None:
    for strategy in PARAMS:
        validate_params(strategy, {})


# --- implausible quotes (options.chain.screen_quotes) ---

EXP = expiry_ms_from_code("27MAR26")


def _q(kind: str, strike: float, **kw: float) -> OptionQuote:
    return OptionQuote(f"BTC-27MAR26-{strike:.0f}-{kind[0].upper()}", "BTC", EXP, strike, kind,  # type: ignore[arg-type]
                       underlying_price=66_000.0, **kw)


def test_implausible_quotes_are_dropped_with_their_reason() -> None:
    good = (_q("call", 74_000, bid=0.015, ask=0.016, mark=0.0155), _q("put", 60_000, mark=0.02),
            _q("put", 200_000, mark=2.0))  # a deep ITM put is worth up to K / F coin: 3.03
    bad = (_q("call", 76_000, mark=5.0), _q("call", 70_000, bid=0.5, ask=0.01),
           _q("put", 60_000, mark=1.2), _q("call", 72_000, ask=1.0))
    kept, dropped = screen_quotes(good + bad, 66_000.0)
    assert kept == good
    assert [d.split(":")[0] for d in dropped] == [q.instrument for q in bad]
    assert "mark 5 coin is not below 1 coin" in dropped[0] and "crossed quote: bid 0.5 > ask 0.01" in dropped[1]
    assert "strike / forward" in dropped[2]


def test_every_parameter_problem_is_reported_at_once() -> None:
    """A config with three bad values (and an unknown name) gets all of them in one message,
    not one per run of validate-config."""
    with pytest.raises(ValueError) as info:
        validate_params("vol_mean_reversion", {"wat": 1, "quantity": 0.15, "call_moneyness": 9,
                                               "target_dte_days": -1}, underlying="BTC")
    text = str(info.value)
    for part in ("no parameter 'wat'", "quantity 0.15 BTC is not a multiple", "call_moneyness 9.0 is out of range",
                 "target_dte_days -1.0; expected a number > 0"):
        assert part in text, (part, text)
    with pytest.raises(ValueError, match=r"^vol_mean_reversion has no parameter 'wat'"):
        validate_params("vol_mean_reversion", {"wat": 1})
