"""SDC $extract: a response's Observations as a transaction Bundle, without storing anything."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mit_fhir.errors import InvalidRequest, NotFound
from mit_fhir.fhir import site_forms
from mit_fhir.fhir.budget import Limits, limited
from mit_fhir.security import audit
from mit_fhir.security.guard import (
    authorize,
    authorize_resource,
    authorize_type,
    subject_patient,
)
from mit_fhir.store import repository
from mit_fhir.usecases.submissions import extract_only
from mit_fhir.web.context import ctx
from mit_fhir.web.http import fhir_response, read_resource

bp = Blueprint("extract", __name__, url_prefix="/fhir/QuestionnaireResponse")


def _parameter(params: dict[str, Any], name: str) -> Any:
    entries = params.get("parameter", [])
    if not isinstance(entries, list) or not all(isinstance(p, dict) for p in entries):
        raise InvalidRequest("Parameters.parameter must be a list of objects")
    found = [p for p in entries if p.get("name") == name]
    if len(found) > 1:
        raise InvalidRequest(f"parameter '{name}' is given more than once")
    return found[0].get("resource") if found else None


@bp.post("/$extract")
def extract_posted() -> Response:
    """Body: the QuestionnaireResponse, or Parameters (questionnaire-response, questionnaire)."""
    authorize_type("Observation", "r")
    body = read_resource(("QuestionnaireResponse", "Parameters"))
    questionnaire = None
    if body["resourceType"] == "Parameters":
        qr = _parameter(body, "questionnaire-response")
        if not isinstance(qr, dict) or qr.get("resourceType") != "QuestionnaireResponse":
            raise InvalidRequest("parameter 'questionnaire-response' must hold a "
                                 "QuestionnaireResponse resource")
        supplied = _parameter(body, "questionnaire")
        questionnaire = site_forms.checked(supplied) if supplied is not None else None
    else:
        qr = body
    _authorize_extract(qr)
    c = ctx()
    if questionnaire is None:
        return fhir_response(extract_only(c.store, c.catalogue, c.scorer, qr))
    # The form's own expressions, its plan's compilation included, share one budget.
    limits = Limits(c.settings["EXPRESSION_MAX_ITEMS"], c.settings["EXPRESSION_TIME_LIMIT_MS"])
    with limited(limits):
        bundle = extract_only(c.store, c.catalogue, c.scorer, qr, questionnaire)
    return fhir_response(bundle)


def _authorize_extract(qr: dict[str, Any]) -> None:
    # Scoring reads the patient's earlier scores (the baseline), so it needs read access to
    # that patient's Observations, not only to the response.
    audit.note("operation", "Observation")
    patient = subject_patient(qr)
    authorize("Observation", "r", patient)
    if patient:
        audit.add_patient(patient)


@bp.post("/<rid>/$extract")
def extract_stored(rid: str) -> Response:
    c = ctx()
    with c.store.transaction() as conn:
        qr = repository.read(conn, "QuestionnaireResponse", rid)
    if qr is None:
        raise NotFound(f"QuestionnaireResponse/{rid[:64]} not found")
    authorize_resource(qr, "r")
    _authorize_extract(qr)
    audit.add([qr])
    return fhir_response(extract_only(c.store, c.catalogue, c.scorer, qr))
