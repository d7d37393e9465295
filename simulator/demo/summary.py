"""The demo's closing summary, and the three policies side by side (``--compare``).

Plain two- and four-column tables: they shrink to a narrow terminal and read the same when
printed to a file.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator.demo.narration import window_text
from simulator.demo.outcome import DemoOutcome, at, size
from simulator.run.answers import ActionResult
from worker import JobState
from worker.states import CANCEL_WINDOWS

__all__ = ["compare_rows", "print_compare", "print_summary"]

DAY = 86_400.0


def _answer(result: ActionResult) -> str:
    match result.outcome:
        case "accepted":
            return "accepted"
        case "rejected-too-late":
            return "rejected: CancelTooLate"
        case "not-triggered":
            return "never asked"
        case other:
            return f"refused: {other}" if other[:1].isupper() else other


def _drives(names: Sequence[str]) -> str:
    return f"{len(names)} ({', '.join(names)})" if names else "none"


def _deleted(outcome: DemoOutcome) -> str:
    if outcome.deleted_at is None:
        return "not yet"
    days = (outcome.deleted_at - outcome.ended_at) / DAY
    return f"{at(outcome.deleted_at)}, {days:.0f} days after it ended ({outcome.deleted_reason})"


def _invariants(outcome: DemoOutcome) -> str:
    held = sum(1 for c in outcome.invariants if c.ok)
    failed = [c.name for c in outcome.invariants if not c.ok]
    text = f"{held} of {len(outcome.invariants)} hold"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")


def print_summary(console: Console, outcome: DemoOutcome) -> None:
    """When the cancel was asked and took effect, what ran on, what was skipped, the end."""
    options = outcome.options
    table = Table(
        title=f"summary · {options.policy} · cancel asked in {options.cancel_at}",
        title_justify="left",
        show_header=False,
        box=box.SIMPLE,
    )
    table.add_column("what", style="bold", overflow="fold")
    table.add_column("value", overflow="fold")
    cancel = outcome.cancel
    table.add_row("cancel asked", f"{at(cancel.at)}, in {cancel.state}: {_answer(cancel)}")
    if outcome.took_effect is not None:
        table.add_row("took effect", f"{at(outcome.took_effect)}, {outcome.effect}")
    else:
        table.add_row("took effect", "never: the job ran its normal course")
    table.add_row("finished after it", _drives(outcome.finished_after))
    table.add_row("copied after it", size(outcome.bytes_after))
    table.add_row("skipped", _drives(outcome.skipped))
    table.add_row(
        "copied in all",
        f"{outcome.drives_copied} of {len(outcome.drives)} drives, {size(outcome.copied)}",
    )
    late = outcome.late_cancel
    table.add_row("late cancel", f"{late.job} in {late.state}: {_answer(late)}")
    delete = outcome.delete
    where = f" in {delete.state}" if delete.state else ""
    table.add_row("delete", f"{delete.job}{where}: {_answer(delete)}")
    table.add_row(
        "final state",
        f"{outcome.final_state} at {at(outcome.ended_at)} · cancelRequested "
        f"{str(outcome.cancel_requested).lower()} · outcome {outcome.outcome}",
    )
    table.add_row("deleted", _deleted(outcome))
    table.add_row("invariants", _invariants(outcome))
    console.print(table)


def _short(result: ActionResult) -> str:
    """An answer in one word: accepted, or the error code."""
    return {"rejected-too-late": "CancelTooLate", "not-triggered": "never asked"}.get(
        result.outcome, result.outcome
    )


def _window(outcome: DemoOutcome) -> str:
    policy = outcome.options.policy
    if JobState.TRANSFERRING in CANCEL_WINDOWS[policy]:
        return "before Packaging"
    return window_text(policy)


def compare_rows(outcome: DemoOutcome) -> list[tuple[str, str]]:
    """One policy's column of the comparison: (row label, cell)."""
    cancel = outcome.cancel
    ran_on = skipped = "–"
    if outcome.cancel_recorded is not None:
        finished = len(outcome.finished_after)
        ran_on = f"{finished} drive{'' if finished == 1 else 's'}, {size(outcome.bytes_after)}"
        skipped = f"{len(outcome.skipped)} drives"
    copied = f"{outcome.drives_copied} of {len(outcome.drives)}, {size(outcome.copied)}"
    return [
        ("cancel window", _window(outcome)),
        ("the cancel", _short(cancel)),
        ("ran on after it", ran_on),
        ("skipped", skipped),
        ("drives copied", copied),
        ("late cancel", _short(outcome.late_cancel)),
        ("delete", _short(outcome.delete)),
        ("final state", outcome.final_state),
        ("cancelRequested", str(outcome.cancel_requested).lower()),
        ("outcome", outcome.outcome),
        ("ended", at(outcome.ended_at)),
        ("deleted", "never" if outcome.deleted_at is None else at(outcome.deleted_at)),
    ]


def print_compare(console: Console, outcomes: Sequence[DemoOutcome]) -> None:
    """The same story under each policy, one column each.

    The policy names are the ones a user types after ``--policy``: never broken. The table
    takes the width it has (up to a few columns of air per policy); where the columns
    cannot hold the names and cells whole, each policy gets a block of its own instead.
    """
    first = outcomes[0]
    title = (
        f"the same story under each cancel window · the cancel asked in "
        f"{first.cancel.state}; the late cancel ({first.late_cancel.job}) and the delete "
        f"({first.delete.job}) in Packaging"
    )
    columns = [compare_rows(o) for o in outcomes]
    labels = [label for label, _ in columns[0]]
    names = [str(o.options.policy) for o in outcomes]
    widths = [
        max(len(name), *(len(cell) for _, cell in column))
        for name, column in zip(names, columns, strict=True)
    ]
    needed = max(len(label) for label in labels) + sum(widths) + 2 * len(widths)
    if needed <= console.width:
        table = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            # Room to breathe on a wide terminal, without spreading a row across 200 columns.
            width=min(console.width, needed + 6 * len(widths)),
        )
        table.add_column("", style="bold", no_wrap=True)
        for name, width in zip(names, widths, strict=True):
            table.add_column(name, no_wrap=True, min_width=width)
        for i, label in enumerate(labels):
            table.add_row(label, *(column[i][1] for column in columns))
        console.print(table)
        return
    console.print(Text(title))
    for name, column in zip(names, columns, strict=True):
        block = Table(box=None, pad_edge=False, show_header=False, expand=False)
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for label, cell in column:
            block.add_row(label, cell)
        console.print()
        console.print(Text(f"--policy {name}", style="bold"), no_wrap=True, crop=False)
        console.print(block)
