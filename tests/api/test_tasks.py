"""/fhir/Task: create with the SDC shape checked, read, search, and versioned status updates."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.fhir import task as shape
from tests.conftest import FHIR_JSON, FhirActions, sample, stored_counts

PHQ9 = "https://mit-fhir.org/fhir/Questionnaire/phq-9"
BPD = "https://mit-fhir.org/fhir/Questionnaire/bpd-criteria"


def task_body(form: str = PHQ9, patient: str = "p1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task", "status": "requested", "intent": "order",
        "code": {"coding": [{"system": shape.SDC_TEMP, "code": shape.CODE}]},
        "for": {"reference": f"Patient/{patient}"},
        "requester": {"reference": "Practitioner/dr-a"},
        "input": [{"type": {"coding": [{"system": shape.SDC_TEMP, "code": "questionnaire"}]},
                   "valueCanonical": form}],
        "restriction": {"period": {"start": "2026-01-01", "end": "2026-01-15"}},
    }
    body.update(extra)
    return body


def created(fhir: FhirActions, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = fhir.post("/fhir/Task", body or task_body())
    assert resp.status_code == 201, resp.get_json()
    task: dict[str, Any] = resp.get_json()
    return task


def put(client: FlaskClient, task: dict[str, Any], version: str | None = None) -> Any:
    headers = {} if version is None else {"If-Match": f'W/"{version}"'}
    return client.put(f"/fhir/Task/{task['id']}", data=json.dumps(task),
                      content_type=FHIR_JSON, headers=headers)


def moved(task: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    return {**copy.deepcopy(task), "status": status, **extra}


def test_create_assigns_id_identifier_profile_and_the_owner_by_the_form(
        fhir: FhirActions, client: FlaskClient) -> None:
    resp = fhir.post("/fhir/Task", task_body(identifier=[{"system": shape.IDENTIFIER_SYSTEM,
                                                          "value": "client-chosen"}]))
    assert resp.status_code == 201
    task = resp.get_json()
    assert resp.headers["ETag"] == 'W/"1"'
    assert resp.headers["Location"].endswith(f"/fhir/Task/{task['id']}/_history/1")
    assert task["identifier"] == [{"system": shape.IDENTIFIER_SYSTEM, "value": task["id"]}]
    assert task["meta"]["profile"] == [shape.PROFILE]
    assert task["owner"] == {"reference": "Patient/p1"}  # PHQ-9 is a self-report form
    assert shape.questionnaire_of(task) == PHQ9 + "|1.0.0"
    read = client.get(f"/fhir/Task/{task['id']}")
    assert read.status_code == 200 and read.get_json() == task
    rated = created(fhir, task_body(BPD))
    assert rated["owner"] == {"reference": "Practitioner/dr-a"}


def test_create_defaults_the_period_to_now_and_the_window(fhir: FhirActions) -> None:
    body = task_body(form="Questionnaire/phq-9")
    del body["restriction"]
    task = created(fhir, body)
    start, end = shape.period(task)
    assert start and end and end > start
    assert shape.questionnaire_of(task) == PHQ9 + "|1.0.0"  # the relative form, resolved


def _without(name: str) -> dict[str, Any]:
    body = task_body()
    del body[name]
    return body


@pytest.mark.parametrize("why, body, status", [
    ("not a complete-questionnaire Task", task_body(code={"text": "x"}), 422),
    ("no questionnaire input", task_body(input=[]), 422),
    ("two questionnaire inputs", task_body(input=task_body()["input"] * 2), 422),
    ("a form we do not serve", task_body(form="https://example.org/Questionnaire/x"), 422),
    ("a focus (sdc-t1)", task_body(focus={"reference": "Questionnaire/phq-9"}), 422),
    ("no for", _without("for"), 422),
    ("for another type", task_body(**{"for": {"reference": "Group/g1"}}), 422),
    ("for an absolute URL", task_body(**{"for": {"reference":
                                                 "https://other.example/fhir/Patient/p1"}}), 422),
    ("completed at once", task_body(status="completed"), 422),
    ("a proposal", task_body(intent="proposal"), 422),
    ("a period backwards", task_body(restriction={"period": {"start": "2026-02-01",
                                                             "end": "2026-01-01"}}), 422),
    ("an output", task_body(output=[{"type": {"text": "x"},
                                     "valueReference": {"reference": "QuestionnaireResponse/1"}}]),
     422),
    ("not FHIR", task_body(status=7), 400),
    ("an unknown element", task_body(colour="red"), 400),
])
def test_create_refuses_what_is_not_an_sdc_task(app: Flask, fhir: FhirActions, why: str,
                                                body: dict[str, Any], status: int) -> None:
    before = stored_counts(app)
    resp = fhir.post("/fhir/Task", body)
    assert resp.status_code == status, why
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    assert stored_counts(app) == before, why


def test_create_without_a_requester_needs_the_callers_fhir_user(app: Flask,
                                                                fhir: FhirActions) -> None:
    resp = fhir.post("/fhir/Task", _without("requester"))  # development mode: no fhirUser
    assert resp.status_code == 422
    assert "Task.requester" in json.dumps(resp.get_json())


def test_search_by_patient_status_owner_questionnaire_and_period(
        fhir: FhirActions, client: FlaskClient) -> None:
    due = created(fhir)
    later = created(fhir, task_body(restriction={"period": {"start": "2026-03-01",
                                                            "end": "2026-03-15"}}))
    rated = created(fhir, task_body(BPD))
    other = created(fhir, task_body(patient="p2"))

    def ids(query: str) -> set[str]:
        resp = client.get(f"/fhir/Task?{query}")
        assert resp.status_code == 200, resp.get_json()
        return {e["resource"]["id"] for e in resp.get_json().get("entry", [])}

    assert ids("patient=Patient/p1") == {due["id"], later["id"], rated["id"]}
    assert ids("patient=p2") == {other["id"]}
    assert ids("patient=p1&owner=Patient/p1") == {due["id"], later["id"]}
    assert ids(f"patient=p1&questionnaire={BPD}") == {rated["id"]}
    assert ids("patient=p1&period=eb2026-02-01") == {due["id"], rated["id"]}  # overdue then
    assert ids("patient=p1&period=le2026-02-01") == {due["id"], rated["id"]}  # available then
    assert ids("patient=p1&status=requested,in-progress") == {due["id"], later["id"],
                                                             rated["id"]}
    assert ids(f"identifier={shape.IDENTIFIER_SYSTEM}|{due['id']}") == {due["id"]}


def test_an_update_moves_the_status_with_its_version(client: FlaskClient,
                                                     fhir: FhirActions) -> None:
    task = created(fhir)
    resp = put(client, moved(task, "in-progress"), "1")
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == 'W/"2"'
    started = resp.get_json()
    assert started["status"] == "in-progress" and "start" in started["executionPeriod"]
    assert put(client, moved(task, "on-hold"), "1").status_code == 412  # stale
    assert put(client, moved(started, "on-hold")).status_code == 412  # no If-Match
    same = put(client, started, "2")
    assert same.status_code == 200 and same.headers["ETag"] == 'W/"2"'  # nothing moved
    cancel = put(client, moved(started, "cancelled", statusReason={"text": "moved away"}), "2")
    assert cancel.status_code == 200 and cancel.get_json()["status"] == "cancelled"
    again = put(client, moved(cancel.get_json(), "in-progress"), "3")
    assert again.status_code == 409 and again.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("why, change", [
    ("another patient", {"for": {"reference": "Patient/p2"}}),
    ("another form", {"input": task_body(BPD)["input"]}),
    ("another due date", {"restriction": {"period": {"start": "2026-01-01",
                                                     "end": "2026-12-31"}}}),
    ("another owner", {"owner": {"reference": "Practitioner/dr-b"}}),
    ("a focus", {"focus": {"reference": "Questionnaire/phq-9"}}),
])
def test_every_element_but_the_status_is_immutable(app: Flask, client: FlaskClient,
                                                   fhir: FhirActions, why: str,
                                                   change: dict[str, Any]) -> None:
    task = created(fhir)
    before = stored_counts(app)
    resp = put(client, {**moved(task, "in-progress"), **change}, "1")
    assert resp.status_code == 422, why
    assert f"Task.{next(iter(change))}" in json.dumps(resp.get_json())
    assert stored_counts(app) == before


@pytest.mark.parametrize("why, status, extra", [
    ("a cancellation without a reason", "cancelled", {}),
    ("a completion without its response", "completed", {}),
    ("a move to failed", "failed", {}),
    ("back to draft", "draft", {}),
    ("an output without completing", "in-progress", {"output": [{
        "type": {"coding": [{"system": shape.SDC_TEMP, "code": "questionnaire-response"}]},
        "valueReference": {"reference": "QuestionnaireResponse/x"}}]}),
])
def test_moves_the_service_refuses(app: Flask, client: FlaskClient, fhir: FhirActions, why: str,
                                   status: str, extra: dict[str, Any]) -> None:
    task = created(fhir)
    before = stored_counts(app)
    resp = put(client, moved(task, status, **extra), "1")
    assert resp.status_code == 422, why
    assert stored_counts(app) == before


def _output(reference: str) -> list[dict[str, Any]]:
    return [{"type": {"coding": [{"system": shape.SDC_TEMP, "code": "questionnaire-response"}]},
             "valueReference": {"reference": reference}}]


def _stored_response(fhir: FhirActions, form: str = "phq-9", patient: str = "p1") -> str:
    qr = copy.deepcopy(sample(form))
    qr.pop("id", None)
    qr["subject"] = {"reference": f"Patient/{patient}"}
    resp = fhir.submit(qr)
    assert resp.status_code == 201, resp.get_json()
    return f"QuestionnaireResponse/{resp.get_json()['id']}"


def test_a_completion_names_a_stored_response_of_the_patient_and_the_form(
        client: FlaskClient, fhir: FhirActions) -> None:
    task = created(fhir)
    for why, reference in (("another patient's", _stored_response(fhir, patient="p2")),
                           ("another form's", _stored_response(fhir, "gad-7")),
                           ("none stored", "QuestionnaireResponse/not-stored"),
                           ("not a response", "Observation/x")):
        resp = put(client, moved(task, "completed", output=_output(reference)), "1")
        assert resp.status_code == 422, why
    mine = _stored_response(fhir)
    done = put(client, moved(task, "completed", output=_output(mine)), "1")
    assert done.status_code == 200, done.get_json()
    assert shape.response_of(done.get_json()) == mine and done.get_json()["status"] == "completed"
    twice = put(client, moved(done.get_json(), "completed", output=_output(mine)), "2")
    assert twice.status_code == 200 and twice.headers["ETag"] == 'W/"2"'  # nothing moved


def test_an_update_of_an_unknown_task_or_under_another_id(client: FlaskClient,
                                                          fhir: FhirActions) -> None:
    task = created(fhir)
    assert put(client, {**task, "id": "nope"}, "1").status_code == 404
    resp = client.put("/fhir/Task/other", data=json.dumps(task), content_type=FHIR_JSON,
                      headers={"If-Match": 'W/"1"'})
    assert resp.status_code == 400
    assert put(client, task, "x").status_code == 400


def test_creates_and_updates_are_audited_with_the_patient(client: FlaskClient,
                                                          fhir: FhirActions) -> None:
    task = created(fhir)
    assert put(client, moved(task, "in-progress"), "1").status_code == 200
    assert put(client, moved(task, "on-hold"), "1").status_code == 412  # refused: audited too
    events = client.get("/fhir/AuditEvent?patient=p1").get_json()["entry"]
    seen = [(e["resource"]["subtype"][0]["code"], e["resource"]["outcome"]) for e in events
            if any(ent.get("what", {}).get("reference") == f"Task/{task['id']}"
                   for ent in e["resource"].get("entity", []))]
    assert ("create", "0") in seen and ("update", "0") in seen
    refused = client.get("/fhir/AuditEvent?subtype=update&outcome=4").get_json()["entry"]
    assert refused
