"""SDC $extract over HTTP: a transaction Bundle of Observations, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.conftest import DATA, load_json, sample


def stored_observations(client: Any) -> int:
    total: int = client.get("/fhir/Observation?patient=example").json["total"]
    return total


def test_extract_returns_a_transaction_bundle_and_stores_nothing(client: Any, fhir: Any) -> None:
    response = fhir.post("/fhir/QuestionnaireResponse/$extract", sample("phq-9"))
    assert response.status_code == 200
    assert response.content_type.startswith("application/fhir+json")
    bundle = response.json
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    panel, *members = (e["resource"] for e in bundle["entry"])
    assert panel["code"]["coding"][0]["code"] == "44249-1"
    member_urls = {e["fullUrl"] for e in bundle["entry"][1:]}
    assert {m["reference"] for m in panel["hasMember"]} == member_urls
    assert all(e["request"]["method"] == "POST" and "ifNoneExist" in e["request"]
               for e in bundle["entry"])
    total = next(m for m in members if m["code"]["coding"][0]["code"] == "44261-6")
    expected = load_json(DATA / "samples" / "phq-9" / "complete.expected.json")["phq-9-total"]
    assert total["valueQuantity"]["value"] == expected
    assert stored_observations(client) == 0
    assert client.get("/fhir/QuestionnaireResponse?subject=Patient/example").json["total"] == 0


def test_extract_accepts_parameters_with_a_site_questionnaire(fhir: Any) -> None:
    """LHC-Forms' own LOINC PHQ-9 (ordinalValue weights, item variables) extracts too."""
    questionnaire = load_json(DATA / "lhc-forms" / "phq-9-loinc.json")
    qr = load_json(DATA / "lhc-forms" / "phq-9-loinc.response.json")
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": qr},
        {"name": "questionnaire", "resource": questionnaire},
    ]}
    response = fhir.post("/fhir/QuestionnaireResponse/$extract", params)
    assert response.status_code == 200, response.json
    members = [e["resource"] for e in response.json["entry"][1:]]
    (total,) = [m for m in members if m["code"]["coding"][0]["code"] == "44261-6"]
    assert total["valueQuantity"]["value"] == 11


def test_extract_of_a_stored_response_matches_what_was_stored(client: Any, fhir: Any) -> None:
    created = fhir.submit(sample("gad-7")).json
    bundle = fhir.post(f"/fhir/QuestionnaireResponse/{created['id']}/$extract", {}).json
    extracted = {e["resource"]["code"]["coding"][0]["code"]: e["resource"]
                 for e in bundle["entry"]}
    stored = client.get(f"/fhir/Observation?derived-from=QuestionnaireResponse/{created['id']}")
    by_code = {e["resource"]["code"]["coding"][0]["code"]: e["resource"]
               for e in stored.json["entry"]}
    assert extracted.keys() == by_code.keys()
    for code, obs in by_code.items():
        assert extracted[code].get("valueQuantity") == obs.get("valueQuantity")
        assert extracted[code].get("valueCodeableConcept") == obs.get("valueCodeableConcept")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"resourceType": "Parameters", "parameter": []}, 400),
        ({"resourceType": "Parameters",
          "parameter": [{"name": "questionnaire-response",
                         "resource": {"resourceType": "Patient"}}]},
         400),
        ({"resourceType": "Patient"}, 400),
    ],
)
def test_extract_rejects_what_it_cannot_read(fhir: Any, body: dict[str, Any], status: int) -> None:
    response = fhir.post("/fhir/QuestionnaireResponse/$extract", body)
    assert response.status_code == status
    assert response.json["resourceType"] == "OperationOutcome"


def test_extract_refuses_a_draft(fhir: Any) -> None:
    response = fhir.post("/fhir/QuestionnaireResponse/$extract",
                         {**sample("phq-9"), "status": "in-progress"})
    assert response.status_code == 422
    assert response.json["issue"][0]["code"] == "business-rule"


def test_extract_of_an_unknown_stored_response_is_404(fhir: Any) -> None:
    assert fhir.post("/fhir/QuestionnaireResponse/nope/$extract", {}).status_code == 404


def test_extract_of_an_unsaved_response_creates_it_in_the_bundle(fhir: Any) -> None:
    qr = {k: v for k, v in sample("phq-9").items() if k != "id"}
    bundle = fhir.post("/fhir/QuestionnaireResponse/$extract", qr).json
    first = bundle["entry"][0]
    assert first["resource"]["resourceType"] == "QuestionnaireResponse"
    for entry in bundle["entry"][1:]:
        assert {"reference": first["fullUrl"]} in entry["resource"]["derivedFrom"]
