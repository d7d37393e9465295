"""Every error drivesim raises on purpose, in one place.

The service errors follow Azure Resource Manager: each has an ARM-style ``code``, a
human ``message``, an optional ``target`` (the field or resource at fault) and the HTTP
status the REST surface would answer with. Command transports (MQTT, HTTP) render them
with :meth:`ServiceError.to_arm` and nothing else.

    DrivesimError
    ├── ServiceError                      code, message, target, status
    │   ├── ValidationError               400  InvalidRequestContent, InvalidResourceName, ...
    │   │   └── PayloadTooLarge           413  PayloadTooLarge
    │   ├── ResourceNotFound              404  ResourceNotFound
    │   ├── InvalidJobState               409  InvalidJobState, CancelTooLate, DeleteNotAllowed
    │   ├── Conflict                      409  JobNameInUse (the name is another group's job)
    │   ├── AuthenticationFailed          401  AuthenticationFailed, InvalidAuthenticationToken
    │   └── ServiceUnavailable            503  ServiceUnavailable (shutting down: ask again)
    ├── StoreError                        the job store failed; the change was not made
    │   ├── RecordChanged                 another worker changed the job first: judge again
    │   └── LeaseLost                     this worker no longer holds the job's location
    ├── PublishError                      the broker connection dropped mid-batch
    ├── ConfigError                       a settings or scenario file is invalid
    ├── CommandFailed                     a worker answered a command with an error
    └── ChromiumMissing                   headless Chromium is needed and not installed
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationFailed",
    "ChromiumMissing",
    "CommandFailed",
    "ConfigError",
    "Conflict",
    "DrivesimError",
    "InvalidDefinition",
    "InvalidJobState",
    "LeaseLost",
    "PayloadTooLarge",
    "PublishError",
    "RecordChanged",
    "ResourceNotFound",
    "ServiceError",
    "ServiceUnavailable",
    "StoreError",
    "ValidationError",
]


class DrivesimError(Exception):
    """Base class of every error drivesim raises on purpose."""


class ServiceError(DrivesimError):
    """A request the job service refused; nothing was changed."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "BadRequest"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.target = target

    def to_arm(self) -> dict[str, Any]:
        """The ARM ``ErrorResponse`` body for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ValidationError(ServiceError):
    """The request is malformed: wrong types, unknown fields, bad names, too many drives."""

    status = 400
    default_code = "InvalidRequestContent"


class PayloadTooLarge(ValidationError):
    """The request is larger than the configured limit."""

    status = 413
    default_code = "PayloadTooLarge"


class ResourceNotFound(ServiceError):
    """No job of that name exists (never created, deleted, or expired)."""

    status = 404
    default_code = "ResourceNotFound"


class Conflict(ServiceError):
    """The request names a resource that exists elsewhere: a job name taken in another
    resource group (drivesim keeps job names unique across groups)."""

    status = 409
    default_code = "Conflict"


class InvalidJobState(ServiceError):
    """The request is well formed but not allowed in the job's current state."""

    status = 409
    default_code = "InvalidJobState"

    def __init__(
        self,
        message: str,
        *,
        state: str,
        code: str | None = None,
        target: str | None = None,
    ):
        super().__init__(message, code=code, target=target)
        self.state = state

    def to_arm(self) -> dict[str, Any]:
        """The ErrorResponse, with the job's state at the time in ``details``."""
        body = super().to_arm()
        body["error"]["details"] = [
            {"code": "CurrentState", "target": "properties.state", "message": self.state}
        ]
        return body


class AuthenticationFailed(ServiceError):
    """The HTTP request carries no bearer token, or not the configured one."""

    status = 401
    default_code = "AuthenticationFailed"


class ServiceUnavailable(ServiceError):
    """The worker is shutting down and takes no more requests; nothing was changed."""

    status = 503
    default_code = "ServiceUnavailable"


class StoreError(DrivesimError):
    """The job store could not commit a change; the change was not made."""


class RecordChanged(StoreError):
    """Another worker committed a change of the job since this one read it: nothing was
    committed, the ledger holds the job as it is now, and the change is to be judged again
    against it."""


class LeaseLost(StoreError):
    """The worker's lease on a location lapsed or was taken over: it commits nothing more
    for that location's jobs (the fence), and stops driving them."""


class PublishError(DrivesimError):
    """Publishing a batch of status messages failed part-way.

    ``delivered`` lists the indices (in the batch) of the messages the broker acknowledged;
    the others are still to be sent.
    """

    def __init__(self, message: str, *, delivered: list[int]):
        super().__init__(message)
        self.delivered = delivered


class ConfigError(DrivesimError):
    """A scenario or settings file is invalid: names the file, the key and what was expected."""

    def __init__(self, path: str, key: str, expected: str):
        super().__init__(f"{path}: {key}: {expected}")
        self.path = path
        self.key = key
        self.expected = expected


class CommandFailed(DrivesimError):
    """A worker answered a command with an error (``code``, ``message``, ``status``)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        error = reply.get("error") or {}
        self.status = int(reply.get("status", 0))
        self.code = str(error.get("code", "Unknown"))
        self.message = str(error.get("message", ""))
        super().__init__(f"{self.code} ({self.status}): {self.message}")


class NoAnswer(DrivesimError):
    """A command got no answer: no worker answered in time, or the broker is out of reach."""


class ChromiumMissing(DrivesimError):
    """Headless Chromium is needed (to render an HTML page) and is not installed."""


class InvalidDefinition(AssertionError):
    """The state tables contradict each other (raised when :mod:`worker.states` is
    imported). Not a :class:`DrivesimError`: it is a bug in drivesim, not bad input."""
