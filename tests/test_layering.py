"""The package's floors: each imports only from its own floor or those below.

Read from the source (no imports), so a violation fails here before it
becomes an import cycle at run time.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recurrent_zoo"

# Top-level modules and packages of `recurrent_zoo`, by floor (README:
# Architecture). The base holds what every floor may use.
FLOORS = {
    0: {
        "catalog",
        "run_files",
        "environment",
        "metrics",
        "forecast_metrics",
        "plots",
    },
    # forecast_baselines reads windows as data/ does (window_inputs).
    1: {"layers", "cells", "reference", "data", "forecast_baselines"},
    2: {"models"},
    3: {"training", "tuning", "distribute", "export", "demo"},
    4: {"commands", "cli"},
}
FLOOR = {name: floor for floor, names in FLOORS.items() for name in names}


def _imports():
    """(importing part, imported part, imported names, file) per import."""
    for path in sorted(PACKAGE.rglob("*.py")):
        part = path.relative_to(PACKAGE).with_suffix("").parts[0]
        if part == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            names = [alias.name for alias in node.names]
            if node.module.startswith("recurrent_zoo."):
                yield part, node.module.split(".")[1], names, path
            elif node.module == "recurrent_zoo":
                for name in names:
                    yield part, name, [], path


def test_every_part_of_the_package_has_a_floor():
    parts = {p.with_suffix("").name for p in PACKAGE.iterdir()}
    parts -= {"__init__", "__pycache__", "presets"}
    assert parts == set(FLOOR)


def test_no_part_imports_from_a_floor_above_it():
    upward = [
        f"{path.relative_to(PACKAGE)} imports {target}"
        for part, target, _, path in _imports()
        if FLOOR[target] > FLOOR[part]
    ]
    assert not upward


def test_parts_of_a_floor_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    for part, target, _, _ in _imports():
        if target != part:
            graph.setdefault(part, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert not [part for part in graph if reaches(part, part, {part})]


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_no_private_name_is_imported_from_another_part(floor):
    private = [
        f"{path.relative_to(PACKAGE)} imports {name} from {target}"
        for part, target, names, path in _imports()
        if FLOOR[part] == floor and target != part
        for name in names
        if name.startswith("_")
    ]
    assert not private
