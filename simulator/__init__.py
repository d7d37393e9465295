"""drivesim's simulator: scenario files, runs, invariants, reports and the CLI."""

from simulator.customer import ActionResult
from simulator.history import History
from simulator.invariants import CheckResult, check_run
from simulator.report import build_report
from simulator.runner import RunResult, ScenarioRun, run_scenario
from simulator.scenario import Action, JobSpec, Scenario, load_scenario, parse_scenario

__all__ = [
    "Action",
    "ActionResult",
    "CheckResult",
    "History",
    "JobSpec",
    "RunResult",
    "Scenario",
    "ScenarioRun",
    "build_report",
    "check_run",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
]
