"""What a report says of the machine and the code it measured: CPUs, kernel, versions of
Python, Mosquitto and the libraries on the path, the commit, and the load average."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import sqlite3
import subprocess
from pathlib import Path

from bench.harness import ROOT
from simulator.live.processes import find_mosquitto

__all__ = ["load_average", "machine", "machine_line"]


def _mosquitto_version() -> str:
    out = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].removeprefix("mosquitto version ").strip() if first else "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git_state() -> str:
    """The commit the benchmark ran against, and whether worker/ had uncommitted edits."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "worker")
    return f"{commit}{' + uncommitted edits in worker/' if dirty else ''}"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine() -> dict[str, str]:
    """The machine's facts, in the order a report lists them."""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "mosquitto": _mosquitto_version(),
        "aiomqtt": _version("aiomqtt"),
        "paho-mqtt": _version("paho-mqtt"),
        "anyio": _version("anyio"),
        "sqlite": sqlite3.sqlite_version,
        "drivesim": _git_state(),
    }


def machine_line(facts: dict[str, str] | None = None) -> str:
    """``facts`` (default: :func:`machine`'s) as a report's line: ``nproc 2, cpu ...``."""
    return ", ".join(f"{key} {value}" for key, value in (facts or machine()).items())


def load_average() -> float:
    """The machine's 1-minute load average: a report gives it before and after a run."""
    return os.getloadavg()[0]
