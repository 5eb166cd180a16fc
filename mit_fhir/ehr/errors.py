"""What can go wrong talking to the EHR, split by what the sync worker does about it.

    EhrError
    ├── EhrRetryable      network error, timeout, 5xx, 408, 409, 429: try again later
    │                     (retry_after: the server's Retry-After, in seconds, when it sent one)
    ├── EhrConflict       412: the resource changed in the EHR; report it, never overwrite
    └── EhrRejected       any other 4xx: the request itself is wrong; retrying will not help
"""

from __future__ import annotations

from typing import Any


class EhrError(Exception):
    """Base: carries the HTTP status (0 for network errors) and the EHR's OperationOutcome."""

    def __init__(self, message: str, status: int = 0, outcome: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class EhrRetryable(EhrError):
    """Transient: the worker backs off and tries again."""

    def __init__(
        self,
        message: str,
        status: int = 0,
        outcome: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status, outcome)
        self.retry_after = retry_after


class EhrConflict(EhrError):
    """412 Precondition Failed: someone edited the resource in the EHR."""


class EhrRejected(EhrError):
    """A 4xx that retrying cannot fix (400, 401 after a fresh token, 403, 404, 422, ...)."""


RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
