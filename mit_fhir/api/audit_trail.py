"""AuditEvent and Provenance read and search: the service's own record of access and extraction."""

from __future__ import annotations

from flask import Blueprint

from mit_fhir.api.resources import add_read_and_search

blueprints = []
for _type in ("AuditEvent", "Provenance"):
    _bp = Blueprint(_type.lower(), __name__, url_prefix=f"/fhir/{_type}")
    add_read_and_search(_bp, _type)
    blueprints.append(_bp)
