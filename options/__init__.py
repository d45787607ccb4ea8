"""Options: pricing, greeks, implied volatility, IV rank and scoring (pure).

The options strategies arrive with the options issue (see ROADMAP); this
package holds the names the config already validates against.
"""

#: Options strategies of REFERENCE section 7, by name.
OPTIONS_STRATEGIES = (
    "momentum_options", "vol_mean_reversion", "protective_puts", "covered_calls", "wheel", "butterfly",
)
#: Underlyings Deribit lists options on that the project supports.
UNDERLYINGS = ("BTC", "ETH")
