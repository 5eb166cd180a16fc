"""One error hierarchy for the service; every error leaves it as a FHIR OperationOutcome.

    FhirError (HTTP status, OperationOutcome issue code)
    ├── InvalidRequest       400 invalid       malformed JSON, wrong resourceType, bad parameters
    │   └── PayloadTooLarge  413 too-long      body above the configured limit
    ├── Unauthorized         401 login         no bearer token, or one that does not verify
    ├── Forbidden            403 forbidden     the token's scopes or patient do not allow it
    ├── UnsupportedMediaType 415 not-supported wrong Content-Type
    ├── NotFound             404 not-found     unknown resource or route
    ├── MethodNotAllowed     405 not-supported
    ├── Conflict             409 conflict
    ├── PreconditionFailed   412 conflict
    ├── Unprocessable        422 processing    a resource that does not fit its Questionnaire
    │                                          (or its profile); may carry several issues
    └── ServiceUnavailable   503 transient     the store is unreachable

Messages never contain patient data: they name linkIds, element paths and rules, not answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: severity, code, human text and FHIRPath location."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


class FhirError(Exception):
    """Base class: an HTTP status plus the issues of an OperationOutcome."""

    def __init__(
        self,
        message: str,
        issues: list[Issue] | None = None,
        status: int = 500,
        code: str = "exception",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.issues = issues or [Issue(message, code=code)]
        self.headers: dict[str, str] = {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class InvalidRequest(FhirError):
    """400: the request cannot be read (JSON, resourceType, parameters)."""

    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message, issues or [], 400, "invalid")


class PayloadTooLarge(InvalidRequest):
    """413: the body is larger than MIT_FHIR_MAX_BODY_BYTES."""

    def __init__(self, message: str) -> None:
        FhirError.__init__(self, message, [], 413, "too-long")


class Unauthorized(FhirError):
    """401: no usable bearer token; answered with a WWW-Authenticate challenge (RFC 6750)."""

    def __init__(self, message: str, error: str | None = "invalid_token") -> None:
        super().__init__(message, [], 401, "login")
        challenge = 'Bearer realm="mit-fhir"'
        if error:
            challenge += f', error="{error}", error_description="{message}"'
        self.headers["WWW-Authenticate"] = challenge


class Forbidden(FhirError):
    """403: authenticated, but the token's scopes or patient context do not allow this."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 403, "forbidden")
        self.headers["WWW-Authenticate"] = (
            f'Bearer realm="mit-fhir", error="insufficient_scope", error_description="{message}"')


class UnsupportedMediaType(FhirError):
    """415: the body is not FHIR JSON."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 415, "not-supported")


class NotFound(FhirError):
    """404: no such resource, route or Questionnaire."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 404, "not-found")


class MethodNotAllowed(FhirError):
    """405: the route exists but not for this method."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 405, "not-supported")


class Conflict(FhirError):
    """409: the request conflicts with what is stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 409, "conflict")


class PreconditionFailed(FhirError):
    """412: If-Match did not match the stored version."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 412, "conflict")


class Unprocessable(FhirError):
    """422: a well-formed resource that breaks its Questionnaire or profile."""

    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message, issues or [], 422, "processing")


class ServiceUnavailable(FhirError):
    """503: a dependency (the database) is unreachable; the client may retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 503, "transient")


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome resource from issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}
