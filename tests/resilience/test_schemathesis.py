"""schemathesis against the live service: no 5xx, and every 4xx an OperationOutcome.

The schema is the service's own /openapi.json, read from a real `mit-fhir serve` (live.py).
Examples per operation are bounded (MAX_EXAMPLES) so the run stays well under two minutes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 30


@schemathesis.check
def errors_are_operation_outcomes(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx from a FHIR route is application/fhir+json holding an OperationOutcome."""
    if not 400 <= response.status_code < 500 or not case.path.startswith("/fhir/"):
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/fhir+json"), (
        f"{response.status_code} answered as {content_type!r}")
    body = orjson.loads(response.content)
    assert body.get("resourceType") == "OperationOutcome", body
    assert body.get("issue"), body
    return None


CHECKS = [not_a_server_error, errors_are_operation_outcomes, status_code_conformance,
          content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(live_base: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_base}/openapi.json")


def _exercise(operation: Any, mode: GenerationMode, session: requests.Session) -> str | None:
    """Run bounded examples of one operation; the first failure's text, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(session=session, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        # Nothing to negate: the operation takes no input, or only a free-form path segment.
        assert mode is GenerationMode.NEGATIVE, operation.label
    except Exception as exc:  # schemathesis raises one error type per failed check
        return f"{operation.label} ({mode.value}): {type(exc).__name__}: {str(exc)[:1500]}"
    return None


def test_no_server_error_and_every_fhir_error_is_an_operation_outcome(api_schema: Any) -> None:
    # pytest 9.2 and schemathesis' lazy pytest loader disagree on node ids, so the operations
    # are walked here rather than parametrised; every operation runs, all failures are listed.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    failures = []
    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failure = _exercise(operation, mode, session)
                if failure:
                    failures.append(failure)
    assert not failures, "\n\n".join(failures)
