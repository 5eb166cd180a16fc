"""QuestionnaireResponse create, read and search.

A response the patient's own app (fhirUser a Patient) stores is the patient's: its author and
source are that Patient (set when absent; any other author or source is a 422).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mit_fhir.api.resources import add_read_and_search
from mit_fhir.api.tasks import patient_user
from mit_fhir.errors import Issue, Unprocessable
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, authorize_type
from mit_fhir.usecases.submissions import submit_once
from mit_fhir.web.context import ctx
from mit_fhir.web.http import base_url, fhir_response, read_resource

bp = Blueprint("responses", __name__, url_prefix="/fhir/QuestionnaireResponse")
add_read_and_search(bp, "QuestionnaireResponse")


@bp.post("")
def create() -> Response:
    audit.note("create", "QuestionnaireResponse")
    authorize_type("QuestionnaireResponse", "c")
    qr = read_resource("QuestionnaireResponse")
    authorize_resource(qr, "c")
    qr = _authored_by_the_patient(qr)
    stored, created = submit_once(
        ctx(), qr, on_stored=lambda conn, written: audit.store(conn, written, 201))
    if created:
        audit.stored()
    else:
        audit.add([stored])  # a retry: audited after the view, naming what it returned
    version = stored["meta"]["versionId"]
    location = f"{base_url()}/QuestionnaireResponse/{stored['id']}/_history/{version}"
    # 200 with the stored response when this identifier was already submitted (a retry).
    return fhir_response(stored, 201 if created else 200,
                         {"Location": location, "ETag": f'W/"{version}"'})


def _authored_by_the_patient(qr: dict[str, Any]) -> dict[str, Any]:
    """The response with the patient's own app's Patient as author and source (refused when
    it names anyone else: a patient cannot file a clinician's rating)."""
    patient = patient_user()
    if patient is None:
        return qr
    issues = [Issue(f"a response from the patient's own app has the patient as its {name}",
                    code="business-rule", expression=(f"QuestionnaireResponse.{name}",))
              for name in ("author", "source")
              if name in qr and not (isinstance(qr[name], dict)
                                   and qr[name].get("reference") == patient)]
    if issues:
        raise Unprocessable("the QuestionnaireResponse cannot be accepted", issues)
    return {**qr, "author": {"reference": patient}, "source": {"reference": patient}}
