"""A patient's MedicationRequests, CarePlan and CareTeam, kept in step with their latest plans.

A completed medication plan adds a MedicationRequest for a new medicine, updates the one for a
medicine whose dose, timing or status changed, and stops the active ones the plan no longer
lists, so no stale active duplicate remains. A crisis plan updates the same CarePlan and
CareTeam (new versions, not new copies). A plan older than what is already recorded (a late
submission) is stored but does not roll the resources back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from mit_fhir.fhir.crisis_plan import crisis_plan
from mit_fhir.fhir.index import plan_index
from mit_fhir.fhir.medication_plan import medication_requests, stopped
from mit_fhir.fhir.plans import Planned
from mit_fhir.fhir.references import patient_id
from mit_fhir.store.repository import insert, new_id, read_by_key, read_by_key_prefix, update
from mit_fhir.vocabulary import BASE

Resource = dict[str, Any]
# Elements that change with every plan version without any clinical change.
BOOKKEEPING = ("id", "meta", "identifier", "authoredOn", "created", "supportingInformation",
               "supportingInfo", "careTeam", "text")
IDENTIFIER_SYSTEMS = {
    "MedicationRequest": f"{BASE}/identifier/medication-request",
    "CarePlan": f"{BASE}/identifier/care-plan",
    "CareTeam": f"{BASE}/identifier/care-team",
}


def _clinical(res: Resource) -> Resource:
    return {k: v for k, v in res.items() if k not in BOOKKEEPING}


def _date(res: Resource) -> str:
    return str(res.get("authoredOn") or res.get("created") or "")


def with_identifier(res: Resource) -> Resource:
    """The resource with the service's business identifier added when it has none of ours."""
    system = IDENTIFIER_SYSTEMS[res["resourceType"]]
    idents = list(res.get("identifier", []))
    if not any(i.get("system") == system for i in idents):
        idents.append({"system": system, "value": res["id"]})
    return {**res, "identifier": idents}


def _upsert(conn: Connection, planned: Planned, rid: str | None = None) -> Resource | None:
    """Insert, or store a new version when something clinical changed; None when unchanged."""
    rtype = planned.resource["resourceType"]
    existing = read_by_key(conn, rtype, planned.business_key)
    if existing is None:
        res = with_identifier({**planned.resource, "id": rid or new_id()})
        return insert(conn, res, plan_index(res), business_key=planned.business_key)
    if _date(existing) > _date(planned.resource):
        return None  # a late, older plan version: keep what is newer
    if _clinical(existing) == _clinical(planned.resource):
        return None
    res = {**planned.resource, "id": existing["id"], "identifier": existing["identifier"]}
    return update(conn, res, plan_index(res), int(existing["meta"]["versionId"]))


# The forms whose responses become plan resources (apply_plan reads the current ones).
PLAN_FORMS = frozenset({"medication-plan", "crisis-contact-plan"})


def apply_plan(conn: Connection, qr: Resource, questionnaire: Resource) -> list[Resource]:
    """The plan resources a completed plan response created or changed (to be synced)."""
    if qr.get("status") not in ("completed", "amended"):
        return []
    qr_ref = {"reference": f"QuestionnaireResponse/{qr['id']}"}
    if questionnaire.get("id") == "medication-plan":
        return _medications(conn, qr, questionnaire, qr_ref)
    if questionnaire.get("id") == "crisis-contact-plan":
        return _crisis(conn, qr, questionnaire, qr_ref)
    return []


def _medications(conn: Connection, qr: Resource, questionnaire: Resource,
                 qr_ref: Resource) -> list[Resource]:
    planned = medication_requests(qr, questionnaire, qr_ref)
    changed = [res for p in planned if (res := _upsert(conn, p)) is not None]
    listed = {p.business_key for p in planned}
    prefix = planned[0].business_key.rsplit("/", 1)[0] + "/"
    when = str(planned[0].resource.get("authoredOn", ""))
    for key, existing in read_by_key_prefix(conn, "MedicationRequest", prefix):
        if key in listed or existing.get("status") not in ("active", "on-hold"):
            continue
        if _date(existing) > when:
            continue  # stopped only by a plan at least as recent as the request
        res = stopped(existing, when)
        changed.append(update(conn, res, plan_index(res), int(existing["meta"]["versionId"])))
    return changed


def _crisis(conn: Connection, qr: Resource, questionnaire: Resource,
            qr_ref: Resource) -> list[Resource]:
    patient = str(patient_id(qr["subject"]["reference"]))  # plan_patient() checked it
    team = read_by_key(conn, "CareTeam", f"crisis-team/{patient}")
    team_id = team["id"] if team else new_id()
    plan, team_planned = crisis_plan(qr, questionnaire, qr_ref,
                                     {"reference": f"CareTeam/{team_id}"})
    changed = []
    if (written := _upsert(conn, team_planned, team_id)) is not None:
        changed.append(written)
    if (written := _upsert(conn, plan)) is not None:
        changed.append(written)
    return changed
