"""Security headers on every answer; CORS only for the configured origins."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from mit_fhir.app import create_app

ORIGIN = "https://ehr.example.org"


@pytest.fixture
def cors_app(database_url: str) -> Flask:
    return create_app({"DATABASE_URL": database_url, "CORS_ORIGINS": ORIGIN,
                       "FRAME_ANCESTORS": "https://ehr.example.org"})


@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/Observation", "/nowhere"])
def test_security_headers(app: Flask, path: str) -> None:
    resp = app.test_client().get(path)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_hsts_behind_https(database_url: str) -> None:
    app = create_app({"DATABASE_URL": database_url, "BASE_URL": "https://mit.example.org/fhir"})
    resp = app.test_client().get("/fhir/metadata")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_frame_ancestors_come_from_configuration(cors_app: Flask) -> None:
    resp = cors_app.test_client().get("/fhir/metadata")
    assert "frame-ancestors https://ehr.example.org" in resp.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in resp.headers


def test_cors_for_a_configured_origin(cors_app: Flask) -> None:
    api = cors_app.test_client()
    resp = api.get("/fhir/Observation", headers={"Origin": ORIGIN})
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in resp.headers
    preflight = api.options("/fhir/QuestionnaireResponse", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_no_cors_for_other_origins(cors_app: Flask) -> None:
    api = cors_app.test_client()
    for origin in ("https://evil.example.org", "null", "https://ehr.example.org.evil.net"):
        resp = api.get("/fhir/Observation", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in resp.headers, origin


def test_preflight_needs_no_token_but_the_request_does(
        database_url: str, tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": database_url, "CORS_ORIGINS": ORIGIN, "AUTH": "jwt",
                      "AUTH_ISSUER": "http://127.0.0.1:9", "AUTH_AUDIENCE": "x"})
    api = app.test_client()
    preflight = api.options("/fhir/Observation", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert api.get("/fhir/Observation", headers={"Origin": ORIGIN}).status_code == 401
