"""The locked hand-over mode (POST /app/api/handover) and the roles of the pages' sessions,
against the test EHR (real HTTP, Authlib) with the Flask test client as the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.ui import sessions
from tests.ui.conftest import SCOPE
from tests.ui.patient_seed import DERS_URL, seed_task
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_smart import APP, PATIENT, csrf, launched, running_app, running_ehr

OTHER = "pat-other"


@pytest.fixture
def ehr() -> Iterator[SmartEhr]:
    yield from running_ehr(SCOPE)


@pytest.fixture
def app(ehr: SmartEhr, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from running_app(ehr, database_url, tmp_path)


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def _cookie(browser: FlaskClient) -> str | None:
    found = browser.get_cookie(sessions.COOKIE, domain="mit.example.org", path="/app")
    return found.value if found else None


def _hand_over(browser: FlaskClient, tasks: list[str]) -> tuple[int, dict[str, object]]:
    resp = browser.post("/app/api/handover", json={"tasks": tasks}, base_url=APP,
                        headers={"X-CSRF-Token": csrf(browser)})
    return resp.status_code, resp.get_json()


def test_a_handover_starts_a_new_locked_session_for_the_chosen_tasks(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    chosen = seed_task(app, PATIENT, DERS_URL)
    other_own = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    clinician = _cookie(browser)
    # The chart is never kept by the browser: the back button cannot show it again.
    assert browser.get("/app/", base_url=APP).headers["Cache-Control"] == "no-store"
    status, body = _hand_over(browser, [chosen])
    assert status == 200 and body == {"url": "/app/my"}
    locked = _cookie(browser)
    assert clinician and locked and locked != clinician
    with app.app_context(), app.extensions["mit_fhir"].store.transaction() as conn:
        assert sessions.load(conn, clinician) is None  # the clinician's row is gone
        data = sessions.load(conn, locked)
    assert data is not None and data["role"] == "handover" and data["tasks"] == [chosen]
    assert "access_token" not in data and "refresh_token" not in data
    page = browser.get("/app/my", base_url=APP).get_data(as_text=True)
    assert f'data-task="{chosen}"' in page and f'data-task="{other_own}"' not in page
    # The chart, the forms list and the clinician's API are closed to it.
    for path in ("/app/", "/app/outcomes", f"/app/patients/{PATIENT}/outcomes",
                 "/app/api/forms/ders/questionnaire"):
        assert browser.get(path, base_url=APP).status_code == 403, path
    # Another hand-over from the locked session (a patient choosing more) is refused.
    assert _hand_over(browser, [other_own])[0] == 403


def test_a_handover_takes_only_open_tasks_of_the_launched_patient_to_fill(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    mine = seed_task(app, PATIENT, DERS_URL)
    theirs = seed_task(app, OTHER, DERS_URL)
    done = seed_task(app, PATIENT, DERS_URL, status="completed")
    rated = seed_task(app, PATIENT, DERS_URL, owner="Practitioner/dr-rossi")
    launched(browser, ehr)
    clinician = _cookie(browser)
    for refused in ([theirs], [mine, done], [rated], ["no-such-task"]):
        status, body = _hand_over(browser, refused)
        assert status == 422, refused
        assert OTHER not in str(body) and PATIENT not in str(body)
    for malformed in ([], "x", [1], [mine] * 21):
        assert _hand_over(browser, malformed)[0] == 400  # type: ignore[arg-type]
    assert _cookie(browser) == clinician  # nothing changed: still the clinician's session
    assert browser.get("/app/", base_url=APP).status_code == 200


def test_a_handover_needs_the_csrf_token(browser: FlaskClient, app: Flask,
                                         ehr: SmartEhr) -> None:
    mine = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    resp = browser.post("/app/api/handover", json={"tasks": [mine]}, base_url=APP)
    assert resp.status_code == 403
    assert browser.get("/app/", base_url=APP).status_code == 200


def test_finishing_a_handover_leaves_only_the_give_back_page(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    mine = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    assert _hand_over(browser, [mine])[0] == 200
    token = browser.get("/app/my", base_url=APP).get_data(as_text=True) \
        .split('name="csrf-token" content="')[1].split('"')[0]
    resp = browser.post("/app/api/my/end", json={}, base_url=APP,
                        headers={"X-CSRF-Token": token})
    assert resp.status_code == 200
    page = browser.get("/app/my", base_url=APP).get_data(as_text=True)
    assert 'id="give-back"' in page and mine not in page
    assert browser.get(f"/app/my/tasks/{mine}", base_url=APP).status_code == 404


def test_a_clinician_page_in_handover_mode_points_the_patient_to_their_forms(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    """Fix finding 11: Back (or a clinician URL) on the handed-over device says the device
    is in patient mode, links to /app/my, and says only the clinician leaves it; never the
    "for clinicians" message meant for a patient who came the wrong way."""
    chosen = seed_task(app, PATIENT, DERS_URL)
    launched(browser, ehr)
    assert _hand_over(browser, [chosen])[0] == 200
    for path in ("/app/", "/app/outcomes"):
        resp = browser.get(path, base_url=APP)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 403
        assert "This device is in patient mode: your forms are here." in html
        assert '<a id="message-link" href="/app/my">Go to your forms</a>' in html
        assert "give the device back to your clinician" in html
        assert "This page is for clinicians" not in html
    italian = browser.get("/app/", base_url=APP, headers={"Accept-Language": "it"})
    assert "modalità paziente" in italian.get_data(as_text=True)
    api = browser.get("/app/api/forms/ders/questionnaire", base_url=APP)
    assert api.status_code == 403 and "patient mode" in api.get_json()["error"]
