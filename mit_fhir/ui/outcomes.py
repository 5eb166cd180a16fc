"""The psychiatrist's outcomes routes: the page and its JSON document."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Response, current_app, jsonify, redirect, url_for
from werkzeug.wrappers import Response as BaseResponse

from mit_fhir.ehr.auth import BearerAuth
from mit_fhir.ehr.client import EhrClient
from mit_fhir.ehr.errors import EhrRejected, EhrRetryable
from mit_fhir.ehr.readback import medication_requests
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize, principal
from mit_fhir.security.scopes import Denied
from mit_fhir.ui import data as outcomes_data
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.forms import patient_of
from mit_fhir.ui.web import page, require_session
from mit_fhir.web.context import ctx


def _may_see_tasks(patient: str) -> bool:
    """Whether the session's scopes grant the patient's Tasks (what is due is read from them)."""
    try:
        principal().check("Task", "s", patient)
    except Denied:
        return False
    return True


@bp.get("/outcomes")
def my_outcomes() -> BaseResponse:
    data = require_session()
    return redirect(url_for("ui.outcomes", patient=patient_of(data)), 302)


@bp.get("/patients/<patient>/outcomes")
def outcomes(patient: str) -> Response:
    require_session()
    authorize("Observation", "s", patient)
    return page("outcomes.html", title="Outcomes and medication", patient=patient)


@bp.get("/api/patients/<patient>/outcomes")
def outcomes_json(patient: str) -> Response:
    data = require_session()
    audit.note("search-type", "Observation")
    authorize("Observation", "s", patient)
    audit.add_patient(patient)
    ehr, ehr_error = [], None
    if data.get("development"):
        ehr_error = "development mode: the EHR's prescriptions are not read"
    else:
        try:
            client = EhrClient(data["endpoints"]["iss"], BearerAuth(data["access_token"]),
                               current_app.config["SMART_TIMEOUT"])
            ehr = medication_requests(client, patient)
        except (EhrRejected, EhrRetryable) as exc:
            ehr_error = f"the EHR's prescriptions could not be read ({type(exc).__name__})"
    document = outcomes_data.outcomes_document(ctx(), patient, ehr, _may_see_tasks(patient))
    audit.add({"resourceType": "Task", "id": late["task"],
               "for": {"reference": f"Patient/{patient}"}}
              for row in document.get("due", []) for late in row["overdue"])
    document["ehrError"] = ehr_error
    document["generated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document["ehr"] = urlsplit(data["endpoints"]["iss"]).netloc if data.get("endpoints") else ""
    return jsonify(document)
