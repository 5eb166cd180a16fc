"""Questionnaire read and search (the catalogue, with any licensed wording a site loaded)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from mit_fhir.errors import InvalidRequest, NotFound
from mit_fhir.security.guard import authorize
from mit_fhir.usecases.catalogue import with_wording
from mit_fhir.web.context import ctx
from mit_fhir.web.http import fhir_response, searchset

bp = Blueprint("questionnaires", __name__, url_prefix="/fhir/Questionnaire")

SEARCH = {"url", "version", "name", "status", "_id", "title"}


@bp.get("")
def search() -> Response:
    authorize("Questionnaire", "s")
    unknown = sorted(set(request.args) - SEARCH - {"_format", "_count"})
    if unknown:
        raise InvalidRequest(f"search parameter '{unknown[0]}' is not supported")
    c = ctx()
    matches = []
    for q in c.catalogue:
        if _matches(q, request.args):
            matches.append(q)
    with c.store.transaction() as conn:
        served = [with_wording(conn, q) for q in matches]
    return fhir_response(searchset(served))


def _matches(q: dict, args: dict) -> bool:
    for name, wanted in args.items():
        if name in ("_format", "_count"):
            continue
        if name == "url":
            url, _, version = wanted.partition("|")
            if q.get("url") != url or (version and q.get("version") != version):
                return False
        elif name in ("name", "title"):
            # FHIR string search: case-insensitive "starts with".
            if not str(q.get(name, "")).lower().startswith(wanted.lower()):
                return False
        elif name == "_id":
            if q.get("id") not in wanted.split(","):
                return False
        elif q.get(name) not in wanted.split(","):
            return False
    return True


@bp.get("/<qid>")
def read(qid: str) -> Response:
    authorize("Questionnaire", "r")
    c = ctx()
    q = c.catalogue.get(qid)
    if q is None:
        raise NotFound(f"Questionnaire/{qid[:64]} is not in the catalogue")
    with c.store.transaction() as conn:
        return fhir_response(with_wording(conn, q))
