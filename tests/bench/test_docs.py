"""Each benchmark's section of docs/benchmarks.md is replaced in place, not appended, and
the page holds a section for every benchmark that writes one."""

from __future__ import annotations

import re
from pathlib import Path

from bench.docs import DOCS, markers, write_section


def test_a_section_is_appended_once_then_replaced_in_place(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro\n")
    write_section("commands", "first", docs)
    write_section("load", "load figures", docs)
    write_section("commands", "second", docs)
    text = docs.read_text()
    begin, end = markers("commands")
    assert text.count(begin) == text.count(end) == 1
    assert "second" in text
    assert "first" not in text
    assert text.index(begin) < text.index("second") < text.index(end) < text.index("load figures")
    assert text.startswith("# Benchmarks\n\nintro\n")


def _written_sections() -> set[str]:
    """The sections the benchmarks write: every ``finish("NAME", ...)`` and
    ``write_section("NAME", ...)`` in bench/."""
    source = "".join(path.read_text() for path in (DOCS.parents[1] / "bench").glob("*.py"))
    return set(re.findall(r'(?:finish|write_section)\(\s*"(\w+)"', source))


def test_the_page_holds_every_section_a_benchmark_writes_the_targets_first() -> None:
    names = _written_sections()
    assert {"suite", "load", "mqtt_throughput", "schedule", "recovery", "commands"} <= names
    text = DOCS.read_text()
    history = text.index("\n## History\n")
    for name in names:
        begin, end = markers(name)
        assert text.count(begin) == text.count(end) == 1, name
        # --docs replaces it in place, above the hand-kept history.
        assert text.index(begin) < text.index(end) < history, name
    first = min(text.index(markers(name)[0]) for name in names)
    assert first == text.index(markers("suite")[0])
