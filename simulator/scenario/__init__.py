"""What a run is asked to do: scenario files, their validation, and workloads drawn from a seed."""

from simulator.scenario.file import (
    Action,
    ActionKind,
    JobSpec,
    Scenario,
    load_scenario,
    parse_scenario,
    parse_size,
)

__all__ = [
    "Action",
    "ActionKind",
    "JobSpec",
    "Scenario",
    "load_scenario",
    "parse_scenario",
    "parse_size",
]
