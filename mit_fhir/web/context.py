"""The current Flask application's Context, for views and request hooks only."""

from __future__ import annotations

from flask import current_app

from mit_fhir.usecases.context import Context


def ctx() -> Context:
    """The current application's Context."""
    context: Context = current_app.extensions["mit_fhir"]
    return context
