"""Schedules over the CarePlan endpoint: POST validates one (its due Tasks made with it), PUT
with If-Match only ends one; every refusal an OperationOutcome, nothing half-stored."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from mit_fhir.fhir.schedule import CATEGORY_CODE, CATEGORY_SYSTEM
from mit_fhir.usecases.tasks import tasks_of
from tests.conftest import FHIR_JSON, FhirActions, stored_counts

DERS = "https://mit-fhir.org/fhir/Questionnaire/ders"
TODAY = datetime.now(UTC).date().isoformat()


def _schedule(**changes: Any) -> dict[str, Any]:
    plan = {
        "resourceType": "CarePlan", "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY_CODE}]}],
        "subject": {"reference": "Patient/p1"}, "author": {"reference": "Practitioner/dr"},
        "activity": [{"detail": {
            "kind": "Task", "instantiatesCanonical": [DERS], "status": "scheduled",
            "scheduledTiming": {"repeat": {"boundsPeriod": {"start": TODAY}, "frequency": 1,
                                           "period": 3, "periodUnit": "mo"}}}}],
    }
    plan.update(changes)
    return plan


def _put(fhir: FhirActions, plan: dict[str, Any], etag: str | None) -> Any:
    headers = {"If-Match": etag} if etag else {}
    return fhir.client.put(f"/fhir/CarePlan/{plan['id']}", json=plan, headers=headers,
                           content_type=FHIR_JSON)


def _tasks(fhir: FhirActions) -> list[dict[str, Any]]:
    # Read from the store: the Task endpoint is another module's (and this one's subject is
    # what the schedule stored).
    app: Any = fhir.client.application
    with app.extensions["mit_fhir"].store.transaction() as conn:
        return tasks_of(conn, "p1")


def test_a_posted_schedule_is_stored_with_its_first_task(fhir: FhirActions) -> None:
    resp = fhir.post("/fhir/CarePlan", _schedule())
    assert resp.status_code == 201, resp.get_json()
    plan = resp.get_json()
    assert resp.headers["ETag"] == 'W/"1"'
    task, = _tasks(fhir)
    assert task["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
    assert task["restriction"]["period"]["start"] == TODAY and task["status"] == "requested"


def _set_period(plan: dict[str, Any], value: Any) -> None:
    plan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["period"] = value


@pytest.mark.parametrize(("change", "where"), [
    (lambda p: _set_period(p, 0), "scheduledTiming.repeat.period"),
    (lambda p: p["activity"][0]["detail"].update(instantiatesCanonical=["urn:x:unknown"]),
     "detail.instantiatesCanonical"),
    (lambda p: p.pop("author"), "CarePlan.author"),
    (lambda p: p.update(status="revoked"), "CarePlan.status"),
    (lambda p: p.update(intent="order"), "CarePlan.intent"),
])
def test_a_schedule_that_cannot_run_is_a_422_naming_the_element(
        app: Flask, fhir: FhirActions, change: Any, where: str) -> None:
    plan = _schedule()
    change(plan)
    before = stored_counts(app)
    resp = fhir.post("/fhir/CarePlan", plan)
    assert resp.status_code == 422, resp.get_json()
    outcome = resp.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(e.endswith(where) for i in outcome["issue"] for e in i.get("expression", []))
    assert stored_counts(app) == before


def test_put_revokes_a_schedule_with_if_match_only(app: Flask, fhir: FhirActions) -> None:
    plan = fhir.post("/fhir/CarePlan", _schedule()).get_json()
    revoked = {**copy.deepcopy(plan), "status": "revoked"}
    assert _put(fhir, revoked, None).status_code == 412
    assert _put(fhir, revoked, 'W/"7"').status_code == 412
    before = stored_counts(app)
    edited = copy.deepcopy(revoked)
    _set_period(edited, 1)
    assert _put(fhir, edited, 'W/"1"').status_code == 422
    assert _put(fhir, {**plan, "status": "on-hold"}, 'W/"1"').status_code == 422
    assert _put(fhir, {**revoked, "id": "other"}, 'W/"1"').status_code in (400, 404)
    assert stored_counts(app) == before
    resp = _put(fhir, revoked, 'W/"1"')
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "revoked" and resp.headers["ETag"] == 'W/"2"'
    task, = _tasks(fhir)
    assert task["status"] == "cancelled"  # not started: withdrawn with its schedule
    assert _put(fhir, {**revoked, "status": "completed"}, 'W/"2"').status_code == 409


def test_put_completes_a_schedule_and_leaves_its_open_task(fhir: FhirActions) -> None:
    plan = fhir.post("/fhir/CarePlan", _schedule()).get_json()
    resp = _put(fhir, {**plan, "status": "completed"}, '"1"')
    assert resp.status_code == 200 and resp.get_json()["status"] == "completed"
    assert [t["status"] for t in _tasks(fhir)] == ["requested"]


def test_put_is_for_schedules_only(fhir: FhirActions) -> None:
    other = fhir.post("/fhir/CarePlan", {"resourceType": "CarePlan", "status": "active",
                                         "intent": "plan",
                                         "subject": {"reference": "Patient/p1"}}).get_json()
    resp = _put(fhir, {**other, "status": "revoked"}, 'W/"1"')
    assert resp.status_code == 405 and resp.get_json()["resourceType"] == "OperationOutcome"
    assert fhir.client.put("/fhir/CarePlan/none", json={**_schedule(), "id": "none"},
                           headers={"If-Match": 'W/"1"'}).status_code == 404
