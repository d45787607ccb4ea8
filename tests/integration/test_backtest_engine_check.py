"""An independent engine agrees with ours: sma_crossover (20/50) on the real BTC/USDT 1h
candles (all 76,000 of them), our runner against backtesting.py (a test-only dependency)
configured to the same contract. Trades, final equity and fees agree to 1e-6 relative.

How the two are made comparable (both are exact about it, neither is patched):

- Fills at the next candle's open: backtesting.py's default (``trade_on_close=False``); our
  runner fills at the open of the candle starting at the decision time.
- Long only, all in: ours ``sizing: fixed_fraction 1.0`` with every account cap, breaker and
  loss limit set where it cannot bind (100 %, 1e12 USD, 1000 losses); theirs ``buy()`` with
  its default size, all of the available cash.
- Units: ours buys in steps of 1e-8 BTC (the engine's default market rules: the files here
  have no markets.json); theirs is ``FractionalBacktest(fractional_unit=1e-8)``, whole
  satoshis. Both round the quantity down.
- Slippage s and fee f. Ours: a buy fills at open x (1 + s) and pays f of that notional; a sell
  fills at open x (1 - s) and pays f of its notional. Theirs: ``spread=s`` moves the entry the
  same way but not the exit, and ``commission`` is charged on entry and exit; so the
  commission is a function that charges f at the entry and, at the exit, f plus the exit's
  slippage: (s + f - s f) of the raw open's notional, which is exactly ours:
  q open (1 - s)(1 - f) = q open - q open (s + f - s f). Sizing asks the same function with the
  fractional size: it answers (1 + s) f so both divide the cash by open (1 + s)(1 + f).
  backtesting.py's "Commission" of a trade therefore is our fees plus the exit's slippage.
- Same decisions: both trade the signal our strategies.signal_series computes (the point is
  the engine: fills, costs, sizing and accounting), and pandas' rolling mean is checked to
  cross on the same bars.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.shared_data

F, S = 0.001, 0.0005
UNIT = 1e-8
END_MS = 1_778_954_400_000  # 2026-05-16 18:00 UTC: the last candle of the file closes at 19:00


def _ours(shared_data: Path):
    from backtest import runner
    from market.files_source import FilesSource
    from scheduler.config import parse_config

    doc = {"market": {"source": "files", "root": str(shared_data / "ohlcv")},
           "execution": {"slippage_pct": S * 100, "fees": {"binance": {"taker_pct": F * 100, "maker_pct": F * 100}}},
           "risk": {"max_position_pct": 100, "max_position_usd": 1e12, "max_exposure_pct": 100,
                    "daily_loss_pct": 100, "portfolio_kill_pct": 100, "consecutive_losses": 1000},
           "strategies": [{"id": "sma", "type": "spot", "script": "check_strategy.py",
                           "args": ["sma_crossover", "BTC/USDT", "1h"], "capital": 10000, "max_drawdown_pct": 100,
                           "sizing": {"mode": "fixed_fraction", "fraction": 1.0}, "interval_seconds": 3600}]}
    config = parse_config(doc, base_dir=Path("."))
    s = config.strategies[0]
    source = FilesSource(shared_data / "ohlcv")
    candles = source.fetch_candles("BTC/USDT", "1h", now_ms=END_MS + 3_600_000, limit=100_000)
    start = int(candles.ts_ms[0])
    market = runner.load_spot(source, s, start, END_MS + 3_600_000, 0)
    return runner.replay_spot(config, s, market, start, END_MS + 3_600_000), candles


def _theirs(candles):
    import pandas as pd
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    import strategies

    signal = strategies.signal_series("sma_crossover", candles, {}).signal
    close = pd.Series(candles.close)
    gap = close.rolling(20).mean() - close.rolling(50).mean()
    pandas_signal = np.where((gap > 0) & (gap.shift() <= 0), 1, np.where((gap < 0) & (gap.shift() >= 0), -1, 0))
    assert np.array_equal(pandas_signal, signal), "pandas' SMAs cross on other bars"
    exiting = {"next": False}

    def commission(size: float, price: float) -> float:
        if size != int(size):  # sizing, with the fraction of cash: divide by open (1+s)(1+f)
            return abs(size) * price * (1 + S) * F
        if exiting["next"]:  # the exit of a position: fee plus the exit's slippage
            exiting["next"] = False
            return abs(size) * price * (S + F - S * F)
        return abs(size) * price * F  # the entry (at open x (1 + s)) and its statistics

    class Cross(Strategy):
        def init(self) -> None:
            self.sig = self.I(lambda: signal.astype(float), name="signal")

        def next(self) -> None:
            if self.sig[-1] == 1 and not self.position:
                self.buy()
            elif self.sig[-1] == -1 and self.position:
                exiting["next"] = True
                self.position.close()

    frame = pd.DataFrame({"Open": candles.open, "High": candles.high, "Low": candles.low, "Close": candles.close,
                          "Volume": candles.volume}, index=pd.to_datetime(candles.ts_ms, unit="ms"))
    bt = FractionalBacktest(frame, Cross, cash=10_000, commission=commission, spread=S, fractional_unit=UNIT)
    with warnings.catch_warnings():
        # it says the last trade is left open (finalize_trades=False), as ours leaves it
        warnings.filterwarnings("ignore", message=".*still open.*|.*finalize_trades.*", category=UserWarning)
        # backtesting.py 0.6 calls pandas APIs that pandas 3 deprecates (its code, not ours)
        warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)
        return bt.run()


def test_backtesting_py_agrees_on_trades_equity_and_fees(shared_data):
    ours, candles = _ours(shared_data)
    stats = _theirs(candles)
    trades = stats["_trades"]
    assert len(candles) > 75_000
    assert len(ours.trades) == len(trades) > 800
    for mine, (_, theirs) in zip(ours.trades, trades.iterrows(), strict=True):
        assert mine.entry_ms == theirs.EntryTime.value // 1_000_000
        assert mine.exit_ms == theirs.ExitTime.value // 1_000_000
        assert mine.quantity == pytest.approx(theirs.Size, rel=1e-6)
        assert mine.entry_price == pytest.approx(theirs.EntryPrice, rel=1e-6)
        assert mine.exit_price == pytest.approx(theirs.ExitPrice * (1 - S), rel=1e-6)  # theirs: the raw open
        assert mine.pnl_usd == pytest.approx(theirs.PnL, rel=1e-6, abs=1e-6)
        exit_slippage = mine.quantity * theirs.ExitPrice * S
        assert mine.fees_usd + exit_slippage == pytest.approx(theirs.Commission, rel=1e-6)
    assert ours.final_equity_usd == pytest.approx(stats["Equity Final [$]"], rel=1e-6)
    fees = sum(t.fees_usd for t in ours.trades)  # the round trips' (a position open at the end is not one)
    assert fees + sum(t.quantity * trades.ExitPrice.iloc[i] * S for i, t in enumerate(ours.trades)) == \
        pytest.approx(trades.Commission.sum(), rel=1e-6)
