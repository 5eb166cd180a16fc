"""A patient filling a Task through the pages' API (Flask test client, test EHR): drafts
start the Task, the submission completes it with the response in one transaction, author
and source the Patient; retries store once; a risk alert gives a safety message, no score."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.fhir import task as fhir_task
from mit_fhir.store import repository
from tests.conftest import sample
from tests.ui.conftest import PATIENT_SCOPE, REGISTERED_SCOPE
from tests.ui.helpers import ders_items, ders_response
from tests.ui.patient_seed import DERS_URL, seed_task
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_patient_launch import patient_launch
from tests.ui.test_smart import APP, PATIENT, csrf, launched, make_app, running_app, running_ehr

PHQ9 = sample("phq-9", "complete")


@pytest.fixture
def ehr() -> Iterator[SmartEhr]:
    yield from running_ehr(f"{REGISTERED_SCOPE} patient/Observation.rs")


@pytest.fixture
def app(ehr: SmartEhr, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from running_app(ehr, database_url, tmp_path)


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def _read(app: Flask, resource_type: str, rid: str) -> dict[str, Any]:
    with app.app_context(), app.extensions["mit_fhir"].store.transaction() as conn:
        found = repository.read(conn, resource_type, rid)
    assert found is not None
    return found


def _token(browser: FlaskClient) -> str:
    html = browser.get("/app/my", base_url=APP).get_data(as_text=True)
    return html.split('name="csrf-token" content="')[1].split('"')[0]


def _ders(each: int, fill: str | None = None) -> dict[str, Any]:
    body = ders_response("someone-else", "2026-01-01T00:00:00Z",
                         {i["linkId"]: each for i in ders_items()})
    body["author"] = {"reference": "Practitioner/impostor"}
    body["identifier"] = {"system": "urn:ietf:rfc:3986", "value": fill or uuid.uuid4().urn}
    return body


def _send(browser: FlaskClient, tid: str, body: dict[str, Any], token: str,
          what: str = "response", method: str = "POST") -> Any:
    return browser.open(f"/app/api/my/tasks/{tid}/{what}", method=method, json=body,
                        base_url=APP, headers={"X-CSRF-Token": token})


def test_a_patient_completes_a_task_with_a_response_authored_by_the_patient(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    tid = seed_task(app, PATIENT, DERS_URL)
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    token = _token(browser)
    # A first draft starts the Task; the draft is this Task's.
    assert _send(browser, tid, _ders(1), token, "draft", "PUT").status_code == 200
    assert _read(app, "Task", tid)["status"] == "in-progress"
    assert browser.get(f"/app/api/my/tasks/{tid}/draft", base_url=APP).json["item"]
    fill = uuid.uuid4().urn
    resp = _send(browser, tid, _ders(2, fill), token)
    assert resp.status_code == 200, resp.json
    assert resp.json["safety"] is False and "scores" not in resp.json
    response = _read(app, "QuestionnaireResponse", resp.json["response"])
    me = {"reference": f"Patient/{PATIENT}"}
    assert response["subject"] == me and response["author"] == me and response["source"] == me
    task = _read(app, "Task", tid)
    assert task["status"] == "completed"
    assert fhir_task.response_of(task) == f"QuestionnaireResponse/{response['id']}"
    assert browser.get(f"/app/api/my/tasks/{tid}/draft", base_url=APP).json is None
    # A retry of the same fill answers with the stored response; the Task moves no further.
    again = _send(browser, tid, _ders(2, fill), token)
    assert again.status_code == 200 and again.json["response"] == response["id"]
    assert _read(app, "Task", tid)["meta"]["versionId"] == task["meta"]["versionId"]
    # Another fill for the completed Task is refused, and nothing of it is stored.
    other = _send(browser, tid, _ders(3), token)
    assert other.status_code == 409
    with app.app_context(), app.extensions["mit_fhir"].store.transaction() as conn:
        stored = repository.search(conn, "QuestionnaireResponse", [])
    assert len(stored) == 1
    # Done: the page no longer lists it.
    assert tid not in browser.get("/app/my", base_url=APP).get_data(as_text=True)


def test_a_response_for_another_form_than_the_tasks_is_not_taken(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    tid = seed_task(app, PATIENT, DERS_URL)
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    body = {**PHQ9, "identifier": {"system": "urn:ietf:rfc:3986", "value": uuid.uuid4().urn}}
    resp = _send(browser, tid, body, _token(browser))
    # The server takes the form from the Task: PHQ-9 answers do not make a DERS response.
    assert resp.status_code == 422
    assert _read(app, "Task", tid)["status"] == "requested"


def test_a_risk_answer_gives_the_patient_a_safety_message_not_a_score(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    phq = f"{PHQ9['questionnaire']}"
    tid = seed_task(app, PATIENT, phq)
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    token = _token(browser)
    page = browser.get(f"/app/my/tasks/{tid}", base_url=APP).get_data(as_text=True)
    assert 'id="safety"' in page and "112" in page and 'id="scores"' not in page
    body = {**PHQ9, "identifier": {"system": "urn:ietf:rfc:3986", "value": uuid.uuid4().urn}}
    resp = _send(browser, tid, body, token)
    assert resp.status_code == 200, resp.json
    assert resp.json == {"response": resp.json["response"], "safety": True}


def test_a_handed_over_device_signs_in_again_for_the_chart(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    tid = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    assert ehr.prompts == [None]
    resp = browser.post("/app/api/handover", json={"tasks": [tid]}, base_url=APP,
                        headers={"X-CSRF-Token": csrf(browser)})
    assert resp.status_code == 200
    # Only a new launch gets the chart back, and it asks the EHR for a fresh sign-in.
    assert browser.get("/app/", base_url=APP).status_code == 403
    launched(browser, ehr)
    assert ehr.prompts == [None, "login"]
    assert browser.get("/app/", base_url=APP).status_code == 200
    launched(browser, ehr)
    assert ehr.prompts[-1] is None  # signed in again: the device is the clinician's


def test_the_patient_scores_setting_shows_the_patients_own_scores(
        ehr: SmartEhr, database_url: str, tmp_path: Path) -> None:
    app = make_app(ehr, database_url, tmp_path, PATIENT_SCORES=True,
                   SMART_PATIENT_SCOPE=f"{PATIENT_SCOPE} patient/Observation.rs")
    try:
        browser = app.test_client()
        tid = seed_task(app, PATIENT, DERS_URL)
        seed_task(app, "pat-other", DERS_URL)
        ehr.sign_in_patient(PATIENT)
        patient_launch(browser, ehr)
        html = browser.get("/app/my", base_url=APP).get_data(as_text=True)
        assert 'id="my-scores"' not in html  # nothing scored yet
        assert _send(browser, tid, _ders(2), _token(browser)).status_code == 200
        html = browser.get("/app/my", base_url=APP).get_data(as_text=True)
        assert 'id="my-scores"' in html and "<strong>72</strong>" in html
    finally:
        app.extensions["mit_fhir"].store.dispose()
