"""Read and search routes shared by every stored resource type."""

from __future__ import annotations

from flask import Blueprint, Response, request

from mit_fhir.api.http import fhir_response, searchset
from mit_fhir.context import ctx
from mit_fhir.errors import NotFound
from mit_fhir.fhir.search import criteria, sort_key
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, restrict_search, visible
from mit_fhir.store import repository


def add_read_and_search(bp: Blueprint, resource_type: str) -> None:
    """GET /<id> (with its ETag) and GET ?<search> for one resource type on a blueprint."""

    def read(rid: str) -> Response:
        audit.note("read", resource_type)
        with ctx().store.transaction() as conn:
            found = repository.read(conn, resource_type, rid)
        if found is None:
            raise NotFound(f"{resource_type}/{rid[:64]} not found")
        authorize_resource(found, "r")
        audit.add([found])
        return fhir_response(found, headers={"ETag": f'W/"{found["meta"]["versionId"]}"'})

    def search() -> Response:
        audit.note("search-type", resource_type)
        args = restrict_search(resource_type, list(request.args.items(multi=True)))
        crit = criteria(resource_type, args)
        with ctx().store.transaction() as conn:
            found = repository.search(conn, resource_type, crit, sort_key(request.args))
        found = visible(resource_type, found)
        audit.add(found)
        return fhir_response(searchset(found))

    bp.add_url_rule("/<rid>", "read", read, methods=["GET"])
    bp.add_url_rule("", "search", search, methods=["GET"])
