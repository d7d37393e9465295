"""The worker's public API: what ``__all__`` promises exists, nothing public is left out of it,
and ``simulator/`` and ``bench/`` import the worker only through it."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

import worker
import worker.mqtt
import worker.states

ROOT = Path(__file__).parents[1]
PUBLIC = ("worker", "worker.mqtt", "worker.states")
#: Modules outside worker/ that reach inside it on purpose, and why.
INTERNAL_USE = {
    "bench/jobs_in_flight.py": "reads the jobs table of a running worker's store, read-only",
    "bench/mqtt_cases.py": "writes outbox transactions exactly as the ledger commits them",
}


@pytest.mark.parametrize("package", [worker, worker.mqtt], ids=lambda p: p.__name__)
def test_a_package_exports_exactly_its_public_names(package: types.ModuleType) -> None:
    exported = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exported == set(package.__all__) - {"states"}


def test_the_public_submodules_are_the_declared_ones() -> None:
    modules = {
        name for name in worker.__all__ if isinstance(getattr(worker, name), types.ModuleType)
    }
    assert {f"worker.{name}" for name in modules} | {"worker", "worker.mqtt"} == set(PUBLIC)


def test_the_state_module_lists_every_rule_it_defines() -> None:
    # Its tables' short aliases (``J = JobState``) are not definitions.
    defined = {
        name
        for name, value in vars(worker.states).items()
        if not name.startswith("_")
        and (isinstance(value, type) or callable(value))
        and getattr(value, "__module__", None) == "worker.states"
        and value.__name__ == name
    }
    assert defined <= set(worker.states.__all__)


@pytest.mark.parametrize("module", PUBLIC)
def test_every_exported_name_resolves(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert missing == []


def _worker_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "worker"
        ):
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name, [])
                for alias in node.names
                if alias.name.split(".")[0] == "worker"
            ]
    return found


def _outside_the_worker() -> list[Path]:
    return sorted(p for top in ("simulator", "bench") for p in (ROOT / top).rglob("*.py"))


def test_simulator_and_bench_import_the_worker_only_through_its_public_api() -> None:
    offences = []
    for path in _outside_the_worker():
        relative = path.relative_to(ROOT).as_posix()
        for line, module, names in _worker_imports(path):
            if module not in PUBLIC:
                if relative not in INTERNAL_USE:
                    offences.append(f"{relative}:{line}: {module}")
                continue
            exported = importlib.import_module(module).__all__
            offences += [f"{relative}:{line}: {module}.{n}" for n in names if n not in exported]
    assert offences == []


def test_every_internal_use_is_still_needed() -> None:
    for relative in INTERNAL_USE:
        modules = {module for _, module, _ in _worker_imports(ROOT / relative)}
        assert modules - set(PUBLIC), f"{relative} no longer reaches inside the worker"
