"""A live run's broker, network and worker faults, struck on its processes.

Each kind's injector (:data:`~simulator.faults.kinds.FAULTS`) strikes and says how to heal.
Here they are struck one at a time on each part of the system a fault puts out of order
(a fault whose part is already down is skipped), and each is healed once it has lasted, or
when the run ends.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from simulator.faults.kinds import FaultKind, Heal, Processes, ProcessFault
from simulator.faults.plan import FaultRecord
from worker import Clock, DrivesimError, get_logger

__all__ = ["ProcessStrikes"]

log = get_logger("drivesim.live")


class ProcessStrikes:
    """Strikes and heals the faults that need ``processes``, on ``clock``'s time.

    ``struck`` is told each fault once it has struck (its ``struck`` time set), ``skipped``
    each one not struck and why.
    """

    def __init__(
        self,
        processes: Processes,
        clock: Clock,
        *,
        struck: Callable[[FaultRecord], None],
        skipped: Callable[[FaultRecord, str], None],
    ) -> None:
        self.processes = processes
        self.clock = clock
        self._struck = struck
        self._skipped = skipped
        #: The parts under a fault now.
        self._busy: set[str] = set()
        #: The faults struck and not yet healed, by index: the part each holds, its heal.
        self._heals: dict[int, tuple[str, FaultRecord, Heal]] = {}

    def free(self, kind: FaultKind) -> bool:
        """Whether the part ``kind`` puts out of order is free (always, if it holds none)."""
        return kind.occupies not in self._busy

    async def strike(self, record: FaultRecord, tg: TaskGroup) -> None:
        """Strike ``record``'s fault now, unless its part is already down; its healing is
        started in ``tg``."""
        kind = record.fault.spec
        assert isinstance(kind, ProcessFault), f"{kind.name} does not strike processes"
        target = kind.occupies
        if kind.target == "database" and self.processes.database is None:
            return self._skipped(record, "needs several workers on PostgreSQL (--workers)")
        if target is not None and target in self._busy:
            return self._skipped(record, f"the {target} was already under a fault")
        if target is not None:
            self._busy.add(target)
        heal = await anyio.to_thread.run_sync(kind.strike, self.processes, record.fault)
        record.struck = self.clock.now()
        self._struck(record)
        if target is None:
            record.healed = record.struck
            return
        self._heals[record.fault.index] = (target, record, heal)
        tg.start_soon(self._heal_after, record)

    async def heal_all(self) -> None:
        """Heal every fault struck and not yet healed (the run is ending)."""
        for index in list(self._heals):
            await self._heal(index)

    async def _heal_after(self, record: FaultRecord) -> None:
        await self.clock.sleep(record.fault.lasts)
        await self._heal(record.fault.index)

    async def _heal(self, index: int) -> None:
        target, record, heal = self._heals.pop(index)
        try:
            await anyio.to_thread.run_sync(heal)
        except DrivesimError as exc:
            record.detail = f"healing failed: {exc}"
            log.error("fault not healed", fault=index, error=str(exc))
        else:
            record.healed = self.clock.now()
            log.info("fault healed", fault=index, kind=record.fault.kind)
        finally:
            self._busy.discard(target)
