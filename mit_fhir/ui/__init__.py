"""The SMART app pages (/app): launched from the EHR, they fill forms and show outcomes."""

from __future__ import annotations

from flask import Flask

from mit_fhir.security import guard

# Their routes join bp on import.
from mit_fhir.ui import (  # noqa: F401
    assign,
    forms,
    landing,
    launch,
    outcomes,
    patient,
    patient_forms,
)
from mit_fhir.ui.blueprint import bp


def init_app(app: Flask) -> None:
    """Register the pages; they authenticate with their own server-side session."""
    app.register_blueprint(bp)
    # `/` is not exempt: in jwt mode the guard answers it before the page could.
    app.register_blueprint(landing.bp)
    guard.exempt(app, [bp.name])
