"""Development mode (`make run`): the outcomes pages show stored data to loopback callers."""

from __future__ import annotations

from flask import Flask

from mit_fhir.demo import load_demo


def test_outcomes_of_the_demo_patient_without_an_ehr(app: Flask) -> None:
    patient = load_demo(app.extensions["mit_fhir"]).patient
    api = app.test_client()
    page = api.get(f"/app/patients/{patient}/outcomes")
    assert page.status_code == 200
    assert "frame-ancestors" in page.headers["Content-Security-Policy"]
    doc = api.get(f"/app/api/patients/{patient}/outcomes").get_json()
    assert [i["code"] for i in doc["instruments"]] == [
        "bpd-criteria-count", "ders-total", "scl-90-r-gsi"]
    assert sorted((m["display"], m["source"]) for m in doc["medications"]) == [
        ("fluoxetine", "mit-plan"), ("topiramate", "mit-plan")]
    assert doc["ehrError"].startswith("development mode")


def test_not_beyond_loopback_and_never_a_write(app: Flask) -> None:
    api = app.test_client()
    far = api.get("/app/api/patients/p1/outcomes", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert far.status_code == 401
    write = api.post("/app/api/forms/phq-9/responses", json={"resourceType": "x"})
    assert write.status_code in (400, 403)
