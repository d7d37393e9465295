"""The build: the hot modules compiled by mypyc where a compiler is at hand, the same
stream as pure Python, and a stale extension refused."""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from worker import build, describe_build

ROOT = Path(__file__).parents[2]

#: What setup.py asks before compiling.
COMPILER_AT_HAND = build.why_pure() is None

#: A seeded run over several locations with cancels: its whole stream, as bytes.
CHILD = """
import sys
import msgspec
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker import MemoryStore, configure_logging, describe_build
configure_logging(level="error")
result = run_scenario(load_scenario(sys.argv[1]), MemoryStore())
stream = [(m.topic, m.payload, m.qos, m.retain) for m in result.history]
sys.stdout.buffer.write(describe_build().encode() + b"\\n" + msgspec.msgpack.encode(stream))
"""


def _stream(*, pure: bool) -> tuple[str, bytes]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "configs" / "load-small.toml")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, build.PURE: "1" if pure else "0"},
    )
    described, stream = done.stdout.split(b"\n", 1)
    return described.decode(), stream


def test_the_hot_modules_run_compiled_where_a_compiler_is_at_hand() -> None:
    expected = "compiled with mypyc" if COMPILER_AT_HAND else "pure Python"
    assert describe_build() == expected
    assert build.compiled() == (list(build.COMPILED) if COMPILER_AT_HAND else [])


@pytest.mark.slow
@pytest.mark.skipif(not COMPILER_AT_HAND, reason="no compiled build here to compare")
def test_compiled_and_pure_python_builds_write_the_same_stream() -> None:
    compiled_build, compiled_stream = _stream(pure=False)
    pure_build, pure_stream = _stream(pure=True)
    assert (compiled_build, pure_build) == ("compiled with mypyc", "pure Python")
    assert len(compiled_stream) > 1_000_000  # thousands of messages, not an empty run
    assert hashlib.sha256(compiled_stream).hexdigest() == hashlib.sha256(pure_stream).hexdigest()


def _package(tmp: Path, *, built_from: dict[str, str]) -> Path:
    """A ``worker`` folder with the compiled modules' sources, an extension of
    ``worker.states`` and the digests the build recorded."""
    package = tmp / "worker"
    package.mkdir()
    for module in build.COMPILED:
        name = module.rpartition(".")[2] + ".py"
        shutil.copy(ROOT / "worker" / name, package / name)
    (package / ("states" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"")
    (package / build.DIGESTS).write_text(json.dumps(built_from))
    return package


def test_extensions_built_from_the_sources_beside_them_are_fresh(tmp_path: Path) -> None:
    package = _package(tmp_path, built_from=build.digests(ROOT))
    build.check_fresh(package)


def test_an_extension_whose_source_changed_since_is_refused(tmp_path: Path) -> None:
    package = _package(tmp_path, built_from=build.digests(ROOT))
    with (package / "states.py").open("a") as source:
        source.write("\n# changed after the build\n")
    with pytest.raises(ImportError, match=r"^worker\.states changed since drivesim was compiled"):
        build.check_fresh(package)


def test_the_python_source_runs_where_asked_even_beside_a_stale_extension(
    tmp_path: Path,
) -> None:
    package = _package(tmp_path, built_from={})
    (package / "__init__.py").write_text("from worker import build\nbuild.load()\n")
    (package / "states.py").write_text("SOURCE = True\n")
    shutil.copy(ROOT / "worker" / "build.py", package / "build.py")
    code = "import worker, worker.states; print(worker.states.__file__)"
    run = functools.partial(
        subprocess.run, [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert "changed since drivesim was compiled" in run(env={**os.environ, build.PURE: "0"}).stderr
    pure = run(env={**os.environ, build.PURE: "1"})
    assert pure.stdout.strip() == str(package / "states.py")


def test_extensions_without_the_digests_of_their_build_are_refused(tmp_path: Path) -> None:
    package = _package(tmp_path, built_from={})
    (package / build.DIGESTS).unlink()
    with pytest.raises(ImportError, match=r"^worker\.states changed since"):
        build.check_fresh(package)


def test_sources_without_extensions_are_simply_python(tmp_path: Path) -> None:
    package = _package(tmp_path, built_from={})
    for extension in package.glob("states.*"):
        if extension.suffix != ".py":
            extension.unlink()
    build.check_fresh(package)


def test_drivesim_version_says_which_build_runs() -> None:
    def version(*, pure: bool) -> str:
        return subprocess.run(
            [sys.executable, "-m", "simulator.cli", "--version"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, build.PURE: "1" if pure else "0"},
        ).stdout

    expected = "compiled with mypyc" if COMPILER_AT_HAND else "pure Python"
    assert version(pure=False) == f"drivesim {metadata.version('drivesim')} ({expected})\n"
    assert version(pure=True) == f"drivesim {metadata.version('drivesim')} (pure Python)\n"
