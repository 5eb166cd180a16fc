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
