"""QuestionnaireResponse create, read and search."""

from __future__ import annotations

from flask import Blueprint, Response

from mit_fhir.api.http import base_url, fhir_response, read_resource
from mit_fhir.api.resources import add_read_and_search
from mit_fhir.context import ctx
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, authorize_type
from mit_fhir.submissions import submit

bp = Blueprint("responses", __name__, url_prefix="/fhir/QuestionnaireResponse")
add_read_and_search(bp, "QuestionnaireResponse")


@bp.post("")
def create() -> Response:
    audit.note("create", "QuestionnaireResponse")
    authorize_type("QuestionnaireResponse", "c")
    qr = read_resource("QuestionnaireResponse")
    authorize_resource(qr, "c")
    stored = submit(ctx(), qr, on_stored=audit.add)
    location = f"{base_url()}/QuestionnaireResponse/{stored['id']}/_history/1"
    return fhir_response(stored, 201, {"Location": location, "ETag": 'W/"1"'})
