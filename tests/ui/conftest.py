"""Fixtures of the SMART page tests: the test EHR (Authlib + Medplum), the app on loopback,
and Debian's chromium driven by Playwright.

`app_server()` is the ONE place the app under test is started (a werkzeug server thread on
127.0.0.1, inbound auth `jwt` so that the pages are shown to work without development mode).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from mit_fhir.app import create_app
from tests.conftest import ROOT, drop_database, fresh_database_url
from tests.servers import fixtures
from tests.ui.smart_ehr import SmartEhr

medplum_server = fixtures.medplum_server
CHROMIUM = os.environ.get("MIT_FHIR_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "screenshots"
CLIENT_ID = "mit-fhir-app"
SCOPE = ("launch launch/patient openid fhirUser patient/*.rs patient/QuestionnaireResponse.cu "
         "user/*.rs offline_access")
# The patient launch's default (MIT_FHIR_SMART_PATIENT_SCOPE); the app is registered for both.
PATIENT_SCOPE = ("launch/patient openid fhirUser patient/Task.rus "
                 "patient/QuestionnaireResponse.crus offline_access")
REGISTERED_SCOPE = f"{SCOPE} {PATIENT_SCOPE}"


@pytest.fixture(scope="module")
def ehr(medplum_server: fixtures.FhirTestServer) -> Iterator[SmartEhr]:
    server = SmartEhr(fhir_backend=medplum_server.base_url).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class AppServer:
    """The app under test on 127.0.0.1 and the EHR it is registered with."""

    url: str
    app: Flask
    ehr: SmartEhr


@pytest.fixture(scope="module")
def app_server(ehr: SmartEhr, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    yield from run_app_server(ehr, tmp_path_factory.mktemp("ui-app"))


def run_app_server(ehr: SmartEhr, tmp: Path, **settings: Any) -> Iterator[AppServer]:
    """Start the app (a real HTTP server thread) registered as a confidential SMART client."""
    secret = tmp / "client-secret"
    secret.write_text("s3cret-of-the-app\n")
    url = fresh_database_url(tmp)
    config = {"DATABASE_URL": url, "AUTH": "jwt", "AUTH_ISSUER": ehr.iss,
              "AUTH_AUDIENCE": "https://mit.example.org/fhir", "SMART_CLIENT_ID": CLIENT_ID,
              "SMART_CLIENT_SECRET_FILE": str(secret), "SMART_ISSUERS": ehr.iss,
              "SMART_SCOPE": SCOPE, **settings}
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    ehr.register(CLIENT_ID, f"{base}/app/callback", REGISTERED_SCOPE, secret="s3cret-of-the-app")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield AppServer(base, app, ehr)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        app.extensions["mit_fhir"].store.dispose()
        drop_database(url)


def create_in_ehr(ehr_backend: str, resource: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(f"{ehr_backend}/{resource['resourceType']}", json=resource,
                         headers={"Content-Type": "application/fhir+json"}, timeout=10)
    resp.raise_for_status()
    created: dict[str, Any] = resp.json()
    return created


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"no chromium at {CHROMIUM}: run `make chromium` (Debian's package)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Debian's chromium, never a browser downloaded by Playwright.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def patient_user(app_server: AppServer) -> Iterator[Any]:
    """Sign the test EHR's user in as a patient for one test, the clinician again after."""
    try:
        yield app_server.ehr.sign_in_patient
    finally:
        app_server.ehr.sign_in_clinician()
