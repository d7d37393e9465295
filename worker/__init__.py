"""drivesim's worker: the simulated Azure Import/Export datacenter.

The public API: the job model, the pure state machine, the service and its errors, the
stores, the clock, the pipeline and the status bus.
"""

from worker.clock import Clock, virtual_loop
from worker.config import DatacenterConfig, Policy, Range
from worker.datacenter import Datacenter
from worker.errors import (
    ConfigError,
    DrivesimError,
    InvalidJobState,
    ResourceNotFound,
    ServiceError,
    StoreError,
    ValidationError,
)
from worker.ledger import Ledger
from worker.memory_bus import MemoryBus
from worker.memory_store import MemoryStore
from worker.model import DriveState, JobResponse, JobState, JobType
from worker.pipeline import DatacenterPipeline
from worker.plan import PlanHints, Planner
from worker.relay import OutboxRelay
from worker.retention import RetentionSweeper
from worker.service import CancelResult, CreateResult, JobService
from worker.sink import StatusSink
from worker.sqlite_store import SQLiteStore
from worker.states import CancelAnswer, CancelWindow
from worker.status import StatusMessage
from worker.store import JobStore

__all__ = [
    "CancelAnswer",
    "CancelResult",
    "CancelWindow",
    "Clock",
    "ConfigError",
    "CreateResult",
    "Datacenter",
    "DatacenterConfig",
    "DatacenterPipeline",
    "DriveState",
    "DrivesimError",
    "InvalidJobState",
    "JobResponse",
    "JobService",
    "JobState",
    "JobStore",
    "JobType",
    "Ledger",
    "MemoryBus",
    "MemoryStore",
    "OutboxRelay",
    "PlanHints",
    "Planner",
    "Policy",
    "Range",
    "ResourceNotFound",
    "RetentionSweeper",
    "SQLiteStore",
    "ServiceError",
    "StatusMessage",
    "StatusSink",
    "StoreError",
    "ValidationError",
    "virtual_loop",
]
