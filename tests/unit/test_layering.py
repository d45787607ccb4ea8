"""The layers point one way (STYLE.md "Layers point one way"; issue 10 item 1).

Every module's imports are read with ``ast`` (top level, inside functions, under
``TYPE_CHECKING``, relative imports, and ``importlib.import_module("literal")``), so a
lazy import inside a function counts as much as one at the top.

- The pure engine (``scheduler/engine``) imports only the standard library, pydantic
  and itself.
- ``market`` imports no ``scheduler`` module except the engine's pure value modules.
- The top-level packages (``scheduler`` without its engine, the engine, ``market``,
  ``checkers``, ``strategies``, ``options``, ``backtest``) import each other without a
  cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scheduler", "market", "checkers", "strategies", "options", "backtest")
ENGINE = "scheduler.engine"
#: What market/ (and anything below the shell) may take from the engine: pure values.
ENGINE_VALUE_MODULES = frozenset({
    "scheduler.engine.errors", "scheduler.engine.market_rules", "scheduler.engine.timeframes",
})
ALLOWED_THIRD_PARTY_IN_ENGINE = frozenset({"pydantic", "pydantic_core"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, wherever it is."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            # ``from package import submodule`` imports the submodule
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            yield node.args[0].value, node.lineno


def _first_party(target: str, modules: dict[str, Path]) -> str | None:
    """The project module ``target`` names (itself, or the package an attribute is in)."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


#: The command line: the composition root over everything (``go-trader backtest`` runs the
#: backtester, which runs the scheduler's engine); nothing imports it back.
CLI_ROOT = frozenset({"scheduler.cli", "scheduler.__main__"})


def _layer(module: str) -> str:
    if module == ENGINE or module.startswith(ENGINE + "."):
        return ENGINE
    if module in CLI_ROOT:
        return "cli"
    return module.split(".")[0]


def _edges() -> list[tuple[str, str, str, int]]:
    """(importer, imported, raw target, line) for every import in the project."""
    modules = _modules()
    edges = []
    for name, path in modules.items():
        for target, line in _imports(name, path):
            edges.append((name, _first_party(target, modules) or "", target, line))
    return edges


def test_the_engine_imports_only_the_stdlib_pydantic_and_itself() -> None:
    bad = []
    for importer, imported, target, line in _edges():
        if _layer(importer) != ENGINE:
            continue
        top = target.split(".")[0]
        if imported:
            if _layer(imported) != ENGINE:
                bad.append(f"{importer}:{line} imports {imported}")
        elif top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY_IN_ENGINE:
            bad.append(f"{importer}:{line} imports {target} (neither stdlib nor pydantic)")
    assert not bad, "the pure engine must not import the shell or other libraries:\n" + "\n".join(
        dict.fromkeys(bad))


def test_market_imports_no_scheduler_module_but_the_engine_values() -> None:
    bad = []
    for importer, imported, _target, line in _edges():
        if _layer(importer) != "market" or not imported.startswith("scheduler"):
            continue
        # the engine's __init__ is import-free (pinned below), so naming it costs nothing;
        # ``from scheduler.engine import step`` shows up as its submodule on its own edge
        if imported != ENGINE and imported not in ENGINE_VALUE_MODULES:
            bad.append(f"{importer}:{line} imports {imported}")
    assert not bad, ("market/ may take only the engine's value modules "
                     f"({', '.join(sorted(ENGINE_VALUE_MODULES))}) from scheduler/:\n"
                     + "\n".join(dict.fromkeys(bad)))


def test_the_engine_value_modules_load_without_the_engine() -> None:
    """market/ and the checkers import the value modules: they must not pull pydantic or the
    engine's models in (a checker process would pay for it on every run)."""
    code = ("import sys\n"
            + "".join(f"import {name}\n" for name in sorted(ENGINE_VALUE_MODULES))
            + "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'"
            " or (m.startswith('scheduler.engine.') and m not in "
            + repr(sorted(ENGINE_VALUE_MODULES)) + "))\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]", f"importing the engine's value modules also loaded {out.stdout}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_top_level_packages_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for importer, imported, _target, line in _edges():
        if not imported:
            continue
        a, b = _layer(importer), _layer(imported)
        if a != b:
            graph.setdefault(a, set()).add(b)
            where.setdefault((a, b), f"{importer}:{line} imports {imported}")
    cycle = _cycle(graph)
    assert cycle is None, ("the packages import each other in a circle: " + " -> ".join(cycle)
                           + "\n" + "\n".join(where[(a, b)] for a, b in zip(cycle, cycle[1:], strict=False)))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


#: The engine's rule bundles: built from a config in one place, scheduler/engine_rules.py.
RULE_TYPES = frozenset({"SleeveRules", "AccountRules", "OptionRules", "OptionLimits", "HarvestRules", "OptionFees"})
RULES_BUILDERS = frozenset({"scheduler.engine_rules"})


def test_only_engine_rules_turns_a_config_into_the_engines_rules() -> None:
    """The daemon, manual trades and a backtest get their rules from scheduler/engine_rules.py,
    so one config always means the same fills, fees, sizing, stops and limits. Elsewhere a
    rules object is read (its defaults: ``OptionRules()``) or changed with
    ``dataclasses.replace``, never built from values."""
    bad = []
    for name, path in _modules().items():
        if _layer(name) == ENGINE or name in RULES_BUILDERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not (node.args or node.keywords):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in RULE_TYPES:
                bad.append(f"{name}:{node.lineno} builds {called}(...)")
    assert not bad, "build the engine's rules with scheduler/engine_rules.py:\n" + "\n".join(bad)
