"""The /app blueprint: its session loading, static caching and error pages."""

from __future__ import annotations

from pathlib import Path

import orjson
from flask import Blueprint, Response, current_app, request, send_from_directory

from mit_fhir.errors import FhirError
from mit_fhir.ui import smart
from mit_fhir.ui.web import PageError, load_session, page, set_demo_cookie

HERE = Path(__file__).resolve().parent
bp = Blueprint("ui", __name__, url_prefix="/app", template_folder=str(HERE / "templates"),
               static_folder=str(HERE / "static"), static_url_path="/static")
bp.before_request(load_session)
bp.after_request(set_demo_cookie)


@bp.get("/vendor/<path:filename>")
def vendor(filename: str) -> Response:
    """The browser libraries (LHC-Forms, Chart.js): MIT_FHIR_UI_ASSETS_DIR, else the folder
    `make ui-assets` fills; the container image fetches them in its own build stage."""
    folder = current_app.config.get("UI_ASSETS_DIR") or str(HERE / "static" / "vendor")
    return send_from_directory(folder, filename)


@bp.after_request
def revalidate_static(resp: Response) -> Response:
    """Static files may be cached but are revalidated (ETag), unlike the pages' data."""
    if request.endpoint in ("ui.static", "ui.vendor"):
        resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.errorhandler(PageError)
def page_error(exc: PageError) -> Response:
    if request.path.startswith("/app/api/"):
        return Response(orjson.dumps({"error": str(exc)}), exc.status,
                        content_type="application/json")
    return page("message.html", exc.status, title="mit-fhir", message=str(exc),
                link=getattr(exc, "link", None))


@bp.errorhandler(smart.SmartError)
def smart_error(exc: smart.SmartError) -> Response:
    return page("message.html", 502, title="Launch failed", message=str(exc))


@bp.errorhandler(FhirError)
def fhir_error(exc: FhirError) -> Response:
    """The service's own 4xx (validation, authorisation) as JSON the page can show."""
    outcome = exc.outcome()
    issues = [i.get("diagnostics", "") for i in outcome.get("issue", [])]
    if request.path.startswith("/app/api/"):
        return Response(orjson.dumps({"error": issues[0] if issues else "refused",
                                      "issues": issues}), exc.status,
                        content_type="application/json")
    return page("message.html", exc.status, title="Refused", message="; ".join(issues))
