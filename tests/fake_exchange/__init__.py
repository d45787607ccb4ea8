"""A local fake exchange (Binance spot REST + Deribit public API) for tests and the bench."""

from tests.fake_exchange.data import ExchangeData, market_id, resample
from tests.fake_exchange.server import FAULT_KINDS, FakeExchange, Fault, fake_exchange, iso_ms

__all__ = [
    "FAULT_KINDS",
    "ExchangeData",
    "FakeExchange",
    "Fault",
    "fake_exchange",
    "iso_ms",
    "market_id",
    "resample",
]
