"""Observation read and search (the scores extracted from responses)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from mit_fhir.api.http import fhir_response, searchset
from mit_fhir.context import ctx
from mit_fhir.errors import NotFound
from mit_fhir.fhir.search import criteria, sort_key
from mit_fhir.store import repository

bp = Blueprint("observations", __name__, url_prefix="/fhir/Observation")


@bp.get("/<rid>")
def read(rid: str) -> Response:
    with ctx().store.transaction() as conn:
        found = repository.read(conn, "Observation", rid)
    if found is None:
        raise NotFound(f"Observation/{rid[:64]} not found")
    return fhir_response(found, headers={"ETag": f'W/"{found["meta"]["versionId"]}"'})


@bp.get("")
def search() -> Response:
    crit = criteria("Observation", request.args.items(multi=True))
    with ctx().store.transaction() as conn:
        found = repository.search(conn, "Observation", crit, sort_key(request.args))
    return fhir_response(searchset(found))
