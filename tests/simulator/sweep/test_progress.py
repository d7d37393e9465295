"""The sweep's progress line: cells done of all, the time left from this session's cells
only (those done before a resume do not make it look faster), a line at the end in a log."""

from __future__ import annotations

import io

from rich.console import Console

from simulator.sweep.progress import SweepProgress


def test_the_time_left_comes_from_this_sessions_cells() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with SweepProgress(console, total=6, done=2, where="2 local processes") as progress:
        assert progress.eta() is None
        assert progress.line().plain.startswith("cells 2/6 (33%) · 0 s so far on 2 local")
        progress.advance()
        eta = progress.eta()
        assert eta is not None
        assert eta >= 0
        assert progress.line().plain.startswith("cells 3/6 (50%) · about ")
        for _ in range(3):
            progress.advance()
    printed = out.getvalue().splitlines()
    assert printed[-1].startswith("cells 6/6 (100%) · about 0 s left · ")
    assert printed[-1].endswith("on 2 local processes")
