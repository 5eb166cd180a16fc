"""The audit trail: one AuditEvent per request that creates, updates, reads or searches
patient data, written after the view with the outcome the caller saw.

A view calls `note()` before it touches patient data (so refusals are audited too) and
`add()` with what it returned or stored. Reads are not answered unless their AuditEvent is
stored: if the write fails, the caller gets 503 instead of the data. A create writes
its AuditEvent in its own transaction (`store()`); one written after a view whose data is
already committed is logged and counted when it fails, never hidden.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import Connection

from mit_fhir import metrics
from mit_fhir.errors import Issue, operation_outcome
from mit_fhir.fhir.audit import Agent, AuditRecord, audit_event, audit_index
from mit_fhir.fhir.references import resource_patient
from mit_fhir.store.repository import insert, new_id, now_instant
from mit_fhir.vocabulary import PATIENT_DATA
from mit_fhir.web.context import ctx
from mit_fhir.web.http import fhir_response

log = logging.getLogger("mit_fhir.audit")


def init_app(app: Flask) -> None:
    app.after_request(_write)


def note(subtype: str, resource_type: str) -> None:
    """Declare what this request does; only patient data is audited."""
    if resource_type in PATIENT_DATA:
        g.audit = AuditRecord(subtype, resource_type)


def add(resources: Iterable[dict[str, Any]]) -> None:
    """The resources this request returned or stored, and the patients they belong to."""
    record: AuditRecord | None = g.get("audit")
    if record is not None:
        _add(record, resources)


def add_search(args: list[tuple[str, str]], resources: list[dict[str, Any]]) -> None:
    """What a search asked (its accepted parameters) and the page of resources it returned."""
    record: AuditRecord | None = g.get("audit")
    if record is not None:
        record.query = list(args)
        record.results = len(resources)
        _add(record, resources)


def _add(record: AuditRecord, resources: Iterable[dict[str, Any]]) -> None:
    for res in resources:
        record.references.append(f"{res['resourceType']}/{res['id']}")
        pid = resource_patient(res)
        if pid:
            record.patients.append(pid)


def add_patient(patient: str) -> None:
    """A patient whose data this request used without returning a stored resource."""
    record: AuditRecord | None = g.get("audit")
    if record is not None:
        record.patients.append(patient)


def store(conn: Connection, resources: Iterable[dict[str, Any]], status: int) -> None:
    """Write a create's AuditEvent, listing what it stored, in the create's own transaction:
    the data and its audit commit together (one commit, and no data without its audit).

    The view calls `stored()` once the transaction has committed; until then a failure (the
    commit, a concurrent duplicate) is audited after the view like any other outcome.
    """
    record: AuditRecord | None = g.get("audit")
    if record is not None:
        done = AuditRecord(record.subtype, record.resource_type, list(record.references),
                           list(record.patients), record.query, record.results)
        _add(done, resources)
        _insert(conn, _event(done, status))


def stored() -> None:
    """The transaction that ran `store()` committed: its AuditEvent is written."""
    g.pop("audit", None)


def _event(record: AuditRecord, status: int) -> dict[str, Any]:
    who = g.get("principal")
    agent = Agent(
        subject=getattr(who, "subject", None),
        issuer=current_app.config.get("AUTH_ISSUER"),
        client_id=getattr(who, "client_id", None),
        fhir_user=getattr(who, "fhir_user", None),
        address=request.remote_addr,
    )
    event = audit_event(record, agent, status, now_instant(), g.get("request_id"))
    event["id"] = new_id()
    return event


def _insert(conn: Connection, event: dict[str, Any]) -> None:
    insert(conn, event, audit_index(event), sort_date=event["recorded"])


def _write(response: Response) -> Response:
    record: AuditRecord | None = g.pop("audit", None)
    if record is None:
        return response

    event = _event(record, response.status_code)
    try:
        with ctx().store.transaction() as conn:
            _insert(conn, event)
    except Exception:  # the store is down or full (or a bug): never answer a read unaudited
        # With the traceback, so a bug does not pass for a full disk; the JSON log formatter
        # keeps frames and exception types but drops their messages (no patient data).
        log.exception("audit: the AuditEvent could not be stored")
        metrics.AUDIT_FAILURES.inc()
        if record.subtype in ("read", "search-type", "operation") and response.status_code < 400:
            return fhir_response(operation_outcome([Issue(
                "the access could not be audited; try again", code="transient")]), 503)
    return response
