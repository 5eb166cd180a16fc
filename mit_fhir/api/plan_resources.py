"""MedicationRequest, CarePlan and CareTeam: created from plan forms, or POSTed directly."""

from __future__ import annotations

import time
from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.medicationrequest import MedicationRequest
from flask import Blueprint, Response

from mit_fhir.api.http import base_url, fhir_response, read_resource
from mit_fhir.api.resources import add_read_and_search
from mit_fhir.care_plans import with_identifier
from mit_fhir.context import ctx
from mit_fhir.errors import Issue, Unprocessable
from mit_fhir.fhir.index import plan_index
from mit_fhir.fhir.validate import check_structure, subject_is_patient
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, authorize_type
from mit_fhir.store.repository import insert, new_id
from mit_fhir.sync import outbox

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
    res = with_identifier({**{k: v for k, v in res.items() if k != "meta"}, "id": new_id()})
    c = ctx()
    with c.store.transaction() as conn:
        insert(conn, res, plan_index(res))
        if c.sync_enabled:
            outbox.enqueue(conn, [res], time.time())
    audit.add([res])
    location = f"{base_url()}/{rtype}/{res['id']}/_history/1"
    return fhir_response(res, 201, {"Location": location, "ETag": 'W/"1"'})


def _blueprint(rtype: str) -> Blueprint:
    bp = Blueprint(rtype.lower(), __name__, url_prefix=f"/fhir/{rtype}")
    add_read_and_search(bp, rtype)
    bp.add_url_rule("", "create", lambda: create(rtype), methods=["POST"])
    return bp


blueprints = [_blueprint(t) for t in MODELS]
