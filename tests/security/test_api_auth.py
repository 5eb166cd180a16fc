"""Every API call needs a bearer token from the configured issuer; scopes and patient context
decide what it may do. Tokens come from a real identity provider over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from tests.conftest import FHIR_JSON, sample
from tests.security.conftest import AUDIENCE, OTHER, PATIENT, Tokens, secured_settings
from tests.security.issuer import Issuer


def _qr(patient: str, name: str = "complete") -> dict[str, Any]:
    qr = sample("phq-9", name)
    qr["subject"] = {"reference": f"Patient/{patient}"}
    return qr


def _post(api: FlaskClient, qr: dict[str, Any], headers: dict[str, str]) -> Any:
    return api.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                    content_type=FHIR_JSON, headers=headers)


def _outcome(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == FHIR_JSON
    body: dict[str, Any] = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return body


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/fhir/metadata"])
def test_health_and_metadata_need_no_token(api: FlaskClient, path: str) -> None:
    assert api.get(path).status_code == 200


def test_metadata_tells_clients_how_to_authenticate(api: FlaskClient) -> None:
    security = api.get("/fhir/metadata").get_json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"


@pytest.mark.parametrize("path", [
    "/fhir/Questionnaire", "/fhir/Questionnaire/phq-9", "/fhir/Observation",
    "/fhir/QuestionnaireResponse?patient=Patient/pat-1", "/fhir/AuditEvent", "/sync/status",
    "/metrics",
])
def test_everything_else_needs_a_token(api: FlaskClient, path: str) -> None:
    resp = api.get(path)
    _outcome(resp, 401, "login")
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="mit-fhir"')


def test_a_token_from_the_issuer_is_accepted(api: FlaskClient, tokens: Tokens) -> None:
    resp = api.get("/fhir/Questionnaire/phq-9", headers=tokens("clinic-app"))
    assert resp.status_code == 200
    created = _post(api, _qr(PATIENT), tokens("clinic-app"))
    assert created.status_code == 201


@pytest.mark.parametrize(("header", "why"), [
    ("Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
    ("Bearer", "must be 'Bearer <token>'"),
    ("Bearer not-a-jwt", "not a JWT"),
])
def test_malformed_authorization_is_401(api: FlaskClient, header: str, why: str) -> None:
    body = _outcome(api.get("/fhir/Observation", headers={"Authorization": header}), 401, "login")
    assert why in body["issue"][0]["diagnostics"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_forged_expired_and_misaddressed_tokens_are_401(api: FlaskClient, issuer: Issuer) -> None:
    scope = {"scope": "user/*.cruds", "sub": "u1"}
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    cases = {
        "signing key": issuer.mint(scope, private=stranger, kid="someone-else"),
        "signature": issuer.mint(scope, private=stranger),  # the issuer's kid, another key
        "expired": issuer.mint({**scope, "iat": now - 900, "exp": now - 600}),
        "audience": issuer.mint({**scope, "aud": "https://other.example.org/fhir"}),
        "issuer": issuer.mint({**scope, "iss": "https://evil.example.org"}),
        "exp": issuer.mint({**scope, "exp": None}),
    }
    for why, token in cases.items():
        body = _outcome(api.get("/fhir/Observation", headers=_bearer(token)), 401, "login")
        assert why in body["issue"][0]["diagnostics"], why


def test_symmetric_and_unsigned_tokens_are_refused(api: FlaskClient, issuer: Issuer) -> None:
    import jwt

    claims = {"iss": issuer.url, "aud": AUDIENCE, "exp": int(time.time()) + 60,
              "scope": "user/*.cruds"}
    for token in (jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256"),
                  jwt.encode(claims, None, algorithm="none")):
        body = _outcome(api.get("/fhir/Observation", headers=_bearer(token)), 401, "login")
        assert "algorithm" in body["issue"][0]["diagnostics"]


def test_insufficient_scope_is_403(api: FlaskClient, tokens: Tokens) -> None:
    reader = tokens("reader-v1")
    assert api.get("/fhir/Observation", headers=reader).status_code == 200
    resp = _post(api, _qr(PATIENT), reader)
    body = _outcome(resp, 403, "forbidden")
    assert "QuestionnaireResponse.c" in body["issue"][0]["diagnostics"]
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    assert _outcome(api.get("/fhir/CarePlan", headers=reader), 403, "forbidden")


def test_narrowed_v2_scopes_grant_nothing(api: FlaskClient, tokens: Tokens) -> None:
    _outcome(api.get("/fhir/Observation", headers=tokens("narrowed")), 403, "forbidden")


def test_system_scopes(api: FlaskClient, tokens: Tokens) -> None:
    backend = tokens("backend")
    assert _post(api, _qr(OTHER), backend).status_code == 201
    assert api.get("/fhir/Observation", headers=backend).get_json()["total"] >= 1
    _outcome(api.post("/fhir/CarePlan", data="{}", content_type=FHIR_JSON, headers=backend),
             403, "forbidden")


def test_patient_context_reads_and_writes_only_its_patient(
        api: FlaskClient, tokens: Tokens) -> None:
    clinic, app = tokens("clinic-app"), tokens("patient-app")
    mine = _post(api, _qr(PATIENT), app)
    assert mine.status_code == 201
    _outcome(_post(api, _qr(OTHER), app), 403, "forbidden")
    theirs = _post(api, _qr(OTHER), clinic).get_json()

    assert api.get(f"/fhir/QuestionnaireResponse/{mine.get_json()['id']}",
                   headers=app).status_code == 200
    _outcome(api.get(f"/fhir/QuestionnaireResponse/{theirs['id']}", headers=app), 403,
             "forbidden")
    # A search without a patient is narrowed to the token's; naming another is refused.
    found = api.get("/fhir/Observation", headers=app).get_json()
    assert found["total"] >= 1
    assert {e["resource"]["subject"]["reference"] for e in found["entry"]} == {
        f"Patient/{PATIENT}"}
    assert api.get("/fhir/Observation", headers=clinic).get_json()["total"] > found["total"]
    _outcome(api.get(f"/fhir/Observation?patient={OTHER}", headers=app), 403, "forbidden")
    _outcome(api.get(f"/fhir/Observation?subject=Patient/{PATIENT},Patient/{OTHER}",
                     headers=app), 403, "forbidden")
    assert api.get(f"/fhir/Observation?subject=Patient/{PATIENT}",
                   headers=app).status_code == 200
    # $extract reads the patient's history (the baseline): the same rule applies.
    _outcome(api.post(f"/fhir/QuestionnaireResponse/{theirs['id']}/$extract", headers=app),
             403, "forbidden")
    assert api.post(f"/fhir/QuestionnaireResponse/{mine.get_json()['id']}/$extract",
                    headers=app).status_code == 200


def test_read_only_patient_token_cannot_write(api: FlaskClient, tokens: Tokens) -> None:
    _outcome(_post(api, _qr(PATIENT), tokens("patient-reader")), 403, "forbidden")


def test_patient_scopes_without_patient_context_are_403(api: FlaskClient,
                                                         tokens: Tokens) -> None:
    body = _outcome(api.get("/fhir/Observation", headers=tokens("patient-scopes-no-context")),
                    403, "forbidden")
    assert "patient context" in body["issue"][0]["diagnostics"]


def test_a_refused_write_stores_nothing(api: FlaskClient, tokens: Tokens) -> None:
    _post(api, _qr(OTHER), tokens("patient-app"))
    found = api.get(f"/fhir/QuestionnaireResponse?patient=Patient/{OTHER}",
                    headers=tokens("clinic-app")).get_json()
    assert found["total"] == 0


def test_metrics_take_the_metrics_token_or_a_system_scope(
        issuer: Issuer, database_url: str, tmp_path: Any, tokens: Tokens) -> None:
    secret = tmp_path / "metrics-token"
    secret.write_text("s3cret-metrics-token\n")
    app = create_app({"DATABASE_URL": database_url,
                      **secured_settings(issuer, METRICS_TOKEN_FILE=str(secret))})
    api = app.test_client()
    assert api.get("/metrics", headers=_bearer("s3cret-metrics-token")).status_code == 200
    _outcome(api.get("/metrics", headers=_bearer("s3cret-metrics-token-x")), 401, "login")
    _outcome(api.get("/metrics", headers=tokens("clinic-app")), 403, "forbidden")
    assert api.get("/metrics", headers=tokens("backend")).status_code == 200
    app.extensions["mit_fhir"].store.dispose()


def test_unreachable_issuer_is_503_not_401(database_url: str, tokens: Tokens,
                                           issuer: Issuer) -> None:
    app = create_app({"DATABASE_URL": database_url, "AUTH": "jwt",
                      "AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": AUDIENCE,
                      "AUTH_JWKS_URL": "http://127.0.0.1:9/jwks"})
    _outcome(app.test_client().get("/fhir/Observation", headers=tokens("clinic-app")),
             503, "transient")
    app.extensions["mit_fhir"].store.dispose()


def test_development_mode_answers_loopback_only(app: Flask) -> None:
    api = app.test_client()
    assert api.get("/fhir/Observation").status_code == 200
    far = api.get("/fhir/Observation", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    _outcome(far, 403, "forbidden")
    assert api.get("/fhir/Observation",
                   environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
