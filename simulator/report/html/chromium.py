"""Headless Chromium: a page rendered to a PNG, or to the DOM it builds."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from worker import ChromiumMissing

__all__ = ["chromium", "dump_dom", "screenshot"]


def chromium() -> str:
    """The Chromium binary, or :class:`~worker.errors.ChromiumMissing` saying how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        raise ChromiumMissing(
            "headless Chromium is needed to render the HTML report: run `make test`, which "
            "installs it (or `apt-get install chromium`)"
        )
    return found


def _run_chromium(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="drivesim-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            timeout=timeout,
            check=True,
        )


def screenshot(
    html_path: Path, png_path: Path, width: int = 1400, height: int = 1000, timeout: float = 120
) -> None:
    """Render ``html_path`` with headless Chromium into a ``width`` by ``height`` PNG."""
    _run_chromium(
        [
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png_path.resolve()}",
            html_path.resolve().as_uri(),
        ],
        timeout,
    )


def dump_dom(html_path: Path, timeout: float = 120) -> str:
    """The DOM of ``html_path`` as headless Chromium built it."""
    done = _run_chromium(["--dump-dom", html_path.resolve().as_uri()], timeout)
    return done.stdout.decode("utf-8")
