"""docs/architecture.md names every module of the worker and the simulator, so its map of
where each concept lives cannot fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "architecture.md"


def test_the_module_map_names_every_module() -> None:
    named = set(re.findall(r"`([a-z_/]+)`", DOC.read_text(encoding="utf-8")))
    modules = {
        path.stem
        for top in ("worker", "simulator")
        for path in (ROOT / top).rglob("*.py")
        if path.stem != "__init__"
    }
    packages = {
        f"{path.parent.name}/"
        for top in ("worker", "simulator")
        for path in (ROOT / top).rglob("__init__.py")
        if path.parent.name not in ("worker", "simulator")
    }
    assert sorted((modules | packages) - named) == []
