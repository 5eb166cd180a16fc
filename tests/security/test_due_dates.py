"""One Task dated just before year 1 in UTC (accepted with 201) and the due marks of issue 14:
the patient's outcomes document and CDS card must still answer (verify issue 14)."""

from __future__ import annotations

import json

from tests.security.attack import A, World, task

FHIR = {"Content-Type": "application/fhir+json"}
# Both FHIR dateTimes are valid; in UTC they are 0001-01-19T10:00:00 and 0000-12-31T10:00:00.
POISON = {"restriction": {"period": {"start": "0001-01-01T00:00:00+14:00",
                                     "end": "0001-01-20T00:00:00+14:00"}}}


def test_a_task_due_in_year_1_utc_does_not_break_the_outcomes_and_cds(world: World) -> None:
    clinician = world.headers("user/*.cruds", None, fhir_user="Practitioner/dr-1")
    assert world.client.get(f"/outcomes/{A}", headers=clinician).status_code == 200
    made = world.client.post("/fhir/Task", json={**task(f"Patient/{A}"), **POISON},
                             headers={**clinician, **FHIR})
    if made.status_code >= 400:
        return  # refused at the door: fine
    outcomes = world.client.get(f"/outcomes/{A}", headers=clinician)
    hook = {"hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "hook": "patient-view",
            "context": {"userId": "Practitioner/dr-1", "patientId": A}}
    card = world.client.post("/cds-services/mit-outcomes", data=json.dumps(hook),
                             content_type="application/json", headers=clinician)
    assert (outcomes.status_code, card.status_code) == (200, 200), (
        made.json["restriction"], outcomes.status_code, card.status_code, outcomes.data[:200])


def test_a_stored_task_dated_in_year_1_utc_leaves_the_due_marks_answering(world: World) -> None:
    """The API now refuses such a Task; one already stored (an older version, an import)
    must still not break the outcomes document or the CDS card (due.py reads any date)."""
    from mit_fhir.fhir.task import questionnaire_task
    from mit_fhir.store.repository import new_id
    from mit_fhir.usecases import tasks

    context = world.app.extensions["mit_fhir"]
    poison = questionnaire_task("https://mit-fhir.org/fhir/Questionnaire/phq-9|1.0.0", A,
                                {"reference": "Practitioner/dr-1"}, "2026-01-01T00:00:00Z",
                                POISON["restriction"]["period"]["start"],
                                POISON["restriction"]["period"]["end"], tid=new_id())
    with world.app.app_context(), context.store.transaction() as conn:
        tasks.store_new(conn, context, poison)
    clinician = world.headers("user/*.cruds", None, fhir_user="Practitioner/dr-1")
    hook = {"hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "hook": "patient-view",
            "context": {"userId": "Practitioner/dr-1", "patientId": A}}
    outcomes = world.client.get(f"/outcomes/{A}", headers=clinician)
    card = world.client.post("/cds-services/mit-outcomes", data=json.dumps(hook),
                             content_type="application/json", headers=clinician)
    assert (outcomes.status_code, card.status_code) == (200, 200), outcomes.data[:200]
