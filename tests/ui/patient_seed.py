"""Tasks seeded straight into the app's store for the patient-page tests."""

from __future__ import annotations

from flask import Flask

from mit_fhir.fhir import task as fhir_task
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.tasks import store_new
from tests.conftest import load_json

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
