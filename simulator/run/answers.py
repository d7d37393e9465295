"""What a request got back: a scripted action's answer, or that of a request a fault made.

The runs record one for every request their customers send; the invariants judge them and
the reports list them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ActionResult"]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a scripted request got back."""

    index: int
    job: str
    do: str
    at: float
    outcome: str
    detail: str = ""
    expect: str | None = None
    #: The job's state when the request was made (None: no such job).
    state: str | None = None

    @property
    def ok(self) -> bool:
        return self.expect is None or self.expect == self.outcome

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}
