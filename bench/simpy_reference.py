"""A minimal SimPy model of drivesim's pipeline: the lower bound for virtual-time speed.

The same scenario file, expanded the same way (:func:`simulator.scenario.load_scenario`:
identical jobs, arrival times, ship times, cancels and deletes), the same per-job plans
(:class:`worker.plan.Planner` with the run's seed: carrier and return delays, lost
packages, drive sizes, errors, missing and late drives) and the same rules (the cancel
window and final states of :mod:`worker.states`), run as plain SimPy processes: bays per
location are :class:`simpy.Resource`, transfers sleep in checkpoint steps, waiting drives
are skipped after a cancel while transfers in flight finish, packaging waits the return
delay, and jobs go 90 days after they end (14 days after creation if never shipped) on
the sweeper's hourly grid. Nothing is published or stored: an *event* is counted where
drivesim commits a change (one ``seq``), so the counts compare with its ``changes``.
It runs with the collector thresholds drivesim's runs use (:func:`worker.heap.long_lived_heap`):
with CPython's defaults its full collections over 100,000 jobs' processes cost it a fifth
of its time, and the lower bound should not be slowed by what drivesim is spared.

``python -m bench.simpy_reference configs/load-small.toml`` prints the counts as JSON.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from simulator.scenario import Action, JobSpec, Scenario, load_scenario
from worker import DrivePlan, JobState, JobType, Planner, long_lived_heap, states

__all__ = ["run_reference"]

J = JobState
Process = Generator[simpy.Event, Any, None]


@dataclass(slots=True)
class _Job:
    spec: JobSpec
    created_at: float
    carrier_delay: float
    return_delay: float
    package_lost: bool
    drives: dict[str, DrivePlan]
    state: JobState = J.CREATING
    ended_at: float | None = None
    cancel_requested: bool = False
    cancelled: simpy.Event | None = None
    errors: bool = False
    transferred: int = 0
    deleted: bool = False
    when: list[Action] = field(default_factory=list)


class _Model:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.env = simpy.Environment()
        self.dc = scenario.datacenter
        self.policy = scenario.policy
        self.planner = Planner(scenario.datacenter, scenario.seed)
        self.bays = {
            name: simpy.Resource(self.env, capacity=n) for name, n in self.dc.locations.items()
        }
        self.jobs: dict[str, _Job] = {}
        #: Per job, the actions that wait for it to enter a state.
        self.when: dict[str, list[Action]] = {}
        for action in scenario.actions:
            if action.when is not None:
                self.when.setdefault(action.job, []).append(action)
        self.events = 0
        self.created = 0
        self.deleted = 0
        self.ended: dict[str, int] = {}
        self.done = self.env.event()
        self.open = len(scenario.actions)  # the run ends when every action is answered

    # -- bookkeeping -----------------------------------------------------------------------

    def _commit(self) -> None:
        self.events += 1

    def _answer(self) -> None:
        self.open -= 1
        self._check_done()

    def _check_done(self) -> None:
        if self.open == 0 and not self.jobs and not self.done.triggered:
            self.done.succeed()

    def _set_state(self, job: _Job, new: JobState) -> None:
        job.state = new
        if new in states.TERMINAL:
            job.ended_at = self.env.now
            outcome = (
                "failed"
                if new is J.CLOSED
                else "cancelled"
                if job.cancel_requested
                else "succeeded"
            )
            self.ended[outcome] = self.ended.get(outcome, 0) + 1
            self.env.process(self._retain(job, job.ended_at + self.policy.retention))
        for action in [a for a in job.when if a.when is new]:
            job.when.remove(action)
            self.env.process(self._act(action, self.env.now + action.after))

    # -- customers -------------------------------------------------------------------------

    def _act(self, action: Action, at: float) -> Process:
        yield self.env.timeout(max(0.0, at - self.env.now))
        job = self.jobs.get(action.job)
        match action.do:
            case "create":
                self._create(action.job)
            case "ship" if job is not None and job.state is J.CREATING:
                self._commit()
                self._set_state(job, J.SHIPPING)
                self.env.process(self._job(job))
            case "cancel" if job is not None:
                verdict = states.decide_cancel(
                    job.state, job.cancel_requested, self.policy.cancel_window
                )
                if verdict.cancel is states.CancelAnswer.ACCEPTED:
                    self._commit()
                    job.cancel_requested = True
                    assert job.cancelled is not None
                    job.cancelled.succeed()
                    if verdict.next_state is not None:
                        self._set_state(job, verdict.next_state)
            case "delete" if job is not None and job.state in states.DELETABLE:
                self._delete(job)
            case _:
                pass  # refused, as drivesim answers it
        self._answer()

    def _create(self, name: str) -> None:
        spec = self.scenario.jobs[name]
        now = self.env.now
        ids = [d.id for d in spec.drives]
        # drivesim's clock is the virtual loop's, which counts whole microseconds: its
        # creation time (a key of the job's plan) is the arrival rounded to one.
        created_at = round(now * 1_000_000) / 1_000_000
        plan = self.planner.plan(name, JobType(spec.type), ids, created_at)
        if spec.type == "Export":
            remaining = plan.export_bytes
            drives = {}
            for k in range(spec.export_drives):
                share = min(int(self.dc.export_drive_size), remaining)
                remaining -= share
                drives[f"{name}-X{k}"] = DrivePlan(size_bytes=share)
        else:
            drives = dict(plan.drives)
        job = _Job(
            spec=spec,
            created_at=now,
            carrier_delay=plan.carrier_delay,
            return_delay=plan.return_delay,
            package_lost=plan.package_lost,
            drives=drives,
            cancelled=self.env.event(),
            when=list(self.when.get(name, ())),
        )
        self.jobs[name] = job
        self.created += 1
        self._commit()
        self.env.process(self._expire(job))

    def _delete(self, job: _Job) -> None:
        self._commit()
        job.deleted = True
        del self.jobs[job.spec.name]
        self.deleted += 1
        self.open -= len(job.when)  # ``when`` actions never triggered are answered as such
        job.when.clear()
        self._check_done()

    # -- retention -------------------------------------------------------------------------

    def _on_grid(self, due: float) -> float:
        interval = self.policy.sweep_interval
        return math.ceil(due / interval) * interval

    def _expire(self, job: _Job) -> Process:
        due = self._on_grid(job.created_at + self.policy.creating_expiry)
        yield self.env.timeout(max(0.0, due - self.env.now))
        if not job.deleted and job.state is J.CREATING:
            self._delete(job)

    def _retain(self, job: _Job, due: float) -> Process:
        yield self.env.timeout(max(0.0, self._on_grid(due) - self.env.now))
        if not job.deleted:
            self._delete(job)

    # -- the datacenter --------------------------------------------------------------------

    def _job(self, job: _Job) -> Process:
        env = self.env
        lost_after = self.dc.lost_package_after
        yield env.timeout(lost_after if job.package_lost else job.carrier_delay)
        self._commit()
        if job.package_lost:
            job.errors = True
            self._set_state(job, J.CLOSED)
            return
        if any(not p.arrives for p in job.drives.values()):
            job.errors = True
        self._set_state(job, J.RECEIVED)
        bays = self.bays[job.spec.location]
        copies = [
            env.process(self._drive(job, plan, bays))
            for plan in job.drives.values()
            if plan.arrives
        ]
        yield env.all_of(copies)
        if not job.transferred:
            self._commit()  # settle: → Packaging (else the last finish_drive's own change)
        self._set_state(job, J.PACKAGING)
        yield env.timeout(job.return_delay)
        self._commit()
        final = states.final_state(cancelled=job.cancel_requested, any_errors=job.errors)
        self._set_state(job, final)

    def _drive(self, job: _Job, plan: DrivePlan, bays: simpy.Resource) -> Process:
        env = self.env
        if plan.late_by > 0:
            yield env.timeout(plan.late_by)
            self._commit()
        if job.cancel_requested:
            return  # skipped: it waited when the cancel came
        assert job.cancelled is not None
        request = bays.request()
        yield request | job.cancelled
        if not request.triggered or job.cancel_requested:
            request.cancel()
            if request.triggered:
                bays.release(request)
            return
        try:
            self._commit()  # start_drive (and the job → Transferring)
            job.transferred += 1
            if job.state is J.RECEIVED:
                self._set_state(job, J.TRANSFERRING)
            yield from self._transfer(job, plan)
        finally:
            bays.release(request)

    def _transfer(self, job: _Job, plan: DrivePlan) -> Process:
        dc, env = self.dc, self.env
        rate = dc.throughput * plan.speed
        started = env.now
        deadline = started + max(
            plan.size_bytes / dc.throughput * dc.transfer_deadline_factor,
            dc.checkpoint_interval,
        )
        target = (
            math.floor(plan.size_bytes * plan.fails_at)
            if plan.fails_at is not None
            else plan.size_bytes
        )
        copied = 0
        while copied < target:
            left = (target - copied) / rate
            if left <= dc.checkpoint_interval:
                if env.now + left > deadline:
                    break
                yield env.timeout(left)
                copied = target
            else:
                if env.now + dc.checkpoint_interval > deadline:
                    break
                yield env.timeout(dc.checkpoint_interval)
                copied += int(dc.checkpoint_interval * rate)
                self._commit()  # checkpoint
        if copied < target:
            yield env.timeout(max(0.0, deadline - env.now))
        if copied < target or plan.fails_at is not None:
            job.errors = True
        self._commit()  # finish_drive

    def run(self) -> None:
        for action in self.scenario.actions:
            if action.at is not None:
                self.env.process(self._act(action, action.at))
        self.env.run(until=self.env.any_of([self.done, self.env.timeout(self.scenario.until)]))


def run_reference(path: str) -> dict[str, Any]:
    """Run the scenario at ``path`` in the SimPy model; counts and wall seconds (the run
    alone, after loading the scenario)."""
    scenario = load_scenario(path)
    model = _Model(scenario)
    started = time.perf_counter()
    with long_lived_heap():
        model.run()
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "sim_days": model.env.now / 86400,
        "jobs": model.created,
        "deleted": model.deleted,
        "events": model.events,
        "ended": dict(sorted(model.ended.items())),
        "finished": model.done.triggered,
    }


if __name__ == "__main__":
    counts = run_reference(sys.argv[1])
    counts["own_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(counts))
