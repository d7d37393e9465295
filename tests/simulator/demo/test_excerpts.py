"""The docs quote the demo as it is: every marked excerpt matches a fresh virtual run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.demo.excerpts import FILES, ROOT, capture, render, rewrite

COMMAND = ".venv/bin/python -m simulator.demo.excerpts"


@pytest.fixture(scope="module")
def rendered() -> tuple[dict[str, str], dict[str, str]]:
    return render(capture())


def test_the_docs_quote_what_the_demo_prints(
    rendered: tuple[dict[str, str], dict[str, str]],
) -> None:
    blocks, inline = rendered
    stale = [
        name
        for name in FILES
        if rewrite(text := (ROOT / name).read_text(encoding="utf-8"), blocks, inline) != text
    ]
    assert not stale, f"{', '.join(stale)} quote(s) an older demo: run {COMMAND}"


def test_every_excerpt_the_generator_knows_is_quoted_somewhere() -> None:
    text = "".join((ROOT / name).read_text(encoding="utf-8") for name in FILES)
    used = set(re.findall(r"<!-- (?:begin )?demo:([a-z0-9-]+) -->", text))
    blocks, inline = render(capture())
    assert used == set(blocks) | set(inline)


def test_a_stale_figure_is_rewritten_and_an_unknown_name_refused(
    rendered: tuple[dict[str, str], dict[str, str]],
) -> None:
    blocks, inline = rendered
    stale = "copied (<!-- demo:bytes-after -->2.22 TB<!-- /demo -->) after"
    assert rewrite(stale, blocks, inline) == (
        f"copied (<!-- demo:bytes-after -->{inline['bytes-after']}<!-- /demo -->) after"
    )
    assert inline["bytes-after"] == "2.16 TB"
    with pytest.raises(KeyError, match="no-such"):
        rewrite("<!-- demo:no-such -->1<!-- /demo -->", blocks, inline)


def test_the_summary_block_is_the_summary_the_demo_prints(
    rendered: tuple[dict[str, str], dict[str, str]],
) -> None:
    blocks, _ = rendered
    assert "copied after it     2.16 TB" in blocks["summary"]
    doc = (Path(ROOT) / "docs" / "best-effort-cancel.md").read_text(encoding="utf-8")
    assert blocks["summary"] in doc


def test_the_pages_link_only_inside_the_repository_or_to_absolute_urls() -> None:
    for name in FILES:
        text = (ROOT / name).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (ROOT / name).parent / target.split("#")[0]
            assert path.resolve().is_relative_to(ROOT.resolve()), f"{name}: {target}"
            assert path.exists(), f"{name}: {target}"
        assert "../shared" not in text, name
