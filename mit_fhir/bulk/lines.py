"""Pass 1 of an import, pure: what one NDJSON line is (staged, skipped or rejected) and why."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from mit_fhir.errors import FhirError
from mit_fhir.fhir.search import date_key
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.submissions import validated

from .reader import Line

Resource = dict[str, Any]
log = logging.getLogger("mit_fhir.bulk")
MAX_REASON = 1000
MAX_ISSUES = 5


@dataclass(frozen=True)
class Staged:
    """A valid QuestionnaireResponse, keyed for dedupe and for ordering."""

    line: int
    patient: str  # grouping key: the subject reference (hashed when unusually long)
    authored: str  # normalised UTC instant, "" when absent
    identity: str  # "identifier:<sha256>" or "content:<sha256>"
    identifier_token: str | None  # "system|value" as the search index holds it
    content: str


@dataclass(frozen=True)
class Skipped:
    """Another resource type (a Bulk Data export also carries Patient, Encounter...)."""

    line: int
    resource_type: str


@dataclass(frozen=True)
class Rejected:
    """A line that cannot be imported; the reason names rules, never answers."""

    line: int
    reason: str


Outcome = Staged | Skipped | Rejected


def reason(exc: FhirError) -> str:
    """The service's own validation message and issues (they carry no answers)."""
    details = []
    for issue in exc.issues[:MAX_ISSUES]:
        where = f" [{', '.join(issue.expression)}]" if issue.expression else ""
        if issue.diagnostics != exc.message or where:
            details.append(issue.diagnostics + where)
    more = len(exc.issues) - MAX_ISSUES
    if more > 0:
        details.append(f"{more} more issue(s)")
    text = f"{exc.message}: {'; '.join(details)}" if details else exc.message
    return text[:MAX_REASON]


def identity(qr: Resource) -> tuple[str, str | None]:
    """A response's dedupe identity: its identifier (system|value) if any, else its content."""
    ident = qr.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        token = f"{ident.get('system', '')}|{ident['value']}"
        return "identifier:" + hashlib.sha256(token.encode()).hexdigest(), token
    body = {k: v for k, v in qr.items() if k not in ("id", "meta")}
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return "content:" + hashlib.sha256(canonical).hexdigest(), None


def _patient_key(reference: str) -> str:
    if len(reference) <= 200 and "\x00" not in reference:
        return reference
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def classify(catalogue: Catalogue, line: Line, max_line_bytes: int) -> Outcome:
    """Parse and validate one line as `POST /fhir/QuestionnaireResponse` would."""
    if line.data is None:
        return Rejected(line.number, f"the line is longer than {max_line_bytes} bytes")
    try:
        res = orjson.loads(line.data)
    except orjson.JSONDecodeError:
        return Rejected(line.number, "the line is not valid JSON")
    if not isinstance(res, dict):
        return Rejected(line.number, "the line is not a JSON object")
    rtype = res.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return Rejected(line.number, "the line has no resourceType")
    if rtype != "QuestionnaireResponse":
        return Skipped(line.number, rtype[:64])
    try:
        validated(catalogue, res)
    except FhirError as exc:
        return Rejected(line.number, reason(exc))
    except Exception as exc:  # a bug must not stop a long import; the line is reported
        log.exception("line %d: unexpected %s while validating", line.number, type(exc).__name__)
        return Rejected(line.number, f"internal error ({type(exc).__name__}) while validating")
    key, token = identity(res)
    return Staged(
        line=line.number,
        patient=_patient_key(res["subject"]["reference"]),
        authored=date_key(res.get("authored")) or "",
        identity=key,
        identifier_token=token,
        content=line.data.decode().strip(),
    )
