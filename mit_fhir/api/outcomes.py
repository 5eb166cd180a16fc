"""GET /outcomes/<patient>: a patient's outcomes timeline (mit_fhir/usecases/timeline.py) as JSON.

For API clients with a bearer token granting Observation and MedicationRequest search for the
patient. With an EHR configured (MIT_FHIR_EHR_BASE_URL) its MedicationRequests are read back
with the service's own EHR credentials and merged in; when the EHR does not answer, the
document says so in `warnings` and `ehrMedications` is false.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Blueprint, Response, current_app

from mit_fhir.ehr.errors import EhrError
from mit_fhir.ehr.factory import build_client
from mit_fhir.ehr.readback import medication_requests
from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir.references import is_fhir_id
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.timeline import timeline_for
from mit_fhir.vocabulary import FHIR_ID
from mit_fhir.web.context import ctx

log = logging.getLogger("mit_fhir.usecases.scorer")
bp = Blueprint("outcomes", __name__, url_prefix="/outcomes")
_EHR_CLIENT = "mit_fhir.outcomes_ehr_client"
EHR_UNAVAILABLE = "the EHR's prescriptions could not be read; only the MIT plan's are shown"

Resource = dict[str, Any]


def json_response(document: Resource, status: int = 200) -> Response:
    resp = Response(orjson.dumps(document), status=status)
    resp.content_type = "application/json"
    return resp


def checked_patient(patient_id: str) -> str:
    """The patient id if it is a FHIR id, else 400."""
    if not is_fhir_id(patient_id):
        raise InvalidRequest(f"the patient id must be a FHIR id ({FHIR_ID.pattern})")
    return patient_id


def ehr_medications(context: Context, patient_id: str) -> tuple[list[Resource] | None, list[str]]:
    """The EHR's MedicationRequests of the patient (None without an EHR, or when it fails) and
    the warnings to show with the timeline."""
    if not context.sync_enabled:
        return None, []

    try:
        client = current_app.extensions.get(_EHR_CLIENT)
        if client is None:  # one client per app: it caches its access token
            client = current_app.extensions[_EHR_CLIENT] = build_client(context.settings)
        return medication_requests(client, patient_id), []
    except (EhrError, OSError) as exc:
        log.warning("outcomes: EHR medication read-back failed: %s", type(exc).__name__)
        return None, [EHR_UNAVAILABLE]


def audit_timeline(document: Resource, medications: bool = True) -> None:
    """Record the Observations (and MedicationRequests) the answer shows, and the patient."""
    subject = {"reference": f"Patient/{document['patient']}"}
    shown: dict[str, Resource] = {}
    for instrument in document["instruments"]:
        points = instrument["points"] + (instrument["band"] or {}).get("points", [])
        for point in points:
            rtype, _, rid = point["observation"].partition("/")
            shown[point["observation"]] = {"resourceType": rtype, "id": rid, "subject": subject}
    for row in document["medications"] if medications else ():
        for period in row["periods"]:
            if period["request"] and row["source"] == "mit-plan":
                rtype, _, rid = period["request"].partition("/")
                shown[period["request"]] = {"resourceType": rtype, "id": rid, "subject": subject}
    audit.add(shown.values())
    audit.add_patient(document["patient"])


@bp.get("/<patient_id>")
def outcomes(patient_id: str) -> Response:
    audit.note("search-type", "Observation")
    patient = checked_patient(patient_id)
    authorize("Observation", "s", patient)
    authorize("MedicationRequest", "s", patient)
    context = ctx()
    medications, warnings = ehr_medications(context, patient)
    document = timeline_for(context, patient, medications, warnings)
    audit_timeline(document)
    return json_response(document)
