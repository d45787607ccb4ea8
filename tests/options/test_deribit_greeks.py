"""Our Black-76 against Deribit's own numbers on real chain snapshots (../shared/data).

Finding (378k rows, 236 daily snapshots, 2025-12-30 .. 2026-08-22): Deribit's ticker
``delta`` of its inverse (coin-settled) options is the plain Black-76 forward delta at
rate 0, N(d1) for calls and N(d1) - 1 for puts, computed from ``mark_iv``, the forward
(``underlying_price``) and the time to expiry: median |diff| 1.2e-4, 99th percentile
0.006 (the gaps come from the snapshot's mark_iv and forward being rounded and sampled
a moment apart from the greeks). It is NOT the premium-adjusted delta
``N(d1) - mark_coin`` (median |diff| 0.06) that Deribit applies to positions in coin.
So the tolerance below, median < 0.002 per snapshot and 99th percentile < 0.02 for
options more than a day from expiry, leaves room for that sampling noise and still
fails for the premium-adjusted convention by a factor of 30.
Likewise ``vega`` is USD per vol point and ``mark_price`` is the USD Black-76 price
divided by the forward (not by the index).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from options.pricing import black76_greeks, black76_price

pd = pytest.importorskip("pandas")

CHAIN = "deribit/option_chains_daily_BTC_ETH_2025-12-30_2026-08-22.csv.gz"
COLS = [
    "timestamp_ms", "underlying", "option_type", "strike", "time_to_maturity", "mark_price",
    "implied_volatility", "delta", "vega", "currency", "index_price",
]


@pytest.fixture(scope="module")
def chain(shared_data: Path) -> pd.DataFrame:
    path = shared_data / CHAIN
    if not path.exists():
        pytest.skip(f"{path} not found")
    df = pd.read_csv(path, usecols=COLS)
    return df[df.time_to_maturity > 1 / 365].reset_index(drop=True)


def _ours(df: pd.DataFrame) -> dict[str, np.ndarray]:
    F, K = df.underlying.to_numpy(), df.strike.to_numpy()
    t, vol = df.time_to_maturity.to_numpy(), df.implied_volatility.to_numpy()
    call = (df.option_type == "call").to_numpy()
    g = black76_greeks(F, K, t, vol, call)
    g["mark_coin"] = black76_price(F, K, t, vol, call) / F
    return g


@pytest.mark.shared_data
def test_one_days_delta_matches_deribit(chain: pd.DataFrame) -> None:
    day = chain[chain.timestamp_ms == chain.timestamp_ms.unique()[100]]
    assert len(day) > 1000
    ours = _ours(day)
    diff = np.abs(ours["delta"] - day.delta.to_numpy())
    assert np.median(diff) < 0.002
    assert np.percentile(diff, 99) < 0.02
    premium_adjusted = np.abs(ours["delta"] - day.mark_price.to_numpy() - day.delta.to_numpy())
    assert np.median(premium_adjusted) > 30 * np.median(diff)


@pytest.mark.shared_data
def test_every_snapshot_delta_vega_and_mark_match_deribit(chain: pd.DataFrame) -> None:
    ours = _ours(chain)
    chain = chain.assign(
        d_delta=np.abs(ours["delta"] - chain.delta.to_numpy()),
        d_vega=np.abs(ours["vega"] - chain.vega.to_numpy()) / np.maximum(chain.vega.to_numpy(), 1.0),
        d_mark=np.abs(ours["mark_coin"] - chain.mark_price.to_numpy()),
    )
    per_day = chain.groupby("timestamp_ms")[["d_delta", "d_vega", "d_mark"]].median()
    assert len(per_day) == 236
    assert per_day.d_delta.max() < 0.002
    assert np.percentile(chain.d_delta, 99) < 0.02
    assert per_day.d_vega.max() < 0.01  # relative; USD per vol point (Deribit rounds tiny vegas to 0)
    assert per_day.d_mark.max() < 2e-4  # coin; mark_iv is published to 2 decimals


@pytest.fixture(scope="module")
def every_row(shared_data: Path) -> pd.DataFrame:
    path = shared_data / CHAIN
    if not path.exists():
        pytest.skip(f"{path} not found")
    return pd.read_csv(path, usecols=COLS)


def _at_mark_iv(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Our Black-76 at Deribit's mark IV on the forward, the option type as Deribit writes it."""
    F, K = df.underlying.to_numpy(), df.strike.to_numpy()
    t, vol = df.time_to_maturity.to_numpy(), df.implied_volatility.to_numpy()
    g = black76_greeks(F, K, t, vol, df.option_type.to_numpy(dtype=object))
    g["mark_coin"] = black76_price(F, K, t, vol, df.option_type.to_numpy(dtype=object)) / F
    sd = vol * np.sqrt(t)
    d1 = np.log(F / K) / sd + 0.5 * sd
    g["vanna"] = np.abs(np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi) * (d1 - sd) / vol)  # d delta / d vol
    return g


@pytest.mark.shared_data
def test_each_option_at_mark_iv_reproduces_deribits_mark(every_row: pd.DataFrame) -> None:
    """Every one of the 378,096 rows, expiring or not: |ours - mark| <= tolerance, where

    tolerance = 1 vol point x vega (coin)  +  a 0.3 % move of the forward x |d mark / d ln F|
                + 1e-4 coin (Deribit's option tick).

    Why that much: the snapshot joins get_book_summary (mark_price, mark_iv, forward) and
    ticker rows taken moments apart, so mark, mark_iv and underlying_price are not one
    instant's numbers (the mark_iv's own rounding to 0.01 % explains only the median
    row). The forward term covers deep in-the-money options, whose coin mark is almost
    all intrinsic (K - F) / F and moves with F, not with vol. Discriminating all the same:
    pricing every row as a call breaks this tolerance on 50 % of the rows, dividing by the
    index instead of the forward on 16 %, pricing on the index on 32 %.
    """
    ours = _at_mark_iv(every_row)
    F = every_row.underlying.to_numpy()
    mark = every_row.mark_price.to_numpy()
    tol = 1.0 * ours["vega"] / F + 0.003 * np.abs(ours["delta"] - ours["mark_coin"]) + 1e-4
    miss = np.abs(ours["mark_coin"] - mark) > tol
    assert len(every_row) == 378_096
    assert not miss.any(), every_row[miss].head()
    # the same tolerance refuses the wrong conventions
    K, t = every_row.strike.to_numpy(), every_row.time_to_maturity.to_numpy()
    vol, index = every_row.implied_volatility.to_numpy(), every_row.index_price.to_numpy()
    for wrong, share in (
        (black76_price(F, K, t, vol, "call") / F, 0.4),  # the old API's "put" = call
        (black76_price(F, K, t, vol, every_row.option_type.to_numpy(dtype=object)) / index, 0.1),
        (black76_price(index, K, t, vol, every_row.option_type.to_numpy(dtype=object)) / index, 0.25),
    ):
        assert (np.abs(wrong - mark) > tol).mean() > share


@pytest.mark.shared_data
def test_each_option_at_mark_iv_reproduces_deribits_delta(every_row: pd.DataFrame) -> None:
    """Rows more than a day from expiry (355k): |ours - Deribit delta| <= tolerance, where

    tolerance = 1 vol point x |d delta / d vol|  +  a 1 % move of the forward x gamma F
                + 0.002.

    Deribit's ticker delta of its inverse options is the plain forward delta N(d1) (call),
    N(d1) - 1 (put) at rate 0, not the premium-adjusted N(d1) - mark_coin: that one misses
    this tolerance on most rows (checked below). The same sampling noise as for the mark;
    within the last day the gamma is so large that a forward sampled a moment apart flips
    the delta of an at-the-money option, so those rows are left out. (With a 0.5 % forward
    move one row of 355,360 misses: an ETH 1300 call 4 days out, 0.958 against 0.949.)
    """
    df = every_row[every_row.time_to_maturity > 1 / 365]
    ours = _at_mark_iv(df)
    F = df.underlying.to_numpy()
    deribit = df.delta.to_numpy()
    tol = 0.01 * ours["vanna"] + 0.01 * ours["gamma"] * F + 0.002
    miss = np.abs(ours["delta"] - deribit) > tol
    assert len(df) > 350_000 and not miss.any(), df[miss].head()
    premium_adjusted = ours["delta"] - ours["mark_coin"]
    assert (np.abs(premium_adjusted - deribit) > tol).mean() > 0.5
