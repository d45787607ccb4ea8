"""Every numeric setting of the config refuses true/false (and numbers in quotes).

pydantic's lax mode reads true as 1 and false as 0 where an int or float is expected, so a
config with ``"interval_seconds": true`` ran every second. The test walks the model's fields
(every nested model, each variant of a discriminated union, dict values and list items), so a
numeric field added later is covered without being named here.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from scheduler.config import DEFAULT_CHECKERS_DIR, Config, parse_config
from scheduler.engine.errors import ConfigError

VALID: dict[str, Any] = {
    "interval_seconds": 600, "market": {"source": "synthetic", "seed": 42},
    "strategies": [{"id": "alpha", "type": "spot", "script": "check_strategy.py",
                    "args": ["momentum", "BTC/USDT", "1h"], "capital": 1000}],
}
#: the key a dict field gets in the walk (a fee schedule's exchange, a strategy parameter)
DICT_KEYS = {"fees": "binance", "params": "period"}

Setup = dict[tuple[Any, ...], Any]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _walk(annotation: Any, path: tuple[Any, ...], setup: Setup) -> Iterator[tuple[tuple[Any, ...], Setup]]:
    """(JSON path, values the document needs beside it) of every int/float setting under ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _walk(args[0], path, setup)
    elif origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if any(m in (int, float) for m in members):
            yield path, setup
        for m in members:
            if _is_model(m):
                yield from _walk(m, path, setup)
    elif annotation in (int, float):
        yield path, setup
    elif _is_model(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)  # resolves forward references
        fields = {name: (hints[name], f.is_required()) for name, f in annotation.model_fields.items()}
        own = dict(setup)
        for name, (hint, required) in fields.items():
            if typing.get_origin(hint) is Literal and len(typing.get_args(hint)) == 1:
                own[(*path, name)] = typing.get_args(hint)[0]  # the variant's discriminator
            elif required and hint in (str, int, float) and name not in ("id", "script"):
                own[(*path, name)] = "data" if hint is str else 100  # FilesSpec.root, FixedUsdSizing.usd
        for name, (hint, _) in fields.items():
            yield from _walk(hint, (*path, name), own)
    elif origin is dict:
        yield from _walk(args[1], (*path, DICT_KEYS[path[-1]]), setup)
    elif origin is list and _is_model(args[0]):
        yield from _walk(args[0], (*path, 0), setup)


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[path[-1]] = value


def _json_path(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else f".{key}" if out else key
    return out


NUMERIC = list(_walk(Config, (), {}))


def test_the_walk_finds_every_kind_of_numeric_setting() -> None:
    paths = {_json_path(p) for p, _ in NUMERIC}
    assert len(paths) > 50, sorted(paths)  # not vacuous: the top level, nested models, variants, dicts, lists
    for expected in ("interval_seconds", "risk.max_position_pct", "market.seed", "market.timeout_s",
                     "market.max_chain_age_s", "strategies[0].capital", "strategies[0].sizing.usd",
                     "strategies[0].params.period", "execution.fees.binance.taker_pct", "status.port",
                     "strategies[0].harvest.min_dte_days"):
        assert expected in paths


def _doc(path: tuple[Any, ...], setup: Setup, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for where, v in setup.items():
        _set(doc, where, v)
    _set(doc, path, value)
    return doc


@pytest.mark.parametrize(("path", "setup"), NUMERIC, ids=[_json_path(p) for p, _ in NUMERIC])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_refused_where_a_number_belongs(path: tuple[Any, ...], setup: Setup, value: bool) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(_doc(path, setup, value), base_dir=DEFAULT_CHECKERS_DIR.parent)
    where = _json_path(path)
    mine = [p for p in e.value.problems if p.startswith(f"{where}: ")]
    assert mine, e.value.problems
    assert f"the boolean {str(value).lower()}" in mine[0] and "write the number" in mine[0], mine[0]


@pytest.mark.parametrize("path", ["interval_seconds", "risk.max_position_pct", "market.seed"])
def test_a_number_in_quotes_is_refused_too(path: str) -> None:
    doc = copy.deepcopy(VALID)
    _set(doc, tuple(path.split(".")), "60")
    with pytest.raises(ConfigError) as e:
        parse_config(doc, base_dir=DEFAULT_CHECKERS_DIR.parent)
    assert any(p.startswith(f"{path}: ") and "'60'" in p and "without quotes" in p for p in e.value.problems), \
        e.value.problems


def test_the_valid_document_and_plain_numbers_still_load(tmp_path: Path) -> None:
    config = parse_config(copy.deepcopy(VALID), base_dir=DEFAULT_CHECKERS_DIR.parent)
    assert config.interval_seconds == 600 and config.strategies[0].capital == 1000.0
