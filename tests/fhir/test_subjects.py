"""Every check of a submitted resource's subject uses the reference grammar, matched whole."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from mit_fhir.fhir.plans import PlanError, plan_patient
from mit_fhir.fhir.references import reference_type
from mit_fhir.paths import QUESTIONNAIRE_DIR
from tests.conftest import load_json, sample
from tests.fhir.test_validate import problems, response

BAD = ["Patient/p1\n", "Patient/p1 ", "Patient/p1?x", "Patient/p1#", "Patient/p1/../p2",
       "Patient/p1?/Patient/p2", "Patient/p1/_history/1", "https://ehr.example.org/Patient/p1",
       "patient/p1", "Patient/p\u0430", "Patient/..", "p1", "Patient/p1/Patient/p2", 7, None]


@pytest.mark.parametrize("subject", BAD)
def test_a_response_subject_outside_the_grammar_is_422(subject: Any) -> None:
    found = problems({**response(), "subject": {"reference": subject}})
    assert any("subject must reference the Patient" in p for p in found), subject


def test_a_relative_patient_reference_is_a_subject() -> None:
    assert problems(response()) == []


@pytest.mark.parametrize("subject", BAD)
def test_a_plan_form_subject_outside_the_grammar_is_refused(subject: Any) -> None:
    form = load_json(QUESTIONNAIRE_DIR / "medication-plan.json")
    qr = {"questionnaire": form["url"], "status": "completed", "subject": {"reference": subject}}
    with pytest.raises(PlanError, match="subject"):
        plan_patient(qr, form, "medication-plan")


@pytest.mark.parametrize("subject", ["Patient/p1?/Patient/p2", "Patient/p1/../p2",
                                     "Patient/p1%2F..%2Fp2", "Patient/p1\n", "Patient/p2/"])
@pytest.mark.parametrize("rtype", ["MedicationRequest", "CarePlan", "CareTeam"])
def test_a_posted_plan_resource_never_lands_in_another_record(
        client: FlaskClient, rtype: str, subject: str) -> None:
    body = {"resourceType": rtype, "status": "active", "subject": {"reference": subject}}
    if rtype != "CareTeam":
        body["intent"] = "plan"
    if rtype == "MedicationRequest":
        body["medicationCodeableConcept"] = {"text": "sertraline"}
    resp = client.post(f"/fhir/{rtype}", json=body, content_type="application/fhir+json")
    assert resp.status_code == 422
    assert client.get(f"/fhir/{rtype}?patient=p2").json["total"] == 0


@pytest.mark.parametrize(("author", "copied"), [
    ("Practitioner/dr-1", True), ("Practitioner/dr-1?/Patient/p2", False),
    ("Practitioner/dr-1/../../Patient/p2", False), ("Practitioner", False),
    ("https://ehr.example.org/fhir/Practitioner/dr-1", False),
])
def test_only_authors_of_the_grammar_become_performers(
        client: FlaskClient, author: str, copied: bool) -> None:
    qr = {**sample("phq-9"), "author": {"reference": author}}
    assert client.post("/fhir/QuestionnaireResponse", json=qr,
                       content_type="application/fhir+json").status_code == 201
    found = client.get("/fhir/Observation?patient=example").json["entry"]
    assert found and all(("performer" in e["resource"]) is copied for e in found)


@pytest.mark.parametrize(("text", "expected"), [
    ("Practitioner/1", "Practitioner"), ("Practitioner/1?x", None), ("Practitioner", None),
    ("https://x.org/Practitioner/1", None), (None, None), (["Practitioner/1"], None),
])
def test_reference_type(text: object, expected: str | None) -> None:
    assert reference_type(text) == expected
