"""Headless Chromium: a page rendered to a PNG, or to the DOM it builds."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker import ChromiumMissing

__all__ = ["chromium", "dump_dom", "measure_text", "screenshot"]


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


def dump_dom(html_path: Path, timeout: float = 120, width: int | None = None) -> str:
    """The DOM of ``html_path`` as headless Chromium built it (in a window ``width`` wide)."""
    size = [] if width is None else [f"--window-size={width},1000"]
    done = _run_chromium([*size, "--dump-dom", html_path.resolve().as_uri()], timeout)
    return done.stdout.decode("utf-8")


#: Measures every SVG's text and marks as laid out, into a ``<pre id="measured">``.
_MEASURE = """<script>
addEventListener('load', () => {
  const out = {texts: [], marks: []};
  document.querySelectorAll('svg').forEach((svg, i) => {
    const box = svg.viewBox.baseVal;
    const k = box && box.width ? svg.getBoundingClientRect().width / box.width : 1;
    svg.querySelectorAll('text').forEach(t => {
      const r = t.getBoundingClientRect();
      if (!r.width || !t.textContent.trim()) return;
      out.texts.push({svg: i, text: t.textContent.trim(), cls: t.getAttribute('class') || '',
        px: parseFloat(getComputedStyle(t).fontSize) * k,
        x: r.left, y: r.top, w: r.width, h: r.height});
    });
    svg.querySelectorAll('[data-mark]').forEach(m => {
      const r = m.getBoundingClientRect();
      out.marks.push({svg: i, mark: m.getAttribute('data-mark'),
        x: r.left, y: r.top, w: r.width, h: r.height});
    });
  });
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measure_text(html_path: Path, width: int, timeout: float = 120) -> dict[str, Any]:
    """Every SVG text of the page as Chromium lays it out in a window ``width`` px wide:
    its text, class, rendered font size in CSS px and box; and the boxes of the marks
    (elements with ``data-mark``). The page is measured from a copy with a script added;
    the page itself stays script-free."""
    page = html_path.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>")
    with tempfile.TemporaryDirectory(prefix="drivesim-measure-") as folder:
        copy = Path(folder) / "page.html"
        copy.write_text(page, encoding="utf-8")
        dom = dump_dom(copy, timeout, width)
    start = dom.index('<pre id="measured">') + len('<pre id="measured">')
    text = dom[start : dom.index("</pre>", start)]
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    measured: dict[str, Any] = json.loads(text.replace("&amp;", "&"))
    return measured
