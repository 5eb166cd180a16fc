"""GET /outcomes/<patient>: the timeline as JSON, authorised per patient, audited."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.api.outcomes import EHR_UNAVAILABLE
from mit_fhir.app import create_app
from mit_fhir.usecases.demo import load_demo
from mit_fhir.usecases.timeline import timeline_for
from tests.security.conftest import (  # noqa: F401 - fixtures
    Tokens,
    bearer,
    issuer,
    secured_demo,
    secured_settings,
    tokens,
)
from tests.security.issuer import Issuer

DEMO = "demo-mit-1"


def outcome(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    assert resp.get_json()["issue"][0]["code"] == code


def test_the_route_serves_the_timeline_document(app: Flask, client: FlaskClient) -> None:
    load_demo(app.extensions["mit_fhir"])
    resp = client.get(f"/outcomes/{DEMO}")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == timeline_for(app.extensions["mit_fhir"], DEMO)
    assert [i["label"] for i in resp.get_json()["instruments"]] == [
        "BPD Criteria", "DERS", "SCL-90-R GSI"]


def test_a_patient_without_data_gets_an_empty_document(client: FlaskClient) -> None:
    body = client.get("/outcomes/nobody").get_json()
    assert body["instruments"] == [] and body["medications"] == []


@pytest.mark.parametrize("bad", ["a" * 65, "semi;colon", "sp ace"])
def test_a_bad_patient_id_is_400(client: FlaskClient, bad: str) -> None:
    outcome(client.get(f"/outcomes/{bad}"), 400, "invalid")


def test_an_unreachable_ehr_is_a_warning_not_an_error(database_url: str) -> None:
    app = create_app({"DATABASE_URL": database_url, "EHR_BASE_URL": "http://127.0.0.1:9/fhir",
                      "EHR_TIMEOUT": 2})
    try:
        load_demo(app.extensions["mit_fhir"])
        body = app.test_client().get(f"/outcomes/{DEMO}").get_json()
    finally:
        app.extensions["mit_fhir"].store.dispose()
    assert body["ehrMedications"] is False and body["warnings"] == [EHR_UNAVAILABLE]
    assert {r["drug"] for r in body["medications"]} == {"fluoxetine", "topiramate"}


def test_it_needs_a_token_that_covers_the_patients_scores_and_medication(
        secured_demo: Flask, tokens: Tokens, issuer: Issuer) -> None:  # noqa: F811
    api = secured_demo.test_client()
    outcome(api.get(f"/outcomes/{DEMO}"), 401, "login")
    assert api.get(f"/outcomes/{DEMO}", headers=tokens("clinic-app")).status_code == 200
    # Observation read only: the medication timeline is not covered.
    outcome(api.get(f"/outcomes/{DEMO}", headers=tokens("reader-v1")), 403, "forbidden")
    # A patient-context token for someone else.
    outcome(api.get(f"/outcomes/{DEMO}", headers=tokens("patient-app")), 403, "forbidden")
    own = issuer.mint({"sub": "app", "patient": DEMO,
                       "scope": "patient/Observation.rs patient/MedicationRequest.rs"})
    assert api.get(f"/outcomes/{DEMO}", headers=bearer(own)).status_code == 200


def test_each_access_is_audited(secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    api = secured_demo.test_client()
    headers = tokens("clinic-app")
    body = api.get(f"/outcomes/{DEMO}", headers=headers).get_json()
    events = api.get("/fhir/AuditEvent", headers=headers).get_json()["entry"]
    (event,) = [e["resource"] for e in events
                if any(str(en.get("what", {}).get("reference", "")).endswith(
                    body["instruments"][1]["points"][0]["observation"])
                    for en in e["resource"].get("entity", []))]
    assert event["outcome"] == "0"
    assert any(en.get("what", {}).get("reference") == f"Patient/{DEMO}"
               for en in event["entity"])
