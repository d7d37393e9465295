"""What a run is asked to do: scenario files, their validation, and workloads drawn from a
seed."""

from simulator.scenario.file import Scenario, load_scenario, parse_scenario, parse_size
from simulator.scenario.spec import Action, ActionKind, DriveFile, JobSpec

__all__ = [
    "Action",
    "ActionKind",
    "DriveFile",
    "JobSpec",
    "Scenario",
    "load_scenario",
    "parse_scenario",
    "parse_size",
]
