"""GET /: the landing page of development mode (`make run`), linking what there is to try."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from mit_fhir.errors import NotFound
from mit_fhir.ui.web import demo_patient, development_mode, page
from mit_fhir.web.context import ctx

bp = Blueprint("landing", __name__)


@bp.get("/")
def landing() -> Response:
    """Only in development mode on loopback (the guard refuses others first in jwt mode)."""
    if not development_mode():
        raise NotFound("no route /: the service's API is under /fhir, its pages under /app")
    patient = demo_patient()
    forms = [{"id": q["id"], "title": q.get("title") or q["id"],
              "url": url_for("ui.form", qid=q["id"])} for q in ctx().catalogue]
    return page("landing.html", title="mit-fhir (development mode)", patient=patient,
                forms=forms, links={
                    "forms": url_for("ui.forms"),
                    "outcomes": url_for("ui.outcomes", patient=patient),
                    "my": url_for("ui.my"),
                    "tasks": url_for("ui.assignments_page"),
                    "catalogue": url_for("questionnaires.search"),
                    "openapi": url_for("openapi.openapi")})

