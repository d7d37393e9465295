"""The structure docs/architecture.md describes: its map names every module of the worker and
the simulator, and no module imports itself through others."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "architecture.md"
TOPS = ("worker", "simulator")


def _sources() -> Iterator[tuple[str, Path]]:
    for top in TOPS:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_the_module_map_names_every_module() -> None:
    named = set(re.findall(r"`([a-z_/]+)`", DOC.read_text(encoding="utf-8")))
    modules = {path.stem for _, path in _sources() if path.stem != "__init__"}
    packages = {
        f"{path.parent.name}/"
        for _, path in _sources()
        if path.stem == "__init__" and path.parent.name not in TOPS
    }
    assert sorted((modules | packages) - named) == []


def _imports() -> dict[str, set[str]]:
    """Each module's imports of other modules here (``from pkg import submodule`` counts as
    the submodule, not as the package)."""
    modules = dict(_sources())
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                graph[name] |= subs
                if len(subs) < len(node.names):
                    graph[name].add(node.module)
    return graph


def test_no_import_cycle() -> None:
    graph = _imports()
    done: set[str] = set()
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append(" -> ".join([*path[path.index(name) :], name]))
            return
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []
