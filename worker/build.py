"""Which build of drivesim runs: the hot pure modules compiled by mypyc, or pure Python.

The modules every change of a virtual-time run passes through (:data:`COMPILED`) are
compiled to C extensions by mypyc when drivesim is installed where a C compiler is at
hand (``setup.py``); elsewhere, or with ``DRIVESIM_COMPILE=0``, they run as Python. Both
builds produce the same bytes. An extension sits beside its source and is what Python
imports, so one built from a source that has changed since would run the old code: the
build records each source's digest (:data:`DIGESTS`) and :func:`check_fresh` refuses a
stale extension when :mod:`worker` is imported (an ImportError naming them).
``DRIVESIM_PURE=1`` runs the Python source where extensions are installed
(:func:`prefer_source`): to step through it, profile it by function, patch it in a test,
or compare the two builds.

This module imports the standard library only: ``setup.py`` runs it before anything of
drivesim is installed.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = [
    "COMPILED",
    "DIGESTS",
    "PURE",
    "check_fresh",
    "compiled",
    "describe",
    "digests",
    "load",
    "prefer_source",
    "why_pure",
]

#: The modules mypyc compiles: the state rules, the changes and their messages, and the
#: parts a change goes through in a virtual-time run (clock, ledger, in-memory bus, relay,
#: pipeline, retention). Not ``worker.record``: its msgspec structs' default factories do
#: not survive compilation. Not ``worker.service``: it takes requests' values as they come
#: and refuses a wrong type with an ARM error, where compiled code would raise TypeError at
#: the call. Not ``worker.memory_store``: a split run's shards extend it, and interpreted
#: classes cannot extend compiled ones.
COMPILED = (
    "worker.states",
    "worker.status",
    "worker.changes",
    "worker.clock",
    "worker.plan",
    "worker.metadata",
    "worker.ledger",
    "worker.memory_bus",
    "worker.relay",
    "worker.pipeline",
    "worker.retention",
)
#: Beside the extensions: the digest of each source they were compiled from.
DIGESTS = "compiled.json"
#: The environment variable that runs the Python source where extensions are installed.
PURE = "DRIVESIM_PURE"

_HERE = Path(__file__).resolve().parent


def _source(module: str, root: Path) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digests(root: Path, modules: Sequence[str] = COMPILED) -> dict[str, str]:
    """The SHA-256 of each module's source under ``root`` (the folder holding the
    ``worker`` package)."""
    return {m: hashlib.sha256(_source(m, root).read_bytes()).hexdigest() for m in modules}


def _extensions(package: Path) -> dict[str, Path]:
    """Each compiled module in ``package`` (an extension beside its source), by name."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return {
        f"{package.name}.{path.name.split('.')[0]}": path
        for path in sorted(package.iterdir())
        if path.name.endswith(suffixes) and path.with_name(path.name.split(".")[0] + ".py").exists()
    }


def check_fresh(package: Path = _HERE) -> None:
    """Raise ImportError when an extension in ``package`` was compiled from a source
    other than the one beside it (or by a build that did not record it)."""
    extensions = _extensions(package)
    if not extensions:
        return
    recorded = package / DIGESTS
    built = json.loads(recorded.read_text()) if recorded.exists() else {}
    now = digests(package.parent, list(extensions))
    stale = [module for module in extensions if built.get(module) != now[module]]
    if stale:
        raise ImportError(
            f"{', '.join(stale)} changed since drivesim was compiled: install it again "
            f"(make, or pip install -e .), or set {PURE}=1 to run the Python source"
        )


def why_pure() -> str | None:
    """Why the modules are not compiled here (``setup.py`` asks before compiling); None
    when they can be."""
    if os.environ.get("DRIVESIM_COMPILE", "1") == "0":
        return "DRIVESIM_COMPILE=0"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "no Python headers (Debian: python3-dev)"
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed"
    return None


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the compiled modules of ``package`` as Python source, before the extensions."""

    def __init__(self, package: Path) -> None:
        self.compiled = _extensions(package)
        self.root = package.parent

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.compiled:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname, self.root))


def prefer_source(package: Path = _HERE) -> None:
    """From now on, import every module compiled in ``package`` from its Python source
    (those not imported yet; :mod:`worker` calls this first thing when :data:`PURE` is
    ``1``)."""
    if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst(package))


def load() -> None:
    """What :mod:`worker` does before importing a compiled module: run the source if
    :data:`PURE` asks for it, else refuse stale extensions."""
    if os.environ.get(PURE) == "1":
        prefer_source()
    else:
        check_fresh()


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
