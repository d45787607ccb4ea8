"""Open the market source a config names. Imports each source lazily, so the
synthetic and files sources never pay for importing ccxt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from market.base import MarketSource
from scheduler.engine.errors import ConfigError


def open_source(spec: Mapping[str, Any]) -> MarketSource:
    """A MarketSource for ``spec`` (the config's ``market`` section, as a dict)."""
    kind = spec.get("source")
    if kind == "synthetic":
        from market.synthetic import SyntheticSource

        return SyntheticSource.from_spec(dict(spec))
    if kind == "files":
        from market.files_source import FilesSource

        return FilesSource.from_spec(dict(spec))
    if kind == "ccxt":
        from market.ccxt_source import CcxtSource

        return CcxtSource.from_spec(dict(spec))
    raise ConfigError([f"market.source: unknown source {kind!r}; use 'ccxt', 'files' or 'synthetic'"])


def open_options_source(spec: Mapping[str, Any]) -> Any:
    """An OptionsSource (market.options_data) for the config's market section: Deribit
    through ccxt for ``ccxt``, the seeded synthetic chain for ``synthetic``, daily chain
    snapshots and DVOL files for ``files`` (market.files_options)."""
    kind = spec.get("source")
    if kind == "synthetic":
        from market.specs import SyntheticSpec, validate
        from market.synthetic_options import SyntheticOptions

        return SyntheticOptions(seed=validate(SyntheticSpec, spec).seed)
    if kind == "files":
        from market.files_options import FilesOptions

        return FilesOptions.from_spec(dict(spec))
    if kind == "ccxt":
        from market.ccxt_source import CcxtSource

        return CcxtSource.from_spec(dict(spec))
    raise ConfigError([f"market.source: unknown source {kind!r}; use 'ccxt', 'files' or 'synthetic'"])
