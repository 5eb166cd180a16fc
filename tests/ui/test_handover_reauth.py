"""Outside attacks on the patient's pages and the hand-over mode (verify issue 14), against the
test EHR (real HTTP, Authlib) with the Flask test client as the browser."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from mit_fhir.store import repository
from mit_fhir.ui import sessions
from mit_fhir.ui.tables import ui_draft
from tests.ui.patient_seed import DERS_URL, seed_task
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_patient_launch import NOT_CLINICIAN, patient_launch
from tests.ui.test_patient_submit import _ders, _read, _send, _token, app, browser, ehr
from tests.ui.test_smart import APP, PATIENT, csrf, launched

__all__ = ["app", "browser", "ehr"]  # the fixtures, shared with test_patient_submit


def _drafts(app: Flask) -> int:
    with app.app_context(), app.extensions["mit_fhir"].store.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(ui_draft)).scalar_one())


def _responses(app: Flask) -> int:
    with app.app_context(), app.extensions["mit_fhir"].store.transaction() as conn:
        return len(repository.search(conn, "QuestionnaireResponse", []))


def test_a_draft_for_a_closed_task_is_a_4xx_and_stores_nothing(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """PUT /app/api/my/tasks/<tid>/draft for the patient's own completed / cancelled Task."""
    closed = [seed_task(app, PATIENT, DERS_URL, status=s) for s in ("completed", "cancelled")]
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    token = _token(browser)
    for tid in closed:
        resp = _send(browser, tid, _ders(1), token, "draft", "PUT")
        assert 400 <= resp.status_code < 500, (tid, resp.status_code, resp.get_data()[:200])
    assert _drafts(app) == 0


def test_one_fill_identifier_does_not_complete_a_second_task(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """The page's retry key (the fill identifier) sent again for ANOTHER open Task of the same
    form: the second Task must not be completed by the first Task's response."""
    first, second = seed_task(app, PATIENT, DERS_URL), seed_task(app, PATIENT, DERS_URL)
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    token = _token(browser)
    fill = uuid.uuid4().urn
    done = _send(browser, first, _ders(2, fill), token)
    assert done.status_code == 200, done.get_json()
    again = _send(browser, second, _ders(2, fill), token)
    task = _read(app, "Task", second)
    assert task["status"] != "completed" or again.status_code >= 400, (again.status_code,
                                                                        task.get("output"))


def _hand_over(browser: FlaskClient, tasks: list[str]) -> Any:
    return browser.post("/app/api/handover", json={"tasks": tasks}, base_url=APP,
                        headers={"X-CSRF-Token": csrf(browser)})


def _filled(rule: Any) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "ders" if m.group(1) == "qid" else "x-1",
                  rule.rule)


def test_every_clinician_route_refuses_the_handover_session_and_the_old_cookie(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """After POST /app/api/handover: every clinician route of the app's url_map answers the
    locked cookie 403, and the clinician's old cookie, replayed, reaches nothing (401)."""
    tid = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    old = browser.get_cookie(sessions.COOKIE, domain="mit.example.org", path="/app")
    assert old is not None
    old_value, token = old.value, csrf(browser)
    assert _hand_over(browser, [tid]).status_code == 200
    locked = _token(browser)
    thief = app.test_client()
    thief.set_cookie(sessions.COOKIE, old_value, domain="mit.example.org", path="/app")
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui.") or rule.endpoint in NOT_CLINICIAN:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            resp = browser.open(_filled(rule), method=method, base_url=APP, json={},
                                headers={"X-CSRF-Token": locked})
            assert resp.status_code == 403, (rule.rule, method, resp.status_code)
            replay = thief.open(_filled(rule), method=method, base_url=APP, json={},
                                headers={"X-CSRF-Token": token})
            assert replay.status_code in (401, 403), (rule.rule, method, replay.status_code)


def test_a_handover_session_cannot_hand_over_or_fill_other_tasks(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    chosen, other = seed_task(app, PATIENT, DERS_URL), seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    assert _hand_over_status(browser, [chosen]) == 200
    token = _token(browser)
    before = _responses(app)
    for path in (f"/app/my/tasks/{other}", f"/app/api/my/tasks/{other}/questionnaire",
                 f"/app/api/my/tasks/{other}/draft"):
        assert browser.get(path, base_url=APP).status_code == 404, path
    resp = _send(browser, other, _ders(2), token)
    assert resp.status_code == 404, resp.status_code
    assert _read(app, "Task", other)["status"] == "requested" and _responses(app) == before


def _hand_over_status(browser: FlaskClient, tasks: list[str]) -> int:
    return int(_hand_over(browser, tasks).status_code)


def test_patient_and_handover_cookies_open_no_api_outside_the_pages(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """The session cookie of a patient launch, then of a hand-over, sent to the bearer APIs
    (/fhir, /outcomes, CDS): none of them takes a cookie for a token."""
    tid = seed_task(app, PATIENT, DERS_URL)
    paths = [f"/outcomes/{PATIENT}", f"/fhir/Task/{tid}", f"/fhir/Task?patient={PATIENT}",
             f"/fhir/QuestionnaireResponse?patient={PATIENT}",
             f"/fhir/Observation?patient={PATIENT}", f"/fhir/MedicationRequest?patient={PATIENT}"]
    locked = app.test_client()
    launched(locked, ehr)
    assert _hand_over(locked, [tid]).status_code == 200
    for path in paths:
        assert locked.get(path, base_url=APP).status_code == 401, path
    ehr.sign_in_patient(PATIENT)
    patient_launch(browser, ehr)
    for path in paths:
        assert browser.get(path, base_url=APP).status_code == 401, path


def test_the_chart_does_not_come_back_by_dropping_prompt_login(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """On the handed-over tablet, the patient starts the standalone launch (GET /app/launch),
    deletes `prompt=login` from the EHR authorize URL the app redirected to (the address bar)
    and lets the EHR's single sign-on answer: the app takes the answer and opens the chart.
    Secure: the callback of a handed-over device checks that the EHR really signed the user
    in again (id_token auth_time after the launch, e.g. with max_age=0), else refuses."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from tests.ui.test_smart import authorize

    tid = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    assert _hand_over(browser, [tid]).status_code == 200
    assert browser.get("/app/", base_url=APP).status_code == 403
    ehr.picked_patient = PATIENT
    location = browser.get("/app/launch", base_url=APP).headers["Location"]
    parts = urlsplit(location)
    asked = dict(parse_qsl(parts.query))
    assert asked.get("prompt") == "login" and asked.get("max_age") == "0"  # the app asked
    # Both re-authentication demands deleted from the address bar.
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("prompt", "max_age")]
    stripped = urlunsplit(parts._replace(query=urlencode(query)))
    answer = authorize(stripped)  # the EHR's SSO answers without asking for credentials
    assert ehr.prompts[-1] is None
    refused = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert refused.status_code == 403 and "did not sign you in again" in refused.get_data(
        as_text=True)
    chart = browser.get("/app/", base_url=APP)
    assert chart.status_code != 200, "the chart is back without a new sign-in"


def test_a_handed_over_device_signed_in_again_gets_the_chart(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """The honest way back: the launch after a hand-over asks prompt=login and max_age=0, the
    EHR signs the clinician in again (a fresh auth_time) and the chart opens."""
    from tests.ui.test_smart import authorize

    tid = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    assert _hand_over(browser, [tid]).status_code == 200
    ehr.picked_patient = PATIENT
    location = browser.get("/app/launch", base_url=APP).headers["Location"]
    answer = authorize(location)
    assert ehr.prompts[-1] == "login"
    back = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert back.status_code == 302, back.get_data(as_text=True)[:300]
    assert browser.get("/app/", base_url=APP).status_code == 200


def test_a_related_person_gets_no_clinician_chart(browser: FlaskClient, app: Flask,
                                                  ehr: SmartEhr) -> None:
    """A patient's proxy on the portal (fhirUser RelatedPerson/<id>, patient context the
    patient) opens the clinicians' launch URL: the role is decided as 'clinician' for any
    fhirUser that is not a Patient, so the proxy gets the chart (scores, medication timeline,
    the hand-over) that the patient scores setting keeps from patients.
    Secure: only a Practitioner / PractitionerRole user gets the clinician role."""
    from tests.ui.test_smart import authorize, start

    ehr.user, ehr.fhir_user, ehr.patient_user = "mum-1", "RelatedPerson/mum-1", None
    answer = authorize(start(browser, ehr, PATIENT, None))
    refused = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert refused.status_code == 403 and "neither a clinician" in refused.get_data(
        as_text=True)
    chart = browser.get(f"/app/patients/{PATIENT}/outcomes", base_url=APP)
    home = browser.get("/app/", base_url=APP)
    assert home.status_code in (401, 403) and chart.status_code in (401, 403), (
        "a RelatedPerson got the clinician pages")
