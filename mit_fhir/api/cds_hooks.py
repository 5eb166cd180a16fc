"""CDS Hooks 2.0: GET /cds-services (discovery) and POST /cds-services/mit-outcomes (patient-view).

Discovery lists no patient data and is public, as the specification lets it be (like
/fhir/metadata). The service call needs a bearer JWT from the configured issuer granting
Observation search for context.patientId (and Task search for its overdue cards); errors are
OperationOutcomes (400 for a request that is not a valid patient-view call, 401/403 from the
guard), as everywhere in this service; CDS Hooks leaves error bodies unspecified, so CDS
clients only look at the status.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request
from marshmallow import ValidationError

from mit_fhir.api.outcomes import audit_timeline, json_response
from mit_fhir.errors import InvalidRequest, Issue, UnsupportedMediaType
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize, principal
from mit_fhir.security.scopes import Denied
from mit_fhir.usecases import due
from mit_fhir.usecases.cds import SERVICE_ID, HookRequestSchema, discovery, outcome_cards
from mit_fhir.usecases.cds import validation_messages as messages
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.timeline import timeline_for
from mit_fhir.web.context import ctx

discovery_bp = Blueprint("cds_discovery", __name__)
bp = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")
# The card names the outcomes view, so its SMART link asks the launch for it; the EHR adds
# `iss` and `launch` to this URL (CDS Hooks Link.type "smart").
LAUNCH_PATH = "/app/launch?view=outcomes"


def launch_url() -> str:
    """The SMART launch URL of the outcomes view: {service root}/app/launch?view=outcomes,
    the root being MIT_FHIR_BASE_URL without its /fhir, else the request's host."""
    configured = current_app.config.get("BASE_URL")
    root = (configured.rstrip("/").removesuffix("/fhir") if configured
            else request.host_url.rstrip("/"))
    return root + LAUNCH_PATH


@discovery_bp.get("/cds-services")
def services() -> Response:
    return json_response(discovery())


@bp.post(f"/{SERVICE_ID}")
def patient_view() -> Response:
    audit.note("search-type", "Observation")
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not '{request.mimetype or 'none'}'")
    try:
        body = orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object (a CDS Hooks request)")
    try:
        hook = HookRequestSchema().load(body)
    except ValidationError as exc:
        raise InvalidRequest("not a valid patient-view request",
                             [Issue(m, expression=(m.split(":")[0],)) for m in messages(exc)]
                             ) from None
    patient = hook["context"]["patientId"]
    authorize("Observation", "s", patient)
    context = ctx()
    document = timeline_for(context, patient)
    audit_timeline(document, medications=False)
    return json_response(outcome_cards(document, hook["hookInstance"], launch_url(),
                                       _due(context, patient)))


def _due(context: Context, patient: str) -> list[dict[str, Any]]:
    """What is due, for a caller that may also search the patient's Tasks; the cards of a
    token granting Observation search alone say nothing of Tasks."""
    try:
        principal().check("Task", "s", patient)
    except Denied:
        return []
    with context.store.transaction() as conn:
        rows = due.summary(conn, context.catalogue, patient)
    audit.add({"resourceType": "Task", "id": late["task"],
               "for": {"reference": f"Patient/{patient}"}}
              for row in rows for late in row["overdue"])
    return rows
