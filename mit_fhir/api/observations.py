"""Observation read and search (the scores extracted from responses)."""

from __future__ import annotations

from flask import Blueprint

from mit_fhir.api.resources import add_read_and_search

bp = Blueprint("observations", __name__, url_prefix="/fhir/Observation")
add_read_and_search(bp, "Observation")
