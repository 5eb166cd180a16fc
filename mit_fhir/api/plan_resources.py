"""MedicationRequest, CarePlan and CareTeam: created from plan forms, or POSTed directly.

A CarePlan with the assessment-schedule category is a schedule (fhir/schedule.py): validated
as one when POSTed (its due Tasks created with it), and the only CarePlan that may be PUT, with
If-Match, to revoke or complete it (mit_fhir/usecases/schedules.py). The patient's own app
(fhirUser a
Patient) neither creates nor ends a schedule (403), as it creates and cancels no Task.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.medicationrequest import MedicationRequest
from flask import Blueprint, Response

from mit_fhir.api.resources import add_read_and_search
from mit_fhir.api.tasks import patient_user
from mit_fhir.errors import (
    Forbidden,
    InvalidRequest,
    Issue,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from mit_fhir.fhir.index import plan_index
from mit_fhir.fhir.schedule import is_schedule
from mit_fhir.fhir.validate import check_structure, subject_is_patient
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, authorize_type
from mit_fhir.store.repository import insert, new_id, read, serialize
from mit_fhir.sync import outbox
from mit_fhir.usecases import schedules
from mit_fhir.usecases.care_plans import with_identifier
from mit_fhir.web.context import ctx
from mit_fhir.web.http import base_url, fhir_response, if_match_version, read_resource

Resource = dict[str, Any]
# Required bindings fhir.resources does not enforce (FHIR R4 value sets).
BINDINGS: dict[str, dict[str, frozenset[str]]] = {
    "MedicationRequest": {
        "status": frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error",
                             "stopped", "draft", "unknown"}),
        "intent": frozenset({"proposal", "plan", "order", "original-order", "reflex-order",
                             "filler-order", "instance-order", "option"}),
    },
    "CarePlan": {
        "status": frozenset({"draft", "active", "on-hold", "revoked", "completed",
                             "entered-in-error", "unknown"}),
        "intent": frozenset({"proposal", "plan", "order", "option"}),
    },
    "CareTeam": {
        "status": frozenset({"proposed", "active", "suspended", "inactive", "entered-in-error"}),
    },
}
MODELS = {"MedicationRequest": MedicationRequest, "CarePlan": CarePlan, "CareTeam": CareTeam}


def _check(res: Resource) -> None:
    rtype = res["resourceType"]
    check_structure(res, MODELS[rtype])
    issues = [
        Issue(f"{name} must be one of {', '.join(sorted(allowed))}",
              expression=(f"{rtype}.{name}",))
        for name, allowed in BINDINGS[rtype].items()
        if name in res and res[name] not in allowed
    ]
    if not subject_is_patient(res):
        issues.append(Issue("subject must reference the Patient (Patient/<id>, id a FHIR id)",
                            code="required",
                            expression=(f"{rtype}.subject",)))
    if issues:
        raise Unprocessable(f"the {rtype} cannot be accepted", issues)


def create(rtype: str) -> Response:
    """Validate, store with the service's identifier, queue for the EHR; 201."""
    audit.note("create", rtype)
    authorize_type(rtype, "c")
    res = read_resource(rtype)
    authorize_resource(res, "c")
    _check(res)
    c = ctx()
    if rtype == "CarePlan" and is_schedule(res):
        _no_patient_app()
        with c.store.transaction() as conn:
            res = schedules.store_schedule(conn, c, res)
        audit.add([res])
        location = f"{base_url()}/{rtype}/{res['id']}/_history/{res['meta']['versionId']}"
        return fhir_response(res, 201, {"Location": location,
                                        "ETag": f'W/"{res["meta"]["versionId"]}"'})
    res = with_identifier({**{k: v for k, v in res.items() if k != "meta"}, "id": new_id()})
    with c.store.transaction() as conn:
        insert(conn, res, plan_index(res))
        if c.sync_enabled:
            outbox.enqueue(conn, [res], time.time())
    audit.add([res])
    location = f"{base_url()}/{rtype}/{res['id']}/_history/1"
    return fhir_response(res, 201, {"Location": location, "ETag": 'W/"1"'})


def _no_patient_app() -> None:
    """A schedule makes and withdraws Tasks: the patient's own app (fhirUser a Patient) creates
    and ends none, as it creates and cancels no Task."""
    if patient_user() is not None:
        raise Forbidden("a patient's own app does not create or end schedules")


# The only changes a PUT may make to a schedule: ending it (revoked or completed).
ENDINGS = ("revoked", "completed")


def update_schedule(rid: str) -> Response:
    """PUT of a schedule CarePlan whose only change is its status, to revoked or completed."""
    audit.note("update", "CarePlan")
    authorize_type("CarePlan", "u")
    res = read_resource("CarePlan")
    if res.get("id") != rid:
        raise InvalidRequest("the resource's id must be the id in the URL")
    _no_patient_app()
    expected = if_match_version("a schedule")
    c = ctx()
    with c.store.transaction() as conn:
        serialize(conn, f"schedule/{rid}")
        existing = read(conn, "CarePlan", rid)
        if existing is None:
            raise NotFound("no such CarePlan")
        authorize_resource(existing, "u")
        if not is_schedule(existing):
            raise MethodNotAllowed("only a schedule CarePlan (assessment-schedule) is updated")
        if int(existing["meta"]["versionId"]) != expected:
            raise PreconditionFailed("the schedule has changed since that version; read it again")
        _check_ending(existing, res)
        if res["status"] == "revoked":
            stored = schedules.cancel(conn, c, rid, datetime.now(UTC))
        else:
            stored = schedules.finish(conn, c, rid)
    audit.add([stored])
    return fhir_response(stored, headers={"ETag": f'W/"{stored["meta"]["versionId"]}"'})


def _check_ending(existing: Resource, res: Resource) -> None:
    kept = {k: v for k, v in existing.items() if k not in ("meta", "status")}
    if {k: v for k, v in res.items() if k not in ("meta", "status")} != kept:
        raise Unprocessable("a schedule cannot be edited", [Issue(
            "only the status of a schedule may change (to revoked or completed); create a new "
            "schedule for other changes", code="business-rule", expression=("CarePlan",))])
    if res.get("status") not in ENDINGS:
        raise Unprocessable("a schedule cannot be edited", [Issue(
            f"status must become one of {', '.join(ENDINGS)}", code="value",
            expression=("CarePlan.status",))])


def _blueprint(rtype: str) -> Blueprint:
    bp = Blueprint(rtype.lower(), __name__, url_prefix=f"/fhir/{rtype}")
    add_read_and_search(bp, rtype)
    bp.add_url_rule("", "create", lambda: create(rtype), methods=["POST"])
    if rtype == "CarePlan":
        bp.add_url_rule("/<rid>", "update", update_schedule, methods=["PUT"])
    return bp


blueprints = [_blueprint(t) for t in MODELS]
