"""The one place a config becomes the pure engine's rules.

Everything that trades through ``engine.step`` (the daemon's cycles, manual trades, a
replay of history) builds its rules here, so the same config always means the same
fills, fees, sizing, stops and limits.
"""

from __future__ import annotations

from datetime import timedelta

from scheduler.config import Config, HarvestConfig, OptionLimitsConfig, StrategyConfig
from scheduler.engine.fills import Costs
from scheduler.engine.option_fills import HarvestRules, OptionFees, OptionLimits, OptionRules
from scheduler.engine.risk import AccountRules
from scheduler.engine.step import SleeveRules
from scheduler.engine.timeframes import timeframe_ms


def sleeve_rules(config: Config, s: StrategyConfig) -> SleeveRules:
    """One strategy's spot rules: costs, breakers, sizing, stops, quote age."""
    fees = config.fees_for(s)
    bar_ms = timeframe_ms(s.timeframe) if s.timeframe else 3_600_000
    sizing = s.sizing
    value = {"fixed_fraction": getattr(sizing, "fraction", 0.0), "fixed_usd": getattr(sizing, "usd", 0.0),
             "risk_based": getattr(sizing, "risk_pct", 0.0)}[sizing.mode]
    r = config.risk
    return SleeveRules(
        # market orders and triggered stops both take liquidity: the taker fee applies
        costs=Costs(fees.taker_pct / 100.0, config.execution.slippage_pct / 100.0),
        max_drawdown_pct=s.drawdown_pct,
        drawdown_block=timedelta(hours=r.drawdown_block_hours),
        close_on_drawdown=s.close_on_drawdown,
        consecutive_losses=r.consecutive_losses,
        loss_cooldown=timedelta(minutes=r.loss_cooldown_minutes),
        sizing_mode=sizing.mode,
        sizing_value=value,
        risk_cap_pct=getattr(sizing, "max_position_pct", 15.0),
        stop_loss_pct=s.stop_loss_pct,
        timeframe=s.timeframe or "1h",
        max_quote_age=timedelta(milliseconds=bar_ms * config.execution.max_quote_age_bars),
        recent_trades_kept=config.execution.recent_trades_kept,
    )


def account_rules(config: Config) -> AccountRules:
    r = config.risk
    return AccountRules(r.max_position_pct, r.max_position_usd, r.max_exposure_pct, r.daily_loss_pct,
                        r.portfolio_kill_pct)


def _limits(c: OptionLimitsConfig) -> OptionLimits:
    return OptionLimits(c.max_abs_delta_usd, c.max_abs_gamma_usd, c.max_abs_vega_usd, c.max_premium_at_risk_pct)


def _harvest(c: HarvestConfig | None) -> HarvestRules | None:
    return None if c is None else HarvestRules(c.profit_target_pct, c.loss_stop_pct, c.min_dte_days)


def option_rules(config: Config, s: StrategyConfig) -> OptionRules:
    """One options strategy's rules: Deribit's fees, the no-side spread, quote age, its theta
    harvest and book limits (the strategy's own where it sets them, else ``options.*``)."""
    o = config.options
    fees = OptionFees(trade_rate=o.fees.trade_pct / 100, trade_cap=o.fees.trade_cap_pct / 100,
                      delivery_rate=o.fees.delivery_pct / 100, delivery_cap=o.fees.delivery_cap_pct / 100)
    return OptionRules(fees=fees, no_side_spread=o.no_side_spread_pct / 100,
                       max_quote_age=timedelta(seconds=o.max_quote_age_s),
                       harvest=_harvest(s.harvest if s.harvest is not None else o.harvest),
                       limits=_limits(s.option_limits or o.limits))


def account_option_limits(config: Config) -> OptionLimits:
    return _limits(config.options.account_limits)
