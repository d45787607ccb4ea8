"""The backtester: the daemon's strategies and engine, replayed over recorded market data
(issue 10). ``backtest.result`` is the contract between the runner and the analytics."""
