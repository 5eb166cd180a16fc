"""Support of the patient-page tests: Tasks seeded straight into the app's store, a patient
created in the test EHR, and the portal launch a patient makes in chromium."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from mit_fhir.fhir import task as fhir_task
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.usecases.tasks import store_new
from tests.conftest import load_json
from tests.ui.conftest import AppServer, create_in_ehr

DERS = load_json(QUESTIONNAIRE_DIR / "ders.json")
DERS_URL = f"{DERS['url']}|{DERS['version']}"


def seed_task(app: Flask, patient: str, questionnaire: str, status: str = "requested",
              owner: str | None = None, due: str = "2099-01-31T00:00:00Z",
              start: str = "2020-01-01T00:00:00Z") -> str:
    """Store one Task for `patient` (owned by the patient unless `owner`); return its id."""
    task = fhir_task.questionnaire_task(
        questionnaire, patient, {"reference": "Practitioner/dr-rossi"},
        "2026-01-01T09:00:00Z", start, due,
        owner={"reference": owner} if owner else None)
    task["status"] = status
    with app.app_context():
        context = app.extensions["mit_fhir"]
        with context.store.transaction() as conn:
            stored = store_new(conn, context, task)
    return str(stored["id"])


def new_patient(medplum: Any, family: str) -> str:
    """A Patient created in the test EHR (Medplum); its id."""
    return str(create_in_ehr(medplum.base_url, {"resourceType": "Patient",
                                                 "name": [{"family": family}]})["id"])


def portal_launch(page: Any, app_server: AppServer, patient: str) -> None:
    """The patient opens the app from the test EHR's portal and approves; on /app/my after."""
    page.goto(f"{app_server.ehr.url}/portal?patient={patient}&app={app_server.url}")
    page.click("#launch")
    page.click("button:has-text('Approve')")
    page.wait_for_url(re.compile(re.escape(app_server.url) + r"/app/my"))
