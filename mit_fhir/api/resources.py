"""Read and search routes shared by every stored resource type."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from mit_fhir.errors import NotFound
from mit_fhir.fhir.paging import Position, decode_cursor, encode_cursor, page_size, search_digest
from mit_fhir.fhir.search import criteria, sort_key
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, restrict_search, visible
from mit_fhir.store import repository
from mit_fhir.web.context import ctx
from mit_fhir.web.http import base_url, fhir_response, searchset


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
        sort = sort_key(request.args)
        settings = current_app.config
        count = page_size(request.args.getlist("_count"), settings["SEARCH_DEFAULT_COUNT"],
                          settings["SEARCH_MAX_COUNT"])
        # The digest is of the criteria the token's context produced, so a cursor from another
        # patient's (or another) search is refused here, before the store is asked.
        digest = search_digest(resource_type, crit, sort)
        after = decode_cursor(request.args.getlist("_cursor"), digest)
        with ctx().store.transaction() as conn:
            found, last = repository.search_page(
                conn, resource_type, crit, sort, count,
                None if after is None else (after.sort_value, after.id))
        found = visible(resource_type, found)
        audit.add_search(args, found)
        next_url = None
        if last is not None:
            next_url = _next_url(resource_type, count, encode_cursor(digest, Position(*last)))
        return fhir_response(searchset(found, next_url, complete=after is None))

    bp.add_url_rule("/<rid>", "read", read, methods=["GET"])
    bp.add_url_rule("", "search", search, methods=["GET"])


def _next_url(resource_type: str, count: int, cursor: str) -> str:
    """The request's own parameters (not the token's patient: it is added again), the page
    size it got, and the cursor."""
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("_count", "_cursor")]
    query = urlencode([*kept, ("_count", str(count)), ("_cursor", cursor)])
    return f"{base_url()}/{resource_type}?{query}"
