"""Hand-built BacktestResults for the analytics tests (no runner needed)."""

from __future__ import annotations

from collections.abc import Sequence

from backtest.result import BacktestResult, ClosedTrade

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
T0_MS = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS  # a midnight UTC


def trade(pnl_usd: float, entry_ms: int = T0_MS, exit_ms: int | None = None, *, price: float = 100.0,
          quantity: float = 1.0, fees_usd: float = 0.0, side: str = "long", symbol: str = "BTC/USDT") -> ClosedTrade:
    exit_at = exit_ms if exit_ms is not None else entry_ms + HOUR_MS
    exit_price = price + pnl_usd / quantity if side == "long" else price - pnl_usd / quantity
    return ClosedTrade(symbol, side, entry_ms, exit_at, quantity, price, exit_price, pnl_usd, fees_usd, 0.0,  # type: ignore[arg-type]
                       "signal")


def result(values: Sequence[float], bar_ms: int = DAY_MS, *, trades: Sequence[ClosedTrade] = (),
           exposure: Sequence[float] | None = None, benchmark: Sequence[float] | None = None,
           fees_usd: float = 0.0, slippage_usd: float = 0.0, costs: dict[str, float] | None = None,
           start_ms: int = T0_MS, strategy_id: str = "s1", strategy: str = "sma_crossover",
           params: dict | None = None) -> BacktestResult:
    """A run whose equity is ``values`` at start_ms, start_ms + bar_ms, ..."""
    times = [start_ms + i * bar_ms for i in range(len(values))]
    return BacktestResult(
        strategy_id=strategy_id, kind="spot", strategy=strategy, symbols=("BTC/USDT",), timeframe=None,
        bar_ms=bar_ms, start_ms=start_ms, end_ms=times[-1] if times else start_ms,
        initial_capital_usd=float(values[0]) if values else 1000.0,
        equity=tuple(zip(times, (float(v) for v in values), strict=True)),
        exposure=tuple(exposure) if exposure is not None else (0.0,) * len(values),
        trades=tuple(trades), fills=(), fees_usd=fees_usd, slippage_usd=slippage_usd,
        benchmark=tuple(zip(times, (float(v) for v in benchmark), strict=True)) if benchmark else (),
        params=dict(params or {}), costs=dict(costs if costs is not None else {"fee_pct": 0.1, "slippage_pct": 0.05}),
        source="synthetic")
