"""SMART App Launch against the test EHR (real HTTP, Authlib): PKCE, state, context, session
cookie, refresh, issuer allow-list, CSRF and patient-context checks on the pages' API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select

from mit_fhir.app import create_app
from mit_fhir.config import ConfigError, load_settings
from mit_fhir.fhir.alerts import EXT_CRITICAL_ANSWER
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store import repository
from mit_fhir.ui import sessions, web
from mit_fhir.ui.tables import ui_session
from tests.conftest import ROOT, load_json, sample
from tests.ui.conftest import CLIENT_ID, SCOPE
from tests.ui.helpers import ders_items, ders_response
from tests.ui.smart_ehr import SmartEhr

APP = "https://mit.example.org"  # the test client speaks "https" so that Secure cookies flow
PATIENT = "pat-42"


def running_ehr(scope: str = SCOPE) -> Iterator[SmartEhr]:
    """The test EHR with the app registered for `scope` (a fixture body: yield from it)."""
    # No backing FHIR server is needed here except for the prescriptions test, which has its own.
    server = SmartEhr(fhir_backend="http://127.0.0.1:9", auto_approve=True).start()
    server.register(CLIENT_ID, f"{APP}/app/callback", scope, secret="s3cret")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ehr() -> Iterator[SmartEhr]:
    yield from running_ehr()


def make_app(ehr: SmartEhr, database_url: str, tmp_path: Path, **extra: Any) -> Flask:
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    # Not development mode: the pages must need their session (the API needs its tokens).
    return create_app({"DATABASE_URL": database_url, "AUTH": "jwt", "AUTH_ISSUER": ehr.iss,
                       "AUTH_AUDIENCE": "https://mit.example.org/fhir",
                       "SMART_CLIENT_ID": CLIENT_ID,
                       "SMART_CLIENT_SECRET_FILE": str(secret), "SMART_ISSUERS": ehr.iss,
                       "SMART_SCOPE": SCOPE, **extra})


def running_app(ehr: SmartEhr, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """make_app's app, its store disposed afterwards (a fixture body: yield from it)."""
    application = make_app(ehr, database_url, tmp_path)
    yield application
    application.extensions["mit_fhir"].store.dispose()


@pytest.fixture
def app(ehr: SmartEhr, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from running_app(ehr, database_url, tmp_path)


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def start(browser: FlaskClient, ehr: SmartEhr, patient: str = PATIENT,
          encounter: str | None = None) -> str:
    """GET /app/launch as the EHR links to it; return the authorize URL the app redirected to."""
    resp = browser.get("/app/launch", query_string={"iss": ehr.iss,
                                                    "launch": ehr.launch(patient, encounter)},
                       base_url=APP)
    assert resp.status_code == 302
    return resp.headers["Location"]


def authorize(url: str) -> dict[str, str]:
    """The EHR's answer to the authorize URL (auto-approved): the callback's query."""
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(f"{APP}/app/callback")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def launched(browser: FlaskClient, ehr: SmartEhr, patient: str = PATIENT,
             encounter: str | None = None) -> FlaskClient:
    answer = authorize(start(browser, ehr, patient, encounter))
    resp = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert resp.status_code == 302 and resp.headers["Location"] == "/app/"
    return browser


def csrf(browser: FlaskClient) -> str:
    html = browser.get("/app/", base_url=APP).get_data(as_text=True)
    return html.split('name="csrf-token" content="')[1].split('"')[0]


def test_ehr_launch_uses_pkce_s256_and_the_launch_context(browser: FlaskClient,
                                                          ehr: SmartEhr) -> None:
    url = start(browser, ehr)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{ehr.url}/authorize?")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["aud"] == ehr.iss and query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{APP}/app/callback" and query["scope"] == SCOPE
    assert "launch" in query and query["state"]
    answer = authorize(url)
    resp = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/app" in cookie and "Partitioned" not in cookie
    page = browser.get("/app/", base_url=APP)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"Forms for patient {PATIENT}" in text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    assert ehr.token_requests == ["authorization_code"]


def test_the_token_stays_on_the_server(browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    launched(browser, ehr)
    cookie = browser.get_cookie(sessions.COOKIE, path="/app", domain="mit.example.org")
    assert cookie is not None
    token = next(iter(ehr.access))
    assert token not in cookie.value
    with app.extensions["mit_fhir"].store.transaction() as conn:
        ids = [r.id for r in conn.execute(select(ui_session.c.id))]
        data = sessions.load(conn, cookie.value)
    assert cookie.value not in ids  # the table keys sessions by the cookie's hash
    assert data is not None and data["access_token"] == token
    assert data["patient"] == PATIENT and data["fhirUser"].endswith("Practitioner/dr-rossi")
    page = browser.get("/app/", base_url=APP).get_data(as_text=True)
    assert token not in page


def test_state_is_checked_and_used_once(browser: FlaskClient, ehr: SmartEhr) -> None:
    answer = authorize(start(browser, ehr))
    forged = browser.get("/app/callback", query_string={**answer, "state": "forged"},
                         base_url=APP)
    assert forged.status_code == 400 and "state does not match" in forged.get_data(as_text=True)
    assert ehr.token_requests == []
    # A forged state leaves the pending launch alone (else any site could end it); the EHR's
    # real answer then completes it, once.
    done = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert done.status_code == 302 and ehr.token_requests == ["authorization_code"]
    again = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert again.status_code == 400 and "unknown or expired" in again.get_data(as_text=True)
    assert ehr.token_requests == ["authorization_code"]


@pytest.mark.parametrize("query", [{"state": "x"}, {}, {"state": "", "code": "c"},
                                   {"state": "x", "error": "access_denied"}])
def test_a_cross_site_callback_leaves_the_session_alone(
        browser: FlaskClient, app: Flask, ehr: SmartEhr, query: dict[str, str]) -> None:
    launched(browser, ehr)
    sessions_before = _session_rows(app)
    # What another site's link or <img> makes the signed-in browser send, cookie included.
    resp = browser.get("/app/callback", query_string=query, base_url=APP)
    assert resp.status_code == 400 and "unknown or expired" in resp.get_data(as_text=True)
    assert _session_rows(app) == sessions_before
    assert browser.get("/app/", base_url=APP).status_code == 200
    assert ehr.token_requests == ["authorization_code"]


def _session_rows(app: Flask) -> list[tuple[str, str]]:
    with app.extensions["mit_fhir"].store.transaction() as conn:
        return sorted(tuple(r) for r in conn.execute(select(ui_session.c.id, ui_session.c.data)))


def test_a_callback_without_the_launch_cookie_is_refused(app: Flask, ehr: SmartEhr) -> None:
    answer = authorize(start(app.test_client(), ehr))
    stranger = app.test_client()  # another browser: the attacker's link in the victim's tab
    resp = stranger.get("/app/callback", query_string=answer, base_url=APP)
    assert resp.status_code == 400 and ehr.token_requests == []


def test_the_ehr_requires_pkce(ehr: SmartEhr) -> None:
    url = (f"{ehr.url}/authorize?response_type=code&client_id={CLIENT_ID}"
           f"&redirect_uri={APP}/app/callback&scope=openid&state=x")
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code in (302, 400)
    assert "PKCE" in (resp.headers.get("Location", "") + resp.text).replace("+", " ")


def test_an_unlisted_issuer_is_refused(browser: FlaskClient, ehr: SmartEhr) -> None:
    resp = browser.get("/app/launch", query_string={"iss": "https://evil.example.org/fhir",
                                                    "launch": "x"}, base_url=APP)
    assert resp.status_code == 403
    assert "Set-Cookie" not in resp.headers


def test_standalone_launch_uses_the_configured_issuer(browser: FlaskClient,
                                                      ehr: SmartEhr) -> None:
    resp = browser.get("/app/launch", base_url=APP)
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["aud"] == [ehr.iss] and "launch" not in query
    assert "launch/patient" in query["scope"][0].split()


def test_a_standalone_launch_gets_the_patient_the_user_picked(browser: FlaskClient,
                                                               ehr: SmartEhr) -> None:
    ehr.picked_patient = "pat-7"
    answer = authorize(browser.get("/app/launch", base_url=APP).headers["Location"])
    assert browser.get("/app/callback", query_string=answer, base_url=APP).status_code == 302
    assert "Forms for patient pat-7" in browser.get("/app/", base_url=APP).get_data(
        as_text=True)


def test_an_expired_access_token_is_refreshed(browser: FlaskClient, app: Flask,
                                              ehr: SmartEhr) -> None:
    launched(browser, ehr)
    cookie = browser.get_cookie(sessions.COOKIE, path="/app", domain="mit.example.org")
    assert cookie is not None
    with app.extensions["mit_fhir"].store.transaction() as conn:
        data = sessions.load(conn, cookie.value)
        assert data is not None
        old = data["access_token"]
        data["expires_at"] = time.time() - 1
        sessions.save(conn, cookie.value, data)
    assert browser.get("/app/", base_url=APP).status_code == 200
    assert ehr.token_requests == ["authorization_code", "refresh_token"]
    with app.extensions["mit_fhir"].store.transaction() as conn:
        fresh = sessions.load(conn, cookie.value)
    assert fresh is not None and fresh["access_token"] != old
    assert fresh["patient"] == PATIENT and fresh["expires_at"] > time.time()


def test_a_session_expires(ehr: SmartEhr, database_url: str, tmp_path: Path) -> None:
    app = make_app(ehr, database_url, tmp_path, SMART_SESSION_SECONDS=60)
    browser = launched(app.test_client(), ehr)
    cookie = browser.get_cookie(sessions.COOKIE, path="/app", domain="mit.example.org")
    assert cookie is not None
    with app.extensions["mit_fhir"].store.transaction() as conn:
        assert sessions.load(conn, cookie.value, now=time.time() + 30) is not None
        assert sessions.load(conn, cookie.value, now=time.time() + 61) is None
    app.extensions["mit_fhir"].store.dispose()


def test_framed_deployments_get_samesite_none_and_their_frame_ancestors(
        ehr: SmartEhr, database_url: str, tmp_path: Path) -> None:
    app = make_app(ehr, database_url, tmp_path, FRAME_ANCESTORS="https://ehr.example.org")
    browser = app.test_client()
    resp = browser.get("/app/launch", query_string={"iss": ehr.iss, "launch": "x"},
                       base_url=APP)
    assert "SameSite=None" in resp.headers["Set-Cookie"]
    assert "Secure" in resp.headers["Set-Cookie"] and "Partitioned" in resp.headers["Set-Cookie"]
    page = browser.get("/app/", base_url=APP)
    assert page.headers["Content-Security-Policy"].endswith(
        "frame-ancestors https://ehr.example.org")
    assert "X-Frame-Options" not in page.headers
    app.extensions["mit_fhir"].store.dispose()


def test_pages_need_a_session(browser: FlaskClient) -> None:
    assert browser.get("/app/", base_url=APP).status_code == 401
    resp = browser.get("/app/api/patients/x/outcomes", base_url=APP)
    assert resp.status_code == 401 and resp.json == {
        "error": "No session: open this app from the patient's chart in the EHR."}


def complete_ders(patient: str, each: int = 2) -> dict[str, Any]:
    return ders_response(patient, "2026-01-01T00:00:00Z",
                         {i["linkId"]: each for i in ders_items()})


def test_submitting_needs_the_csrf_token(browser: FlaskClient, ehr: SmartEhr) -> None:
    launched(browser, ehr)
    url = "/app/api/forms/ders/responses"
    missing = browser.post(url, json=complete_ders(PATIENT), base_url=APP)
    assert missing.status_code == 403
    wrong = browser.post(url, json=complete_ders(PATIENT), base_url=APP,
                         headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    token = csrf(browser)
    form_post = browser.post(url, data={"x": "1"}, base_url=APP,
                             headers={"X-CSRF-Token": token})
    assert form_post.status_code == 415
    ok = browser.post(url, json=complete_ders(PATIENT), base_url=APP,
                      headers={"X-CSRF-Token": token})
    assert ok.status_code == 200, ok.json
    total = next(s for s in ok.json["scores"] if s["code"] == "ders-total")
    assert total["value"] == 72


def test_the_session_decides_subject_and_author(browser: FlaskClient, app: Flask,
                                                ehr: SmartEhr) -> None:
    launched(browser, ehr, encounter="enc-9")
    body = complete_ders("someone-else")
    body["author"] = {"reference": "Practitioner/impostor"}
    resp = browser.post("/app/api/forms/ders/responses", json=body, base_url=APP,
                        headers={"X-CSRF-Token": csrf(browser)})
    assert resp.status_code == 200
    with app.app_context():
        from mit_fhir.store import repository

        with app.extensions["mit_fhir"].store.transaction() as conn:
            stored = repository.read(conn, "QuestionnaireResponse", resp.json["response"])
            events = repository.search(conn, "AuditEvent", [])
    assert stored is not None
    assert stored["subject"] == {"reference": f"Patient/{PATIENT}"}
    assert stored["author"]["reference"].endswith("Practitioner/dr-rossi")
    assert stored["encounter"] == {"reference": "Encounter/enc-9"}
    # The create is audited with the EHR user as the agent.
    created = [e for e in events if f"QuestionnaireResponse/{stored['id']}" in str(e)]
    assert len(created) == 1 and "Practitioner/dr-rossi" in str(created[0]["agent"])


def test_a_patient_context_session_sees_only_its_patient(browser: FlaskClient,
                                                         ehr: SmartEhr) -> None:
    launched(browser, ehr)
    assert browser.get("/app/patients/pat-other/outcomes", base_url=APP).status_code == 403
    assert browser.get("/app/api/patients/pat-other/outcomes", base_url=APP).status_code == 403


def test_a_draft_is_stored_validated_and_restored(browser: FlaskClient, app: Flask,
                                                  ehr: SmartEhr) -> None:
    launched(browser, ehr)
    token = csrf(browser)
    url = "/app/api/forms/ders/draft"
    assert browser.get(url, base_url=APP).json is None
    partial = complete_ders(PATIENT)
    partial["item"] = partial["item"][:5]
    saved = browser.put(url, json=partial, base_url=APP, headers={"X-CSRF-Token": token})
    assert saved.status_code == 200, saved.json
    draft = browser.get(url, base_url=APP).json
    assert draft["status"] == "in-progress" and len(draft["item"]) == 5
    bad = dict(partial, item=[{"linkId": "ders-1", "answer": [{"valueCoding": {
        "system": "https://mit-fhir.org/fhir/CodeSystem/instrument", "code": "nope"}}]}])
    refused = browser.put(url, json=bad, base_url=APP, headers={"X-CSRF-Token": token})
    assert refused.status_code == 422
    assert len(browser.get(url, base_url=APP).json["item"]) == 5  # the good draft is kept
    done = browser.post("/app/api/forms/ders/responses", json=complete_ders(PATIENT),
                        base_url=APP, headers={"X-CSRF-Token": token})
    assert done.status_code == 200
    assert browser.get(url, base_url=APP).json is None  # submitted: the draft is gone
    with app.extensions["mit_fhir"].store.transaction() as conn:
        events = repository.search(conn, "AuditEvent", [
            Criterion("subtype:code", "eq", ("update",))])
    # Both saves are audited, the stored one and the refused one.
    assert len(events) == 2 and all(PATIENT in str(e) for e in events)


def test_an_incomplete_response_is_refused_with_the_reason(browser: FlaskClient,
                                                           ehr: SmartEhr) -> None:
    launched(browser, ehr)
    body = complete_ders(PATIENT)
    body["item"][0]["answer"] = [{"valueString": "oops"}]
    resp = browser.post("/app/api/forms/ders/responses", json=body, base_url=APP,
                        headers={"X-CSRF-Token": csrf(browser)})
    assert resp.status_code == 422
    # Said as the person sees the form: the question as shown, not its linkId.
    text = load_json(ROOT / "mit_fhir" / "questionnaires" / "ders.json")["item"][0]["text"]
    # DERS items carry no number on the form: the item is named by its text (clinician finding).
    assert resp.json["issues"] == [f"The question \u201c{text}\u201d: the answer was not accepted."]
    assert "ders-1" not in resp.json["error"]
    assert any("ders-1" in d for d in resp.json["detail"])  # for the service's administrator


def test_the_italian_questionnaire_is_built_from_translations(browser: FlaskClient,
                                                              ehr: SmartEhr) -> None:
    launched(browser, ehr)
    q = browser.get("/app/api/forms/mit-contract/questionnaire?lang=it", base_url=APP).json
    assert q["language"] == "it" and q["title"] == "Contratto terapeutico MIT"
    assert q["item"][0]["text"] == "Base del contratto"
    missing = browser.get("/app/api/forms/ders/questionnaire?lang=it", base_url=APP)
    assert missing.status_code == 404  # DERS ships no Italian wording


def test_outcomes_still_load_when_the_ehr_cannot_be_read(browser: FlaskClient,
                                                         ehr: SmartEhr) -> None:
    launched(browser, ehr)  # this EHR's FHIR backend (port 9) is down
    resp = browser.get(f"/app/api/patients/{PATIENT}/outcomes", base_url=APP)
    assert resp.status_code == 200
    assert resp.json["medications"] == [] and resp.json["instruments"] == []
    assert "could not be read" in resp.json["ehrError"]
    assert "127.0.0.1" not in resp.json["ehrError"]


def test_an_id_token_for_another_app_is_refused(browser: FlaskClient, ehr: SmartEhr) -> None:
    ehr.id_token_claims = {"aud": "some-other-app"}
    answer = authorize(start(browser, ehr))
    resp = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert resp.status_code == 502
    assert "id_token is not valid (InvalidAudienceError)" in resp.get_data(as_text=True)
    assert browser.get("/app/", base_url=APP).status_code == 401  # no session was made


def test_an_ehr_without_smart_discovery_is_reported(ehr: SmartEhr, database_url: str,
                                                    tmp_path: Path) -> None:
    app = make_app(ehr, database_url, tmp_path, SMART_ISSUERS="http://127.0.0.1:9/fhir")
    resp = app.test_client().get("/app/launch", base_url=APP)
    assert resp.status_code == 502
    assert "smart-configuration could not be read" in resp.get_data(as_text=True)
    app.extensions["mit_fhir"].store.dispose()


def test_signing_out_ends_the_session(browser: FlaskClient, ehr: SmartEhr) -> None:
    launched(browser, ehr)
    token = csrf(browser)
    assert browser.post("/app/logout", base_url=APP).status_code == 403  # CSRF
    resp = browser.post("/app/logout", base_url=APP, json={},
                        headers={"X-CSRF-Token": token})
    assert resp.status_code == 200
    assert browser.get("/app/", base_url=APP).status_code == 401


def test_a_request_that_loses_the_refresh_race_uses_the_winners_token(
        browser: FlaskClient, app: Flask, ehr: SmartEhr) -> None:
    launched(browser, ehr)
    cookie = browser.get_cookie(sessions.COOKIE, path="/app", domain="mit.example.org")
    assert cookie is not None
    with app.extensions["mit_fhir"].store.transaction() as conn:
        stale = sessions.load(conn, cookie.value)
        assert stale is not None
        stale["expires_at"] = time.time() - 1
        sessions.save(conn, cookie.value, stale)
    assert browser.get("/app/", base_url=APP).status_code == 200  # request A refreshes
    with app.extensions["mit_fhir"].store.transaction() as conn:
        winner = sessions.load(conn, cookie.value)
    assert winner is not None
    # Request B had read the session before A saved it: its refresh token is spent.
    with app.test_request_context("/app/", base_url=APP,
                                  headers={"Cookie": f"{sessions.COOKIE}={cookie.value}"}):
        g.ui_session = stale
        data = web.require_session()
    assert data["access_token"] == winner["access_token"] != stale["access_token"]
    # B's own refresh was refused (the token rotated), and no further token was issued.
    assert ehr.refresh[stale["refresh_token"]].revoked
    assert ehr.token_requests == ["authorization_code", "refresh_token"]


def test_a_refused_code_ends_in_a_page_not_a_crash(browser: FlaskClient, ehr: SmartEhr) -> None:
    answer = authorize(start(browser, ehr))
    ehr.codes.clear()  # the EHR no longer knows the code (expired, or used elsewhere)
    resp = browser.get("/app/callback", query_string=answer, base_url=APP)
    assert resp.status_code == 502
    assert "the token request failed (invalid_grant)" in resp.get_data(as_text=True)


@pytest.mark.parametrize("value", ["*", "ftp://ehr.example.org/fhir", "ehr.example.org"])
def test_smart_issuers_must_be_fhir_base_urls(value: str) -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_SMART_ISSUERS"):
        load_settings({"AUTH": "none", "SMART_ISSUERS": value})


def test_smart_settings_are_normalised() -> None:
    settings = load_settings({"AUTH": "none", "SMART_ISSUERS":
                              "https://a.example.org/fhir/, https://b.example.org/r4"})
    assert settings["SMART_ISSUERS"] == "https://a.example.org/fhir https://b.example.org/r4"
    assert "launch" in settings["SMART_SCOPE"].split() and settings["SMART_CLIENT_ID"] is None


FILL = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"}


def _page_responses(app: Flask) -> list[dict[str, Any]]:
    with app.extensions["mit_fhir"].store.transaction() as conn:
        return repository.search(conn, "QuestionnaireResponse", [
            Criterion("patient", "eq", (f"Patient/{PATIENT}",))])


def test_the_pages_fill_identifier_stores_a_fill_once(browser: FlaskClient, app: Flask,
                                                      ehr: SmartEhr) -> None:
    launched(browser, ehr)
    headers = {"X-CSRF-Token": csrf(browser)}
    url = "/app/api/forms/ders/responses"
    first = browser.post(url, json={**complete_ders(PATIENT), "identifier": FILL},
                         base_url=APP, headers=headers)
    # The retry is made later (the service sets another `authored`): still the same fill.
    retry = browser.post(url, json={**complete_ders(PATIENT), "identifier": FILL},
                         base_url=APP, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert first.json == retry.json
    [stored] = _page_responses(app)
    assert stored["id"] == first.json["response"] and stored["identifier"] == FILL
    other = browser.post(url, json=complete_ders(PATIENT), base_url=APP, headers=headers)
    assert other.status_code == 200 and other.json["response"] != stored["id"]


@pytest.mark.parametrize("identifier", [
    {"system": "urn:ietf:rfc:3986", "value": "fill-1"},
    {"system": "urn:example:other", "value": FILL["value"]},
    {"system": "urn:ietf:rfc:3986", "value": FILL["value"].upper()},
    {"system": "urn:ietf:rfc:3986", "value": FILL["value"] + "\n"},
    [FILL], "x", {"system": "urn:ietf:rfc:3986"},
])
def test_a_fill_identifier_not_made_by_the_page_is_refused(
        browser: FlaskClient, app: Flask, ehr: SmartEhr, identifier: Any) -> None:
    launched(browser, ehr)
    resp = browser.post("/app/api/forms/ders/responses",
                        json={**complete_ders(PATIENT), "identifier": identifier},
                        base_url=APP, headers={"X-CSRF-Token": csrf(browser)})
    assert resp.status_code == 400 and "urn:uuid" in resp.json["error"]
    assert _page_responses(app) == []


def test_the_submission_answers_with_the_alerts_of_the_response(browser: FlaskClient,
                                                                ehr: SmartEhr) -> None:
    """The form page's result panel gets the risk alerts: PHQ-9 item 9 above 0 is one."""
    launched(browser, ehr)
    qr = {k: v for k, v in sample("phq-9").items() if k not in ("subject", "author")}
    resp = browser.post("/app/api/forms/phq-9/responses", json=qr, base_url=APP,
                        headers={"X-CSRF-Token": csrf(browser)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    item9 = next(i for i in load_json(ROOT / "mit_fhir" / "questionnaires" / "phq-9.json")["item"]
                 if i["linkId"] == "phq-9-9")
    (mark,) = [e for e in item9["extension"] if e["url"] == EXT_CRITICAL_ANSWER]
    given = next(i for i in qr["item"] if i["linkId"] == "phq-9-9")["answer"][0]["valueCoding"]
    shown = next(o["valueCoding"]["display"] for o in item9["answerOption"]
                 if o["valueCoding"]["code"] == given["code"])
    assert resp.json["alerts"] == [{
        "level": "warning", "item": item9["text"], "answer": shown,
        "message": next(p["valueString"] for p in mark["extension"] if p["url"] == "message")}]
    ders = browser.post("/app/api/forms/ders/responses", json=complete_ders(PATIENT),
                        base_url=APP, headers={"X-CSRF-Token": csrf(browser)})
    assert ders.status_code == 200 and ders.json["alerts"] == []
