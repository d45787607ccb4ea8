"""Options: pricing, greeks, implied volatility, IV rank and scoring (pure).

Paper trading of the options strategies is not implemented yet; this
package holds the pricing maths and the names the config validates against.
"""

#: The options strategies, by name.
OPTIONS_STRATEGIES = (
    "momentum_options", "vol_mean_reversion", "protective_puts", "covered_calls", "wheel", "butterfly",
)
#: Underlyings Deribit lists options on that the project supports.
UNDERLYINGS = ("BTC", "ETH")

# The IV rank (DVOL, or a labelled realized-vol percentile) that the strategies read.
from options.ivrank import IvRank, IvRankUnavailable, iv_rank  # noqa: E402

__all__ = ["OPTIONS_STRATEGIES", "UNDERLYINGS", "IvRank", "IvRankUnavailable", "iv_rank"]
