"""How a live run's scripted customers kept to their script: the requests the scenario
times at a fixed simulated moment, how many were due by the run's end, and how late (in
wall seconds) each answered one was answered. Customers that fall behind mean the run no
longer plays the scenario as written, whatever else it measured."""

from __future__ import annotations

from collections.abc import Sequence

from bench.stats import nearest_index
from simulator.run.answers import ActionResult
from simulator.scenario import Scenario

__all__ = ["request_figures", "timed_requests"]


def timed_requests(
    scenario: Scenario, results: Sequence[ActionResult], speed: float, sim_seconds: float
) -> tuple[list[float], int]:
    """The scenario's scripted requests at a fixed simulated time: how late each answered
    one was answered (wall s), and how many were due by ``sim_seconds``."""
    timed = {a.index: a.at for a in scenario.actions if a.at is not None}
    answered = {r.index: r.at for r in results if r.index in timed}
    late = [(at - timed[i]) / speed for i, at in answered.items()]
    return late, sum(1 for at in timed.values() if at <= sim_seconds)


def request_figures(
    scenario: Scenario, results: Sequence[ActionResult], speed: float, sim_seconds: float
) -> dict[str, float]:
    """:func:`timed_requests` under a report's keys: due, answered, lateness p50 and p99."""
    late, due = timed_requests(scenario, results, speed, sim_seconds)
    return {
        "requests_due": due,
        "requests_answered": len(late),
        "request_late_p50_s": nearest_index(late, 0.5),
        "request_late_p99_s": nearest_index(late, 0.99),
    }
