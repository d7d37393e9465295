"""drivesim's simulator: scenario files, runs, invariants, reports and the CLI.

Its parts: :mod:`simulator.scenario` (what a run is asked to do), :mod:`simulator.faults`
(what goes wrong), :mod:`simulator.run` (in-process runs), :mod:`simulator.live` (runs
against real processes), :mod:`simulator.report` (a run read back, judged and reported),
:mod:`simulator.console` (the terminal), :mod:`simulator.demo` (the teaching demo), and
:mod:`simulator.cli` with :mod:`simulator.client` (the command line and the command client).
"""

from simulator.report.history import History
from simulator.report.invariants import CheckResult, check_run
from simulator.report.json_report import build_report
from simulator.run.answers import ActionResult
from simulator.run.result import RunResult
from simulator.run.runner import ScenarioRun, run_scenario
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
