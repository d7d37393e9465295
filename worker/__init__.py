"""drivesim's worker: the simulated Azure Import/Export datacenter.

Code outside ``worker/`` imports from three public places only (``tests/test_public_api.py``
holds them to it):

* ``worker``: the names below: the job model and records, the datacenter and its parts
  (service, pipeline, retention, ledger, stores, sinks), the clock, the settings files, the
  status messages and the errors;
* ``worker.states``: the state rules, as the tables Microsoft's state table is checked
  against (``states.TERMINAL``, ``states.CANCEL_WINDOWS``...);
* ``worker.mqtt``: the worker on an MQTT broker.

Every other module is internal: it may change shape between versions.
"""

# Before anything imports a module that may run compiled: the source if DRIVESIM_PURE=1,
# else refuse a stale extension.
from worker import build
from worker.build import describe as describe_build

build.load()

from worker import states
from worker.app import serve
from worker.clock import DEFAULT_EPOCH, Clock, format_duration, parse_duration, virtual_loop
from worker.config import DAY, DatacenterConfig, Policy, Range
from worker.datacenter import Datacenter
from worker.errors import (
    AuthenticationFailed,
    ChromiumMissing,
    CommandFailed,
    ConfigError,
    DrivesimError,
    InvalidJobState,
    LeaseLost,
    NoAnswer,
    PayloadTooLarge,
    PublishError,
    RecordChanged,
    ResourceNotFound,
    ServiceError,
    ServiceUnavailable,
    StoreError,
    ValidationError,
)
from worker.files import (
    MAX_SPEED,
    MIN_SPEED,
    DatacenterFile,
    Duration,
    Durations,
    FileReader,
    PolicyFile,
    SettingsFile,
    Size,
    Sizes,
    convert,
    durations,
    parse_size,
    read_toml,
    sizes,
)
from worker.heap import long_lived_heap
from worker.ledger import Ledger, stored_time
from worker.logs import configure_logging, get_logger, sim_time
from worker.memory_bus import MemoryBus
from worker.memory_store import MemoryStore
from worker.metadata import MemoryMetadata, Metadata
from worker.model import DriveState, JobResponse, JobState, JobType, to_builtins
from worker.pipeline import DatacenterPipeline
from worker.plan import PlanHints, Planner, bitlocker_key
from worker.record import DrivePlan, JobRecord
from worker.relay import OutboxRelay
from worker.requests import DRIVE_ID, JOB_NAME
from worker.retention import RetentionSweeper, deletion_due
from worker.service import CancelResult, CreateResult, JobService
from worker.settings import HttpConfig, WorkerSettings, load_worker_settings
from worker.sink import StatusSink
from worker.sqlite_store import SQLiteStore
from worker.states import CancelAnswer, CancelWindow
from worker.status import (
    STATUS_FILTERS,
    TOPIC_PREFIX,
    StatusMessage,
    decode_payload,
    job_topic,
    watch_command,
)
from worker.store import Commit, JobStore, Lease, OutboxEntry, SharedStore
from worker.stores import open_store, store_name

__all__ = [
    "DAY",
    "DEFAULT_EPOCH",
    "DRIVE_ID",
    "JOB_NAME",
    "MAX_SPEED",
    "MIN_SPEED",
    "STATUS_FILTERS",
    "TOPIC_PREFIX",
    "AuthenticationFailed",
    "CancelAnswer",
    "CancelResult",
    "CancelWindow",
    "ChromiumMissing",
    "Clock",
    "CommandFailed",
    "Commit",
    "ConfigError",
    "CreateResult",
    "Datacenter",
    "DatacenterConfig",
    "DatacenterFile",
    "DatacenterPipeline",
    "DrivePlan",
    "DriveState",
    "DrivesimError",
    "Duration",
    "Durations",
    "FileReader",
    "HttpConfig",
    "InvalidJobState",
    "JobRecord",
    "JobResponse",
    "JobService",
    "JobState",
    "JobStore",
    "JobType",
    "Lease",
    "LeaseLost",
    "Ledger",
    "MemoryBus",
    "MemoryMetadata",
    "MemoryStore",
    "Metadata",
    "NoAnswer",
    "OutboxEntry",
    "OutboxRelay",
    "PayloadTooLarge",
    "PlanHints",
    "Planner",
    "Policy",
    "PolicyFile",
    "PublishError",
    "Range",
    "RecordChanged",
    "ResourceNotFound",
    "RetentionSweeper",
    "SQLiteStore",
    "ServiceError",
    "ServiceUnavailable",
    "SettingsFile",
    "SharedStore",
    "Size",
    "Sizes",
    "StatusMessage",
    "StatusSink",
    "StoreError",
    "ValidationError",
    "WorkerSettings",
    "bitlocker_key",
    "configure_logging",
    "convert",
    "decode_payload",
    "deletion_due",
    "describe_build",
    "durations",
    "format_duration",
    "get_logger",
    "job_topic",
    "load_worker_settings",
    "long_lived_heap",
    "open_store",
    "parse_duration",
    "parse_size",
    "read_toml",
    "serve",
    "sim_time",
    "sizes",
    "states",
    "store_name",
    "stored_time",
    "to_builtins",
    "virtual_loop",
    "watch_command",
]
