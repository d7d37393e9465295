"""drivesim's build: the hot pure modules compiled by mypyc where a C compiler is at hand.

Everything else about the package is in ``pyproject.toml``. The modules compiled are
``worker.build.COMPILED``; where there is no C compiler or no Python headers, where mypyc
fails, or with ``DRIVESIM_COMPILE=0``, drivesim installs as pure Python and says why in
one line (``pip install -v`` shows it; ``drivesim --version`` says which build runs).
"""

from __future__ import annotations

import json
import runpy
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILD = runpy.run_path(str(ROOT / "worker" / "build.py"))


def _say(line: str) -> None:
    print(f"drivesim: {line}", file=sys.stderr, flush=True)


def _remove_built() -> None:
    """What an earlier build left in the tree (an editable install's): neither a pure
    install nor one compiling another set of modules may import it."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for path in [*(ROOT / "worker").glob(f"*{suffix}"), *ROOT.glob(f"*__mypyc{suffix}")]:
        path.unlink()
    (ROOT / "worker" / BUILD["DIGESTS"]).unlink(missing_ok=True)


def _extensions() -> list[Any]:
    _remove_built()
    why = BUILD["why_pure"]()
    if why is not None:
        _say(f"installing pure Python: {why}")
        return []
    from mypyc.build import mypycify

    sources = [str(Path(*m.split(".")).with_suffix(".py")) for m in BUILD["COMPILED"]]
    try:
        return list(mypycify(sources, opt_level="3", debug_level="0"))
    except (Exception, SystemExit) as exc:
        # mypyc type-checks what it compiles, with the modules it imports: without them
        # (drivesim's dependencies not installed yet, as in a build of its own), it fails.
        _say(
            f"installing pure Python: mypyc could not compile ({exc!r}); install the "
            "dependencies first, then drivesim again, to compile it"
        )
        return []


class BuildOrFallBack(build_ext):
    """Compile, record the digests of the sources compiled (``worker.build.DIGESTS``), or,
    when compiling fails, remove what was built and install pure Python."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:  # a compiler that fails: drivesim still installs
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            _say(f"installing pure Python: compiling failed ({exc})")
            return
        package = Path(self.get_ext_fullpath("worker.states")).parent
        digests = BUILD["digests"](ROOT)
        (package / BUILD["DIGESTS"]).write_text(json.dumps(digests, indent=1) + "\n")
        _say(f"compiled with mypyc: {', '.join(BUILD['COMPILED'])}")


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildOrFallBack})
