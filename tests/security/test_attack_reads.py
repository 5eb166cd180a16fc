"""Reads, creates and $extract with a token for patient A: nothing of B's, nothing stored for B.

Reads check the stored resource's subject with the one reference grammar; creates and
$extract check the submitted subject with it, before anything is stored or computed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import sample
from tests.security.attack import BASE, PATIENT_DATA, A, B, World, task

# Subjects a client may put in a resource it submits for B, or for A then B.
SUBJECTS = [
    f"Patient/{B}", B, f"{BASE}/Patient/{B}", f"https://other.example.org/fhir/Patient/{A}",
    f"Patient/{A}?/Patient/{B}", f"Patient/{A}%3F/Patient/{B}", f"Patient/{A}/../{B}",
    f"./Patient/{A}", f"Patient/{A}#", f"Patient/{A}?x", f"patient/{A}", f"PATIENT/{A}",
    f"Patient/{A}\n", f"Patient/{A} ", f" Patient/{A}", f"Patient/{A}\t", f"Patient/{A}\x00",
    f"Patient\uff0f{A}", "Patient/p\u0430t-1", f"Patient/{A}/_history/1", f"Patient/{A},{B}",
    f"Patient/{A}/Patient/{B}", "Patient/", "Patient/..", f"Group/{A}", f"{BASE}/Patient/{A}",
]
FHIR = {"Content-Type": "application/fhir+json"}


def _totals(world: World, created: str) -> dict[str, int]:
    # AuditEvents are written for refusals too; a response would also make Observations.
    clinician = world.headers("user/*.cruds", None)
    return {rtype: world.client.get(f"/fhir/{rtype}", headers=clinician).json["total"]
            for rtype in {created, "Observation", "Provenance"}}


@pytest.mark.parametrize("rtype", PATIENT_DATA)
def test_a_cannot_read_b(world: World, rtype: str) -> None:
    for rid in sorted(world.ids[B][rtype]):
        resp = world.client.get(f"/fhir/{rtype}/{rid}", headers=world.headers())
        assert resp.status_code == 403, (rtype, rid)
        assert not world.leaks(resp.data)


@pytest.mark.parametrize("rtype", PATIENT_DATA[:5])  # the types with a subject
def test_a_reads_a(world: World, rtype: str) -> None:
    for rid in sorted(world.ids[A][rtype]):
        resp = world.client.get(f"/fhir/{rtype}/{rid}", headers=world.headers())
        assert resp.status_code == 200 and resp.json["subject"]["reference"] == f"Patient/{A}"


def test_a_reads_as_tasks(world: World) -> None:
    assert world.ids[A]["Task"]
    for rid in sorted(world.ids[A]["Task"]):
        resp = world.client.get(f"/fhir/Task/{rid}", headers=world.headers())
        assert resp.status_code == 200 and resp.json["for"]["reference"] == f"Patient/{A}"


@pytest.mark.parametrize("rtype", PATIENT_DATA)
@pytest.mark.parametrize("path", [
    "{a}/../{b}", "{a}%2F..%2F{b}", "{a}%252F..%252F{b}", "./{b}", "{b}/", "{b}%0A", "{b}%20",
    "{b}/_history/1", "{b}?_format=json", "{b}%3F", "{b}%23", "{a},{b}", "{B}",
])
def test_path_spellings_read_nothing_of_b(world: World, rtype: str, path: str) -> None:
    a = sorted(world.ids[A][rtype])[0] if world.ids[A][rtype] else "x"
    for b in sorted(world.ids[B][rtype])[:2]:
        url = f"/fhir/{rtype}/" + path.format(a=a, b=b, B=b.upper())
        resp = world.client.get(url, headers=world.headers())
        # A 404 names the id asked for: the caller's own text, not B's data.
        shown = [found for found in world.leaks(resp.data) if found not in url]
        assert resp.status_code >= 400 and not shown, (url, resp.status_code)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("rtype", ["QuestionnaireResponse", "MedicationRequest", "CarePlan",
                                   "CareTeam", "Task"])
def test_a_cannot_create_for_b(world: World, rtype: str, subject: str) -> None:
    before = _totals(world, rtype)
    body = _resource(rtype, subject)
    resp = world.client.post(f"/fhir/{rtype}", json=body, headers={**world.headers(), **FHIR})
    assert resp.status_code in (400, 403, 422), (rtype, subject, resp.status_code)
    assert not world.leaks(resp.data)
    assert _totals(world, rtype) == before  # nothing stored, not even for A


def test_a_still_creates_for_a(world: World) -> None:
    for rtype in ("QuestionnaireResponse", "CarePlan", "Task"):
        resp = world.client.post(f"/fhir/{rtype}", json=_resource(rtype, f"Patient/{A}"),
                                 headers={**world.headers(), **FHIR})
        assert resp.status_code == 201, resp.json


def _resource(rtype: str, subject: str) -> dict[str, Any]:
    if rtype == "Task":  # its patient is `for`
        return task(subject)
    if rtype == "QuestionnaireResponse":
        body = {k: v for k, v in sample("phq-9").items() if k != "id"}
    elif rtype == "MedicationRequest":
        body = {"resourceType": rtype, "status": "active", "intent": "plan",
                "medicationCodeableConcept": {"text": "sertraline"}}
    elif rtype == "CarePlan":
        body = {"resourceType": rtype, "status": "active", "intent": "plan"}
    else:
        body = {"resourceType": rtype, "status": "active"}
    return {**copy.deepcopy(body), "subject": {"reference": subject}}


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_cannot_extract_for_b(world: World, subject: str, wrapped: bool) -> None:
    qr = _resource("QuestionnaireResponse", subject)
    body: dict[str, Any] = qr if not wrapped else {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": qr}]}
    resp = world.client.post("/fhir/QuestionnaireResponse/$extract", json=body,
                             headers={**world.headers(), **FHIR})
    assert resp.status_code in (400, 403, 422), (subject, resp.status_code)
    assert not world.leaks(resp.data)


def test_a_cannot_extract_bs_stored_responses(world: World) -> None:
    for rid in sorted(world.ids[B]["QuestionnaireResponse"]):
        resp = world.client.post(f"/fhir/QuestionnaireResponse/{rid}/$extract",
                                 headers=world.headers())
        assert resp.status_code == 403 and not world.leaks(resp.data)


def test_a_extracts_for_a(world: World) -> None:
    resp = world.client.post("/fhir/QuestionnaireResponse/$extract",
                             json=_resource("QuestionnaireResponse", f"Patient/{A}"),
                             headers={**world.headers(), **FHIR})
    assert resp.status_code == 200 and not world.leaks(resp.data)
