"""The application factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from mit_fhir import ui
from mit_fhir.api import (
    audit_trail,
    cds_hooks,
    extract,
    health,
    metadata,
    observations,
    openapi,
    outcomes,
    plan_resources,
    questionnaires,
    responses,
    sync,
    tasks,
)
from mit_fhir.config import ConfigError, env_settings, load_settings
from mit_fhir.errors import FhirError, Issue, operation_outcome
from mit_fhir.psychometrics.parameters import ParameterError, load_parameters
from mit_fhir.security import audit, guard, headers, hosts
from mit_fhir.store.engine import ensure_reachable
from mit_fhir.store.migrate import upgrade
from mit_fhir.store.repository import Store
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.scorer import Scorer
from mit_fhir.web import logs, metrics
from mit_fhir.web.http import fhir_response

log = logging.getLogger("mit_fhir")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}


def default_database_url() -> str:
    """SQLite in Flask's instance folder, where `create_app` has always put it."""
    instance = Path(Flask(__name__, instance_relative_config=True).instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{instance / 'mit-fhir.sqlite3'}"


def create_context(settings: dict[str, Any]) -> Context:
    """Store (reached, then migrated), catalogue and scorer from validated settings."""
    if not settings["DATABASE_URL"]:
        settings["DATABASE_URL"] = default_database_url()
    store = Store(settings["DATABASE_URL"])
    ensure_reachable(store.engine)
    upgrade(store.engine)
    try:
        catalogue = Catalogue.from_directory(Path(settings["QUESTIONNAIRE_DIR"]))
    except ValueError as exc:  # a form the service cannot serve: refused at start, named
        store.dispose()
        raise ConfigError(f"invalid configuration: MIT_FHIR_QUESTIONNAIRE_DIR: {exc}") from None
    try:
        parameters = load_parameters(
            settings["PSYCHOMETRICS_FILE"], Path(settings["PROFILE_DIR"]) / "psychometrics.json"
        )
    except ParameterError as exc:
        store.dispose()
        raise ConfigError(f"invalid configuration: MIT_FHIR_PSYCHOMETRICS_FILE: {exc}") from None
    scorer = Scorer(parameters, settings["RCI_METHOD"])
    return Context(store=store, catalogue=catalogue, scorer=scorer, settings=settings)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build a configured application: settings, store (migrated), catalogue, routes."""
    app = Flask(__name__, instance_relative_config=True)
    raw = env_settings()
    raw.update(test_config or {})
    settings = load_settings(raw)
    logging.getLogger("mit_fhir").setLevel(settings["LOG_LEVEL"])
    app.extensions["mit_fhir"] = create_context(settings)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]

    # extract before responses: its /$extract route must win over /<id>.
    for bp in (metadata.bp, questionnaires.bp, extract.bp, responses.bp, observations.bp,
               *plan_resources.blueprints, tasks.bp, *audit_trail.blueprints, sync.bp, health.bp,
               outcomes.bp, cds_hooks.discovery_bp, cds_hooks.bp, openapi.bp):
        app.register_blueprint(bp)
    ui.init_app(app)  # the SMART pages under /app (their own session; exempt from bearer auth)
    # Hook order matters: after-request hooks run in reverse, so the access log sees the final
    # status, and the security headers cover an audit failure's 503 too.
    logs.init_app(app)
    metrics.init_app(app)
    headers.init_app(app)
    hosts.init_app(app)  # before authentication: a foreign Host learns nothing more
    guard.init_app(app)
    guard.exempt(app, [cds_hooks.discovery_bp.name])  # public: lists no patient data
    audit.init_app(app)
    _register_errors(app)
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(FhirError)
    def fhir_error(exc: FhirError) -> Response:
        return fhir_response(exc.outcome(), exc.status, dict(exc.headers))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Keep Werkzeug's status and headers (e.g. Allow on 405); replace the body.
        status = exc.code or 500
        resp = exc.get_response()
        body = operation_outcome(
            [Issue(exc.description or exc.name, code=_HTTP_CODES.get(status, "invalid"))]
        )
        out = fhir_response(body, status)
        for key, value in resp.headers.items():
            if key.lower() not in ("content-type", "content-length"):
                out.headers[key] = value
        return out

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # A 500 is a bug: log the type and traceback (never the request body), answer generically.
        log.exception("unhandled %s", type(exc).__name__)
        body = operation_outcome([Issue("internal error", code="exception", severity="fatal")])
        return fhir_response(body, 500)
