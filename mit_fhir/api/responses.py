"""QuestionnaireResponse create, read and search."""

from __future__ import annotations

from flask import Blueprint, Response, request

from mit_fhir.api.http import base_url, fhir_response, read_resource, searchset
from mit_fhir.context import ctx
from mit_fhir.errors import NotFound
from mit_fhir.fhir.search import criteria, sort_key
from mit_fhir.store import repository
from mit_fhir.submissions import submit

bp = Blueprint("responses", __name__, url_prefix="/fhir/QuestionnaireResponse")


@bp.post("")
def create() -> Response:
    c = ctx()
    stored = submit(c.store, c.catalogue, c.scorer, read_resource("QuestionnaireResponse"))
    location = f"{base_url()}/QuestionnaireResponse/{stored['id']}/_history/1"
    return fhir_response(stored, 201, {"Location": location, "ETag": 'W/"1"'})


@bp.get("/<rid>")
def read(rid: str) -> Response:
    with ctx().store.transaction() as conn:
        found = repository.read(conn, "QuestionnaireResponse", rid)
    if found is None:
        raise NotFound(f"QuestionnaireResponse/{rid[:64]} not found")
    return fhir_response(found, headers={"ETag": f'W/"{found["meta"]["versionId"]}"'})


@bp.get("")
def search() -> Response:
    crit = criteria("QuestionnaireResponse", request.args.items(multi=True))
    with ctx().store.transaction() as conn:
        found = repository.search(conn, "QuestionnaireResponse", crit, sort_key(request.args))
    return fhir_response(searchset(found))
