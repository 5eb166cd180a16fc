"""Hostile schedule CarePlans (verify issue 14): every bad one is a 4xx OperationOutcome with
nothing stored, never a 500; a good run stays bounded."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from mit_fhir.fhir.schedule import CATEGORY_CODE, CATEGORY_SYSTEM
from mit_fhir.usecases import schedules
from mit_fhir.usecases.tasks import tasks_of
from tests.conftest import FHIR_JSON
from tests.security.conftest import PATIENT, Tokens

DERS = "https://mit-fhir.org/fhir/Questionnaire/ders"


def _plan(repeat: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan", "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY_CODE}]}],
        "subject": {"reference": f"Patient/{PATIENT}"},
        "author": {"reference": "Practitioner/dr-1"},
        "activity": [{"detail": {"kind": "Task", "instantiatesCanonical": [DERS],
                                 "status": "scheduled",
                                 "scheduledTiming": {"repeat": copy.deepcopy(repeat)}}}]}


def _count(api: FlaskClient, headers: dict[str, str], rtype: str) -> int:
    found = api.get(f"/fhir/{rtype}?patient={PATIENT}&_count=500", headers=headers).get_json()
    return len(found.get("entry", []))


HOSTILE = {
    "period 3,000,000 days (past year 9999)": {
        "boundsPeriod": {"start": "2020-01-01"}, "frequency": 1, "period": 3_000_000,
        "periodUnit": "d"},
    "period 10^9 months": {
        "boundsPeriod": {"start": "2020-01-01"}, "frequency": 1, "period": 10**9,
        "periodUnit": "mo"},
    "period 10^30 weeks": {
        "boundsPeriod": {"start": "2020-01-01"}, "frequency": 1, "period": 10**30,
        "periodUnit": "wk"},
    "start 9999-12-31, every day, started": {
        "boundsPeriod": {"start": "0001-01-01", "end": "9999-12-31"}, "frequency": 1,
        "period": 1, "periodUnit": "d", "count": 10**9},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_schedule_is_a_4xx_or_bounded(api: FlaskClient, tokens: Tokens,
                                                 name: str) -> None:
    clinic = tokens("clinic-app")
    before = (_count(api, clinic, "CarePlan"), _count(api, clinic, "Task"))
    resp = api.post("/fhir/CarePlan", json=_plan(HOSTILE[name]), headers=clinic,
                    content_type=FHIR_JSON)
    assert resp.status_code != 500 and resp.status_code < 500, (name, resp.status_code,
                                                                 resp.get_data()[:300])
    if resp.status_code >= 400:
        assert resp.get_json()["resourceType"] == "OperationOutcome"
        assert (_count(api, clinic, "CarePlan"), _count(api, clinic, "Task")) == before
    else:
        # Stored: one run creates at most one Task for it, and later runs keep working.
        assert _count(api, clinic, "Task") - before[1] <= 1
        app: Any = api.application
        schedules.run(app.extensions["mit_fhir"], datetime.now(UTC))
        assert _count(api, clinic, "Task") - before[1] <= 1



def test_one_schedule_post_does_not_create_thousands_of_tasks(api: FlaskClient,
                                                              tokens: Tokens) -> None:
    """A schedule of 2,000 activities, each daily since 2020, within the body limit: one POST
    creates a Task per activity inside the request (thousands of writes holding a worker).
    Secure: a bound on the activities of one schedule (4xx), or on what one run creates."""
    import time

    clinic = tokens("clinic-app")
    one = _plan({"boundsPeriod": {"start": "2020-01-01"}, "frequency": 1, "period": 1,
                 "periodUnit": "d"})
    plan = {**one, "activity": one["activity"] * 2000}
    began = time.monotonic()
    resp = api.post("/fhir/CarePlan", json=plan, headers=clinic, content_type=FHIR_JSON)
    took = time.monotonic() - began
    app: Any = api.application
    with app.extensions["mit_fhir"].store.transaction() as conn:
        made = len(tasks_of(conn, PATIENT))
    assert resp.status_code >= 400 or made <= 100, (resp.status_code, made, f"{took:.1f}s")


@pytest.mark.parametrize(("repeat", "element"), [
    ({"boundsPeriod": {"start": "2020-01-01"}, "frequency": 1, "period": 3_000_000,
      "periodUnit": "d"}, "CarePlan.activity[0].detail.scheduledTiming.repeat.period"),
    ({"boundsPeriod": {"start": "1899-12-31"}, "frequency": 1, "period": 1,
      "periodUnit": "wk"}, "CarePlan.activity[0].detail.scheduledTiming.repeat.boundsPeriod.start"),
])
def test_a_schedule_out_of_bounds_is_a_422_naming_the_element(
        api: FlaskClient, tokens: Tokens, repeat: dict[str, Any], element: str) -> None:
    resp = api.post("/fhir/CarePlan", json=_plan(repeat), headers=tokens("clinic-app"),
                    content_type=FHIR_JSON)
    assert resp.status_code == 422, resp.get_json()
    assert element in [e for i in resp.get_json()["issue"] for e in i.get("expression", [])]


def test_a_form_listed_twice_on_one_schedule_is_a_422(api: FlaskClient,
                                                       tokens: Tokens) -> None:
    clinic = tokens("clinic-app")
    one = _plan({"boundsPeriod": {"start": "2020-01-01"}, "frequency": 1, "period": 1,
                 "periodUnit": "wk"})
    before = _count(api, clinic, "CarePlan")
    resp = api.post("/fhir/CarePlan", json={**one, "activity": one["activity"] * 2},
                    headers=clinic, content_type=FHIR_JSON)
    assert resp.status_code == 422, resp.get_json()
    assert _count(api, clinic, "CarePlan") == before
