"""GET /sync/status: the outbox at a glance, for operators (no patient data)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify
from marshmallow import Schema, fields

from mit_fhir.security.guard import require_system
from mit_fhir.sync import outbox
from mit_fhir.web.context import ctx

bp = Blueprint("sync", __name__, url_prefix="/sync")


class ProblemSchema(Schema):
    """A parked row: what, how often tried, the EHR's status and issue codes."""

    id = fields.Integer()
    resource = fields.String()
    state = fields.String()
    attempts = fields.Integer()
    http_status = fields.Integer(allow_none=True)
    error = fields.Dict(allow_none=True)
    since_seconds = fields.Float()


class StatusSchema(Schema):
    """The status document."""

    enabled = fields.Boolean()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    oldest_pending_age_seconds = fields.Float(allow_none=True)
    problems = fields.List(fields.Nested(ProblemSchema))


@bp.get("/status")
def status() -> Response:
    # Operators' view: resource ids and EHR errors of every patient's rows, so no user/ or
    # patient/ token (nor one with only openid) may read it.
    require_system("/sync/status")
    c = ctx()
    with c.store.transaction() as conn:
        doc = outbox.status(conn, time.time())
    doc["enabled"] = c.sync_enabled
    return jsonify(StatusSchema().dump(doc))
