"""Development mode (`make run`): the outcomes pages show stored data to loopback callers."""

from __future__ import annotations

import re

from flask import Flask

from mit_fhir.store import repository
from mit_fhir.usecases.demo import load_demo


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


def test_the_landing_page_links_what_a_newcomer_can_try(app: Flask) -> None:
    api = app.test_client()
    landing = api.get("/")
    assert landing.status_code == 200 and landing.mimetype == "text/html"
    text = landing.get_data(as_text=True)
    patient = load_demo(app.extensions["mit_fhir"]).patient
    for link in ("/app/", f"/app/patients/{patient}/outcomes", "/fhir/Questionnaire",
                 "/openapi.json", "/app/forms/ders", "/app/forms/phq-9"):
        assert f'href="{link}"' in text, link
        if link.startswith("/app/"):
            assert api.get(link, base_url="https://localhost").status_code == 200, link
    assert api.get("/openapi.json").status_code == 200
    far = api.get("/", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert far.status_code == 403 and far.mimetype != "text/html"
    app.config["AUTH"] = "jwt"
    try:
        production = api.get("/")
    finally:
        app.config["AUTH"] = "none"
    assert production.status_code == 401 and production.mimetype != "text/html"


def test_a_demo_launch_fills_and_submits_for_the_demo_patient(app: Flask) -> None:
    patient = load_demo(app.extensions["mit_fhir"]).patient
    api = app.test_client()
    page = api.get("/app/forms/gad-7", base_url="https://localhost")
    assert page.status_code == 200
    assert "mit_fhir_app=" in page.headers["Set-Cookie"]
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert csrf and len(csrf.group(1)) > 20
    answers = [{"linkId": f"gad-7-{n}", "answer": [{"valueCoding": {
        "system": "http://loinc.org", "code": "LA6568-5"}}]} for n in range(1, 8)]
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": answers}
    sent = api.post("/app/api/forms/gad-7/responses", json=qr, base_url="https://localhost",
                    headers={"X-CSRF-Token": csrf.group(1)})
    assert sent.status_code == 200, sent.get_data(as_text=True)
    scores = {s["code"]: s["value"] for s in sent.get_json()["scores"]}
    assert scores["70274-6"] == 0  # the GAD-7 total, scored by the service
    with app.extensions["mit_fhir"].store.transaction() as conn:
        stored = repository.read(conn, "QuestionnaireResponse", sent.get_json()["response"])
    assert stored["subject"] == {"reference": f"Patient/{patient}"}
    # Without the page's token (another site posting through the browser) nothing is stored.
    forged = api.post("/app/api/forms/gad-7/responses", json=qr, base_url="https://localhost")
    assert forged.status_code == 403


def test_a_demo_session_is_refused_once_the_service_runs_with_jwt(app: Flask) -> None:
    api = app.test_client()
    assert "mit_fhir_app=" in api.get("/app/", base_url="https://localhost").headers["Set-Cookie"]
    # The browser sends the demo session back: it is used, not replaced by another launch.
    assert "Set-Cookie" not in api.get("/app/forms/gad-7", base_url="https://localhost").headers
    app.config["AUTH"] = "jwt"
    try:
        again = api.get("/app/forms/gad-7", base_url="https://localhost")
    finally:
        app.config["AUTH"] = "none"
    assert again.status_code == 401
    assert "Set-Cookie" not in again.headers


def test_the_patients_view_of_the_demo_patient_in_development_mode(app: Flask) -> None:
    """Fix N9: `/app/my` without a session starts the demo patient's own session (role
    patient) listing its open Tasks; the landing page links it; loopback only."""
    from mit_fhir.usecases import tasks
    from tests.ui.patient_seed import DERS_URL, seed_task

    patient = load_demo(app.extensions["mit_fhir"]).patient
    seeded = seed_task(app, patient, DERS_URL)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        own = [t["id"] for t in tasks.open_tasks(conn, patient, owner=f"Patient/{patient}")]
    assert seeded in own
    api = app.test_client()
    landing = api.get("/").get_data(as_text=True)
    assert re.search(r'<a href="/app/my">The patient.s view \(demo\)</a>', landing)
    far = api.get("/app/my", base_url="https://localhost",
                  environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert far.status_code == 401
    mine = api.get("/app/my", base_url="https://localhost")
    assert mine.status_code == 200, mine.get_data(as_text=True)
    assert "mit_fhir_app=" in mine.headers["Set-Cookie"]
    html = mine.get_data(as_text=True)
    assert re.findall(r'data-task="([^"]+)"', html) == own
    assert 'class="mode-patient"' in html
    # Its own form, with the patient's copy of the Questionnaire (no score item).
    assert api.get(f"/app/my/tasks/{seeded}", base_url="https://localhost").status_code == 200
    served = api.get(f"/app/api/my/tasks/{seeded}/questionnaire?lang=en",
                     base_url="https://localhost").get_json()
    assert "ders-total" not in str(served) and served["id"] == "ders"
    # The session is the patient's: a clinician's page starts the demo clinician again.
    assert api.get("/app/", base_url="https://localhost").status_code == 200
    app.config["AUTH"] = "jwt"
    try:
        assert api.get("/app/my", base_url="https://localhost").status_code == 401
    finally:
        app.config["AUTH"] = "none"
