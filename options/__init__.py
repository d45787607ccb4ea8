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
