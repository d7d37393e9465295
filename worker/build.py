"""Which build of drivesim runs: the hot pure modules compiled by mypyc, or pure Python.

The modules every change passes through and that touch no I/O (:data:`COMPILED`) are
compiled to C extensions by mypyc when drivesim is installed where a C compiler is at
hand (``setup.py``); elsewhere, or with ``DRIVESIM_COMPILE=0``, they run as Python. Both
builds produce the same bytes. An extension sits beside its source and is what Python
imports, so one built from a source that has changed since would run the old code: the
build records each source's digest (:data:`DIGESTS`) and :func:`check_fresh` refuses a
stale extension when :mod:`worker` is imported (an ImportError naming them).

This module imports the standard library only: ``setup.py`` runs it before anything of
drivesim is installed.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import sys
from pathlib import Path

__all__ = ["COMPILED", "DIGESTS", "check_fresh", "compiled", "describe", "digests"]

#: The modules mypyc compiles, in import order.
COMPILED = ("worker.states", "worker.status", "worker.changes")
#: Beside the extensions: the digest of each source they were compiled from.
DIGESTS = "compiled.json"

_HERE = Path(__file__).resolve().parent


def _source(module: str, root: Path) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digests(root: Path) -> dict[str, str]:
    """The SHA-256 of each compiled module's source under ``root`` (the folder holding
    the ``worker`` package)."""
    return {m: hashlib.sha256(_source(m, root).read_bytes()).hexdigest() for m in COMPILED}


def _extensions(package: Path) -> list[Path]:
    found = []
    for module in COMPILED:
        stem = module.rpartition(".")[2]
        found += [
            package / (stem + suffix)
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (package / (stem + suffix)).exists()
        ]
    return found


def check_fresh(package: Path = _HERE) -> None:
    """Raise ImportError when an extension in ``package`` was compiled from a source
    other than the one beside it."""
    extensions = _extensions(package)
    if not extensions:
        return
    recorded = package / DIGESTS
    built = json.loads(recorded.read_text()) if recorded.exists() else {}
    now = digests(package.parent)
    stale = [module for module in COMPILED if built.get(module) != now[module]]
    if stale:
        raise ImportError(
            f"{', '.join(stale)} changed since drivesim was compiled: install it again "
            f"(make, or pip install -e .) or remove {', '.join(p.name for p in extensions)} "
            f"from {package} to run the Python source"
        )


def compiled() -> list[str]:
    """The modules of :data:`COMPILED` that run as extensions in this process."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [
        module
        for module in COMPILED
        if str(getattr(sys.modules.get(module), "__file__", "")).endswith(suffixes)
    ]


def describe() -> str:
    """The build, as ``drivesim --version`` says it."""
    modules = compiled()
    if not modules:
        return "pure Python"
    if len(modules) == len(COMPILED):
        return "compiled with mypyc"
    return f"partly compiled with mypyc: {', '.join(modules)}"
