"""The patient launch and the roles of the pages' sessions, against the test EHR (real HTTP,
Authlib) with the Flask test client as the browser: who gets which role, what a patient's
page lists, and that every clinician route refuses a patient session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from mit_fhir.ui.tables import ui_session
from tests.ui.conftest import PATIENT_SCOPE, REGISTERED_SCOPE
from tests.ui.patient_seed import DERS_URL, seed_task
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_smart import APP, PATIENT, authorize, launched, running_app, running_ehr

OTHER = "pat-other"
# Routes of the pages that are neither clinician pages nor the patient's: the launch itself,
# static files, signing out.
NOT_CLINICIAN = {"ui.static", "ui.vendor", "ui.launch", "ui.callback", "ui.logout", "ui.my",
                 "ui.my_task", "ui.my_questionnaire", "ui.my_draft", "ui.my_response",
                 "ui.end_handover"}


@pytest.fixture
def ehr() -> Iterator[SmartEhr]:
    yield from running_ehr(REGISTERED_SCOPE)


@pytest.fixture
def app(ehr: SmartEhr, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from running_app(ehr, database_url, tmp_path)


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def patient_launch(browser: FlaskClient, ehr: SmartEhr, launch_for: str | None = None) -> Any:
    """A standalone patient launch (or a portal one with a launch for `launch_for`); the
    callback's answer."""
    args = {"view": "patient", **({"iss": ehr.iss, "launch": ehr.launch(launch_for)}
                                  if launch_for else {})}
    resp = browser.get("/app/launch", query_string=args, base_url=APP)
    assert resp.status_code == 302
    answer = authorize(resp.headers["Location"])
    return browser.get("/app/callback", query_string=answer, base_url=APP)


def _sessions(app: Flask) -> list[dict[str, Any]]:
    import orjson

    with app.app_context(), app.extensions["mit_fhir"].store.transaction() as conn:
        return [orjson.loads(r.data) for r in conn.execute(select(ui_session.c.data))]


def _csrf(html: str) -> str:
    return html.split('name="csrf-token" content="')[1].split('"')[0]


def test_a_standalone_patient_launch_is_a_patient_session_of_that_patient(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    ehr.sign_in_patient(PATIENT)
    resp = browser.get("/app/launch", query_string={"view": "patient"}, base_url=APP)
    scope = parse_qs(urlsplit(resp.headers["Location"]).query)["scope"][0]
    assert scope.split() == PATIENT_SCOPE.split()
    answer = authorize(resp.headers["Location"])
    done = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert done.status_code == 302 and done.headers["Location"] == "/app/my"
    (data,) = _sessions(app)
    assert data["role"] == "patient" and data["patient"] == PATIENT
    assert browser.get("/app/my", base_url=APP).status_code == 200


def test_a_portal_launch_for_another_patient_is_refused_and_nothing_stored(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    ehr.sign_in_patient(PATIENT)
    resp = patient_launch(browser, ehr, launch_for=OTHER)
    assert resp.status_code == 403
    assert OTHER not in resp.get_data(as_text=True)
    assert _sessions(app) == []
    # The same portal launching the signed-in patient's own forms is a patient session.
    assert patient_launch(browser, ehr, launch_for=PATIENT).headers["Location"] == "/app/my"


def test_a_clinician_at_the_patient_view_is_told_where_to_start(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    resp = patient_launch(browser, ehr)
    assert resp.status_code == 403
    assert "Clinicians start the app from the patient&#39;s chart" in resp.get_data(as_text=True)
    assert _sessions(app) == []


def test_a_patient_fhir_user_from_the_clinician_launch_is_still_a_patient(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    ehr.sign_in_patient(PATIENT)
    resp = browser.get("/app/launch", query_string={"iss": ehr.iss,
                                                    "launch": ehr.launch(PATIENT)},
                       base_url=APP)
    done = browser.get("/app/callback", query_string=authorize(resp.headers["Location"]),
                       base_url=APP)
    assert done.headers["Location"] == "/app/my"
    assert [d["role"] for d in _sessions(app)] == ["patient"]
    assert browser.get("/app/", base_url=APP).status_code == 403


def test_a_patient_of_another_server_is_refused(browser: FlaskClient, app: Flask,
                                                ehr: SmartEhr) -> None:
    ehr.sign_in_patient(PATIENT)
    ehr.id_token_claims = {"fhirUser": f"https://elsewhere.example.org/fhir/Patient/{PATIENT}"}
    assert patient_launch(browser, ehr).status_code == 403
    assert _sessions(app) == []


def _filled(rule: Any) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "ders" if m.group(1) == "qid" else "x-1",
                  rule.rule)


def test_every_clinician_route_refuses_a_patient_session(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    token = _csrf(browser.get("/app/my", base_url=APP).get_data(as_text=True))
    checked = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui.") or rule.endpoint in NOT_CLINICIAN:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            resp = browser.open(_filled(rule), method=method, base_url=APP, json={},
                                headers={"X-CSRF-Token": token})
            assert resp.status_code == 403, (rule.rule, method, resp.status_code)
            assert "for clinicians" in resp.get_data(as_text=True), rule.rule
            checked.append((rule.endpoint, method))
    # The list is the app's: a new clinician route is checked without editing this test.
    assert {("ui.forms", "GET"), ("ui.handover", "POST"),
            ("ui.submit_response", "POST"), ("ui.draft", "PUT")} <= set(checked)


def test_patient_routes_refuse_a_clinician_session(browser: FlaskClient, ehr: SmartEhr) -> None:
    launched(browser, ehr)
    for path in ("/app/my", "/app/my/tasks/x-1", "/app/api/my/tasks/x-1/questionnaire",
                 "/app/api/my/tasks/x-1/draft"):
        resp = browser.get(path, base_url=APP)
        assert resp.status_code == 403 and "Clinicians start" in resp.get_data(as_text=True)


def test_the_page_lists_only_the_patients_own_open_tasks(browser: FlaskClient, app: Flask,
                                                        ehr: SmartEhr) -> None:
    late = seed_task(app, PATIENT, DERS_URL, due="2020-02-01T00:00:00Z")
    later = seed_task(app, PATIENT, DERS_URL)
    hidden = [seed_task(app, PATIENT, DERS_URL, status="completed"),
              seed_task(app, PATIENT, DERS_URL, owner="Practitioner/dr-rossi"),
              seed_task(app, OTHER, DERS_URL)]
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    html = browser.get("/app/my", base_url=APP).get_data(as_text=True)
    shown = re.findall(r'data-task="([^"]+)"', html)
    assert shown == [late, later]  # the overdue one first
    assert not set(hidden) & set(shown)
    # Written out, the day kept on one line (fix finding 8), overdue said gently.
    assert re.search(r'Still to do: it was due on <time class="day" datetime="2020-02-01">'
                     r'1 February 2020</time>', html)
    assert re.search(r'Please fill in by <time class="day" datetime="2099-01-31">'
                     r'31 January 2099</time>', html)
    assert "Difficulties in Emotion Regulation" in html
    assert 'id="my-scores"' not in html  # MIT_FHIR_PATIENT_SCORES is off by default
    italian = browser.get("/app/my?lang=it", base_url=APP).get_data(as_text=True)
    assert "Ancora da fare" in italian and "1 febbraio 2020" in italian
    # Another patient's Task cannot be opened by its id.
    assert browser.get(f"/app/my/tasks/{hidden[2]}", base_url=APP).status_code == 404
    assert browser.get(f"/app/my/tasks/{hidden[1]}", base_url=APP).status_code == 404


def test_a_portal_launch_asks_for_launch_and_a_standalone_one_for_launch_patient(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """Fix N8: SMART binds an EHR launch's context only under `launch` (the test EHR does
    too), so the portal launch of the patient view asks for it; a standalone one asks for
    `launch/patient`."""
    ehr.sign_in_patient(PATIENT)
    portal = browser.get("/app/launch", base_url=APP, query_string={
        "view": "patient", "iss": ehr.iss, "launch": ehr.launch(PATIENT)})
    asked = parse_qs(urlsplit(portal.headers["Location"]).query)["scope"][0].split()
    assert "launch" in asked and "launch/patient" not in asked
    assert set(asked) - {"launch"} == set(PATIENT_SCOPE.split()) - {"launch/patient"}
    done = browser.get("/app/callback", base_url=APP,
                       query_string=authorize(portal.headers["Location"]))
    assert done.headers["Location"] == "/app/my"
    alone = browser.get("/app/launch", base_url=APP, query_string={"view": "patient"})
    asked = parse_qs(urlsplit(alone.headers["Location"]).query)["scope"][0].split()
    assert "launch/patient" in asked and "launch" not in asked
