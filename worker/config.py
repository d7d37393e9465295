"""The datacenter's shape and the service's rules: bays, throughput, delays, windows, retention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.states import CancelWindow

__all__ = ["DAY", "GB", "HOUR", "MINUTE", "DatacenterConfig", "Policy", "Range"]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
GB = 1_000_000_000
TB = 1000 * GB


@dataclass(frozen=True, slots=True)
class Range:
    """A closed interval to draw from uniformly; ``low == high`` is a fixed value."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"expected 0 <= low <= high, got [{self.low}, {self.high}]")


@dataclass(frozen=True, slots=True)
class DatacenterConfig:
    """The simulated datacenter: locations with their bays, and how long things take."""

    #: Drive bays by location name; a job is processed at its ``location``.
    locations: Mapping[str, int] = field(default_factory=lambda: {"West US": 2})
    #: Copy rate of one bay, bytes per simulated second.
    throughput: float = 200_000_000.0
    #: Simulated seconds between two persisted progress checkpoints of a transfer.
    checkpoint_interval: float = 15 * MINUTE
    #: Carrier delay from Shipping to the package's arrival.
    carrier_delay: Range = Range(1 * DAY, 3 * DAY)
    #: From Packaging until the drives are delivered back.
    return_delay: Range = Range(2 * DAY, 3 * DAY)
    #: A package that never arrives closes the job after this long in Shipping
    #: (two weeks late plus thirty days without an answer from the customer).
    lost_package_after: float = 44 * DAY
    #: A transfer gets this many times its nominal duration before it is cut off.
    transfer_deadline_factor: float = 3.0
    #: Size of a drive when the scenario does not give one.
    drive_size: Range = Range(1 * TB, 4 * TB)
    #: Capacity of each empty drive sent in for an export job.
    export_drive_size: float = 4 * TB
    #: Bytes an export job selects when the scenario does not say.
    export_size: Range = Range(1 * TB, 8 * TB)
    #: Chance that a drive hits read errors during its copy.
    drive_error_rate: float = 0.0
    #: Chance that a drive is missing from its package.
    drive_missing_rate: float = 0.0
    #: Chance that a whole package never arrives.
    package_lost_rate: float = 0.0
    #: Chance that a drive copies slowly, and its speed relative to a bay's nominal rate.
    slow_drive_rate: float = 0.0
    slow_drive_speed: Range = Range(0.2, 0.5)
    #: Chance that a drive arrives on its own after its package, and how much later.
    late_drive_rate: float = 0.0
    late_drive_delay: Range = Range(1 * DAY, 3 * DAY)

    def __post_init__(self) -> None:
        if not self.locations:
            raise ValueError("a datacenter needs at least one location")
        for name, bays in self.locations.items():
            if bays < 1:
                raise ValueError(f"location {name!r} needs at least one bay, got {bays}")
        if self.throughput <= 0 or self.checkpoint_interval <= 0:
            raise ValueError("throughput and checkpoint_interval must be positive")
        for rate in (
            self.drive_error_rate,
            self.drive_missing_rate,
            self.package_lost_rate,
            self.slow_drive_rate,
            self.late_drive_rate,
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"a rate must be between 0 and 1, got {rate}")


@dataclass(frozen=True, slots=True)
class Policy:
    """The service's rules: the cancel window, retention and expiry, the sweep interval."""

    cancel_window: CancelWindow = CancelWindow.BEFORE_PACKAGING
    #: Completed and Closed jobs are deleted this long after they end.
    retention: float = 90 * DAY
    #: Creating jobs expire this long after creation or their last update.
    creating_expiry: float = 14 * DAY
    #: The retention sweeper runs this often; a deletion is due at most this late.
    sweep_interval: float = 1 * HOUR
    #: Drives per job ("up to ten drives").
    max_drives: int = 10

    def __post_init__(self) -> None:
        if self.retention < 0 or self.creating_expiry < 0 or self.sweep_interval <= 0:
            raise ValueError("retention and expiry must be >= 0 and the sweep interval > 0")
