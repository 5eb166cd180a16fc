"""QuestionnaireResponse create, read and search."""

from __future__ import annotations

from flask import Blueprint, Response

from mit_fhir.api.http import base_url, fhir_response, read_resource
from mit_fhir.api.resources import add_read_and_search
from mit_fhir.context import ctx
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, authorize_type
from mit_fhir.submissions import submit_once

bp = Blueprint("responses", __name__, url_prefix="/fhir/QuestionnaireResponse")
add_read_and_search(bp, "QuestionnaireResponse")


@bp.post("")
def create() -> Response:
    audit.note("create", "QuestionnaireResponse")
    authorize_type("QuestionnaireResponse", "c")
    qr = read_resource("QuestionnaireResponse")
    authorize_resource(qr, "c")
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
