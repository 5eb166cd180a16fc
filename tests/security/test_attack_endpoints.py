"""CDS Hooks, the outcomes document, Task updates and the /app pages with patient A in context:
nothing of B's.

Bulk export is a command (`mit-fhir export`), not an HTTP route: no token reaches it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from mit_fhir.ui import sessions
from tests.security.attack import A, B, World, task

CDS = "/cds-services/mit-outcomes"
# context.patientId and /outcomes/<id> spellings of B, or of A then B.
IDS = [
    B, f"Patient/{B}", f"{B}\n", f"{A}\n", f"{A}/../{B}", f"{A},{B}", f"{A}?{B}", f"{A}#",
    f"{A}%2F..%2F{B}", f"{A}%3F", " " + A, A + " ", A + "\t", A.upper(), B.upper(),
    "p\u0430t-1", f"{A}\uff0f{B}", "..", ".", "", f"{A}\x00",
]
PATH_IDS = [B, f"{B}%0A", f"{A}%0A", f"{A}%2F..%2F{B}", f"{A}%252F..%252F{B}", f"{A},{B}",
            f"{A}%3F{B}", f"{A}%23", f"%20{A}", f"{A}%09", B.upper(), "p%D0%B0t-1",
            f"{A}%EF%BC%8F{B}", f"Patient%2F{B}", "..", "%2E%2E"]


def _hook(patient: Any) -> dict[str, Any]:
    return {"hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "hook": "patient-view",
            "context": {"userId": "Practitioner/example", "patientId": patient}}


@pytest.mark.parametrize("patient", [*IDS, 7, None, [A], {"id": A}])
def test_cds_hooks_give_a_no_cards_of_b(world: World, patient: Any) -> None:
    resp = world.client.post(CDS, data=json.dumps(_hook(patient)),
                             content_type="application/json", headers=world.headers())
    assert resp.status_code in (400, 403), (patient, resp.status_code)
    assert not world.leaks(resp.data)


def test_cds_hooks_refuse_a_trailing_newline_for_any_token(world: World) -> None:
    # `$` in the id pattern matched before a trailing newline: a clinician's call for "A\n"
    # reached the store with that id.
    resp = world.client.post(CDS, data=json.dumps(_hook(f"{A}\n")),
                             content_type="application/json",
                             headers=world.headers("user/*.cruds", None))
    assert resp.status_code == 400


def test_cds_hooks_answer_a_for_a(world: World) -> None:
    resp = world.client.post(CDS, data=json.dumps(_hook(A)), content_type="application/json",
                             headers=world.headers())
    assert resp.status_code == 200 and not world.leaks(resp.data)


@pytest.mark.parametrize("patient", PATH_IDS)
def test_the_outcomes_document_of_b_is_not_for_a(world: World, patient: str) -> None:
    resp = world.client.get(f"/outcomes/{patient}", headers=world.headers())
    assert resp.status_code in (400, 403, 404), (patient, resp.status_code)
    assert not world.leaks(resp.data)


def test_the_outcomes_document_of_a_is(world: World) -> None:
    resp = world.client.get(f"/outcomes/{A}", headers=world.headers())
    assert resp.status_code == 200 and resp.json["patient"] == A
    assert not world.leaks(resp.data)


@pytest.fixture
def app_session(world: World) -> Any:
    """A browser of the SMART-launched app, its session in context of patient A."""
    data = {"access_token": "opaque", "patient": A, "scope": "patient/*.cruds launch/patient",
            "sub": "u", "csrf": "csrf-token", "expires_at": time.time() + 3600,
            "endpoints": {"iss": "https://ehr.example.org/fhir"}}
    with world.app.extensions["mit_fhir"].store.transaction() as conn:
        token = sessions.create(conn, data, 3600)
    browser = world.app.test_client()
    browser.set_cookie(sessions.COOKIE, token, path="/app")
    return browser


@pytest.mark.parametrize("patient", PATH_IDS)
@pytest.mark.parametrize("page", ["/app/patients/{}/outcomes", "/app/api/patients/{}/outcomes"])
def test_app_pages_of_b_are_not_for_a(world: World, app_session: Any, page: str,
                                      patient: str) -> None:
    resp = app_session.get(page.format(patient))
    assert resp.status_code in (400, 403, 404), (page, patient, resp.status_code)
    assert not world.leaks(resp.data)


@pytest.mark.parametrize("subject", [f"Patient/{B}", f"Patient/{A}?/Patient/{B}", B])
def test_an_app_submission_is_always_for_the_session_patient(
        world: World, app_session: Any, subject: str) -> None:
    qr = {**{k: v for k, v in _phq9().items() if k != "id"}, "subject": {"reference": subject}}
    clinician = world.headers("user/*.cruds", None)
    before = world.client.get(f"/fhir/QuestionnaireResponse?patient={B}", headers=clinician)
    resp = app_session.post("/app/api/forms/phq-9/responses", json=qr,
                            headers={"X-CSRF-Token": "csrf-token"})
    assert resp.status_code == 200 and not world.leaks(resp.data), resp.json
    after = world.client.get(f"/fhir/QuestionnaireResponse?patient={B}", headers=clinician)
    assert after.json["total"] == before.json["total"]
    stored = world.client.get(f"/fhir/QuestionnaireResponse/{resp.json['response']}",
                              headers=clinician)
    assert stored.json["subject"] == {"reference": f"Patient/{A}"}


def _phq9() -> dict[str, Any]:
    from tests.conftest import sample

    return sample("phq-9")


# Task updates (PUT /fhir/Task/<id>, If-Match): A's token changes nothing of B's.
FHIR = {"Content-Type": "application/fhir+json"}


def _clinician(world: World) -> dict[str, str]:
    return world.headers("user/*.cruds", None)


def _task(world: World, patient: str, form: str = "phq-9") -> dict[str, Any]:
    """A new Task of `patient` (created by the clinician), as stored."""
    resp = world.client.post("/fhir/Task", json=task(f"Patient/{patient}", form),
                             headers={**_clinician(world), **FHIR})
    assert resp.status_code == 201, resp.json
    created: dict[str, Any] = resp.json
    return created


def _put(world: World, body: dict[str, Any], headers: dict[str, str],
         rid: str | None = None) -> Any:
    version = body.get("meta", {}).get("versionId", "1")
    return world.client.put(f"/fhir/Task/{rid or body['id']}", json=body, headers={
        **headers, **FHIR, "If-Match": f'W/"{version}"'})


def _unchanged(world: World, stored: dict[str, Any]) -> bool:
    now = world.client.get(f"/fhir/Task/{stored['id']}", headers=_clinician(world)).json
    return bool(now["meta"]["versionId"] == stored["meta"]["versionId"])


@pytest.mark.parametrize("status, extra", [
    ("in-progress", {}), ("cancelled", {"statusReason": {"text": "x"}}), ("on-hold", {}),
])
@pytest.mark.parametrize("spelling", ["as stored", f"for Patient/{A}", "under A's id"])
def test_a_cannot_update_bs_task(world: World, status: str, extra: dict[str, Any],
                                 spelling: str) -> None:
    theirs, mine = _task(world, B), _task(world, A)
    body = {**theirs, "status": status, **extra}
    if spelling == f"for Patient/{A}":
        body["for"] = {"reference": f"Patient/{A}"}
    rid = mine["id"] if spelling == "under A's id" else None
    resp = _put(world, body, world.headers(), rid)
    assert resp.status_code in (400, 403, 422), (spelling, resp.status_code)
    assert not world.leaks(resp.data)
    assert _unchanged(world, theirs) and _unchanged(world, mine)


def test_a_cannot_move_as_task_to_b(world: World) -> None:
    mine = _task(world, A)
    for spelling in (f"Patient/{B}", B, f"Patient/{A}/../{B}"):
        resp = _put(world, {**mine, "status": "in-progress", "for": {"reference": spelling}},
                    world.headers())
        assert resp.status_code in (400, 403, 422), spelling
    assert _unchanged(world, mine)


def test_a_updates_as_task(world: World) -> None:
    mine = _task(world, A)
    resp = _put(world, {**mine, "status": "in-progress"}, world.headers())
    assert resp.status_code == 200 and resp.json["status"] == "in-progress"


def _patient_app(world: World) -> dict[str, str]:
    """The patient's own app: fhirUser Patient/A, patient context A."""
    return world.headers("patient/*.cruds", A, fhir_user=f"Patient/{A}")


def test_the_patients_own_app_creates_no_task(world: World) -> None:
    resp = world.client.post("/fhir/Task", json=task(f"Patient/{A}"),
                             headers={**_patient_app(world), **FHIR})
    assert resp.status_code == 403 and resp.json["resourceType"] == "OperationOutcome"


def test_the_patients_own_app_only_starts_and_completes_its_own_tasks(world: World) -> None:
    mine, rated = _task(world, A), _task(world, A, "bpd-criteria")  # rated: the clinician's
    for body in ({**mine, "status": "cancelled", "statusReason": {"text": "no"}},
                 {**mine, "status": "on-hold"}, {**rated, "status": "in-progress"}):
        resp = _put(world, body, _patient_app(world))
        assert resp.status_code == 403, body["status"]
    assert _unchanged(world, mine) and _unchanged(world, rated)
    started = _put(world, {**mine, "status": "in-progress"}, _patient_app(world))
    assert started.status_code == 200, started.json
    qr = {k: v for k, v in _phq9().items() if k != "id"}
    qr["subject"] = {"reference": f"Patient/{A}"}
    response = world.client.post("/fhir/QuestionnaireResponse", json=qr,
                                 headers={**_patient_app(world), **FHIR})
    assert response.status_code == 201
    output = [{"type": {"coding": [{"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp",
                                    "code": "questionnaire-response"}]},
               "valueReference": {"reference": f"QuestionnaireResponse/{response.json['id']}"}}]
    done = _put(world, {**started.json, "status": "completed", "output": output},
                _patient_app(world))
    assert done.status_code == 200 and done.json["status"] == "completed"


def test_the_patients_own_app_cannot_complete_with_bs_response(world: World) -> None:
    mine = _task(world, A)
    for rid in sorted(world.ids[B]["QuestionnaireResponse"]):
        output = [{"type": {"coding": [{"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp",
                                        "code": "questionnaire-response"}]},
                   "valueReference": {"reference": f"QuestionnaireResponse/{rid}"}}]
        resp = _put(world, {**mine, "status": "completed", "output": output},
                    _patient_app(world))
        assert resp.status_code == 422 and not world.leaks(resp.data), rid
    assert _unchanged(world, mine)
