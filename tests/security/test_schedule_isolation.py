"""A patient token cannot create, end or read another patient's schedule (CarePlan)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.api.test_schedule_api import _schedule
from tests.conftest import FHIR_JSON
from tests.security.conftest import OTHER, PATIENT, Tokens


def test_a_patient_token_cannot_touch_another_patients_schedule(
        api: FlaskClient, tokens: Tokens) -> None:
    clinic, patient = tokens("clinic-app"), tokens("patient-app")
    theirs = _schedule(subject={"reference": f"Patient/{OTHER}"})
    assert api.post("/fhir/CarePlan", json=theirs, headers=patient,
                    content_type=FHIR_JSON).status_code == 403
    made = api.post("/fhir/CarePlan", json=theirs, headers=clinic, content_type=FHIR_JSON)
    assert made.status_code == 201, made.get_json()
    plan = made.get_json()
    ended = api.put(f"/fhir/CarePlan/{plan['id']}", json={**plan, "status": "revoked"},
                    headers={**patient, "If-Match": 'W/"1"'}, content_type=FHIR_JSON)
    assert ended.status_code == 403
    assert ended.get_json()["resourceType"] == "OperationOutcome"
    assert api.get(f"/fhir/CarePlan/{plan['id']}", headers=patient).status_code == 403
    found = api.get("/fhir/CarePlan", headers=patient).get_json()
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{PATIENT}"
               for e in found.get("entry", []))
    still = api.get(f"/fhir/CarePlan/{plan['id']}", headers=clinic).get_json()
    assert still["status"] == "active" and still["meta"]["versionId"] == "1"
