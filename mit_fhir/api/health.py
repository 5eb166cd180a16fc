"""Health endpoints: /healthz (process alive) and /readyz (database reachable and migrated)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from mit_fhir.context import ctx
from mit_fhir.store.migrate import is_current

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        current = is_current(ctx().store.engine)
    except Exception:  # any database failure means "not ready"; the cause goes to the log
        return jsonify(status="unavailable", database="unreachable"), 503
    if not current:
        return jsonify(status="unavailable", database="migrations pending"), 503
    return jsonify(status="ok", database="ok"), 200
