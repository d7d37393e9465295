"""Each benchmark's section of docs/benchmarks.md is replaced in place, not appended."""

from __future__ import annotations

from pathlib import Path

from bench.docs import markers, write_section


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
