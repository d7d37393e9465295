"""The demo on a terminal of any width: the live view keeps its bars and the bytes after the
cancel at 60 columns, and the --compare table never breaks a policy name a user types."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from simulator.demo.board import Board
from simulator.demo.command import play_virtual
from simulator.demo.outcome import DemoOutcome, size
from simulator.demo.story import StoryOptions, demo_scenario
from simulator.demo.summary import print_compare
from simulator.demo.view import LiveView
from worker import StatusMessage
from worker.states import CancelWindow

WIDTHS = (60, 80, 200)
BAR = "━"


@pytest.fixture(scope="module")
def messages() -> list[StatusMessage]:
    seen: list[StatusMessage] = []
    play_virtual(StoryOptions(), on_message=seen.append)
    return seen


@pytest.fixture(scope="module")
def after_cancel(messages: list[StatusMessage]) -> Board:
    """The board an hour after the cancel: two drives running on, three waiting."""
    board = Board(demo_scenario(StoryOptions()))
    for message in messages:
        board.apply(message)
        board.on_published(message)
        drives = board.jobs["contoso-import"].drives.values()
        if any(d.at_cancel is not None and d.copied - d.at_cancel >= 300e9 for d in drives):
            break
    return board


def _screen(board: Board, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    view = LiveView(
        console,
        board,
        title="drivesim demo",
        headline=lambda: Text("running"),
        clock=lambda: None,
        broker="mqtt://127.0.0.1:1883",
    )
    console.print(view.render())
    return console.export_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_live_view_keeps_bars_and_bytes_after_the_cancel(
    after_cancel: Board, width: int
) -> None:
    screen = _screen(after_cancel, width)
    assert all(len(line) <= width for line in screen.splitlines())
    running = [
        d for d in after_cancel.jobs["contoso-import"].drives.values() if d.at_cancel is not None
    ]
    assert len(running) == 2
    lines = screen.splitlines()
    for drive in running:
        row = next(i for i, line in enumerate(lines) if drive.drive in line)
        assert BAR in lines[row], (width, lines[row])
        assert f"{size(drive.copied)} of {size(drive.size)}" in lines[row]
        after = f"+{size(drive.copied - (drive.at_cancel or 0))} after cancel"
        assert after in lines[row] or after in lines[row + 1], (width, screen)


@pytest.fixture(scope="module")
def outcomes() -> list[DemoOutcome]:
    return [play_virtual(StoryOptions(policy)) for policy in CancelWindow]


def _compare(outcomes: list[DemoOutcome], width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_compare(console, outcomes)
    return console.export_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_never_breaks_a_policy_name(outcomes: list[DemoOutcome], width: int) -> None:
    out = _compare(outcomes, width)
    assert all(len(line.rstrip()) <= width for line in out.splitlines())
    for policy in CancelWindow:
        assert str(policy) in out, (width, out)
    assert "before-\n" not in out.replace(" ", "")
    for cell in ("2 drives, 2.16 TB", "DeleteNotAllowed", "Creating, Shipping"):
        assert cell in out


def test_compare_uses_the_width_it_has(outcomes: list[DemoOutcome]) -> None:
    """Side by side from 80 columns, wider on a wide terminal; one block per policy at 60."""
    at80, at200, at60 = (_compare(outcomes, w) for w in (80, 200, 60))
    header = next(line for line in at80.splitlines() if "before-packaging" in line)
    assert "creating-or-shipping" in header
    assert "creating-only" in header
    wide = max(len(line.rstrip()) for line in at200.splitlines())
    assert wide > max(len(line.rstrip()) for line in at80.splitlines())
    assert at60.count("--policy ") == 3
