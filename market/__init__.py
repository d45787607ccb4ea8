"""Market data: one interface (market.base.MarketSource), three sources.

- ``ccxt``: live public data from Binance (spot) and Deribit (options).
- ``files``: candles replayed from CSV files laid out per exchange/symbol/timeframe.
- ``synthetic``: the project's own seeded, clearly labelled synthetic market.

Only closed candles ever leave this package.
"""
