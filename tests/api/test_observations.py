"""Observation search and read: scores stored with each response, found the ways a chart needs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import sample

DATES = ["2024-01-10T09:00:00+01:00", "2024-02-10T09:00:00+01:00", "2024-03-10T09:00:00+01:00"]


@pytest.fixture
def three_phq9(fhir: Any) -> list[str]:
    ids = []
    for when in DATES:
        qr = {**sample("phq-9"), "authored": when, "subject": {"reference": "Patient/p1"}}
        response = fhir.submit(qr)
        assert response.status_code == 201
        ids.append(response.json["id"])
    other = {**sample("phq-9"), "subject": {"reference": "Patient/p2"}}
    assert fhir.submit(other).status_code == 201
    return ids


def codes(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]]


def test_submission_stores_panel_and_members_in_one_go(client: Any, three_phq9: list[str]) -> None:
    bundle = client.get(f"/fhir/Observation?derived-from=QuestionnaireResponse/{three_phq9[0]}")
    assert sorted(codes(bundle.json)) == ["44249-1", "44261-6", "phq-9-severity"]
    panel = next(e["resource"] for e in bundle.json["entry"]
                 if e["resource"]["code"]["coding"][0]["code"] == "44249-1")
    for member in panel["hasMember"]:
        assert client.get(f"/fhir/{member['reference']}").status_code == 200


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("patient=p1&code=44261-6", 3),
        ("patient=Patient/p1&code=http://loinc.org|44261-6", 3),
        ("subject=Patient/p1&code=http://loinc.org|", 6),
        ("patient=p2&code=44261-6", 1),
        ("patient=p1&code=44261-6&date=ge2024-02", 2),
        ("patient=p1&code=44261-6&date=2024-02", 1),
        ("patient=p1&code=44261-6&date=lt2024-02-10", 1),
        ("patient=p1&code=44261-6,phq-9-severity", 6),
        ("patient=nobody", 0),
    ],
)
def test_observation_search(client: Any, three_phq9: list[str], query: str, count: int) -> None:
    response = client.get(f"/fhir/Observation?{query}")
    assert response.status_code == 200, response.json
    assert response.json["total"] == count


def test_sort_by_date_both_ways(client: Any, three_phq9: list[str]) -> None:
    def effective(sort: str) -> list[str]:
        bundle = client.get(f"/fhir/Observation?patient=p1&code=44261-6&_sort={sort}").json
        return [e["resource"]["effectiveDateTime"] for e in bundle["entry"]]

    assert effective("date") == DATES
    assert effective("-date") == DATES[::-1]


def test_later_scores_point_at_baseline_and_previous(client: Any, three_phq9: list[str]) -> None:
    bundle = client.get("/fhir/Observation?patient=p1&code=44261-6&_sort=date").json
    first, second, third = (e["resource"] for e in bundle["entry"])
    assert "extension" not in first
    flags = {p["url"]: p for p in third["extension"][0]["extension"]}
    assert flags["baseline"]["valueReference"] == {"reference": f"Observation/{first['id']}"}
    assert flags["previous"]["valueReference"] == {"reference": f"Observation/{second['id']}"}
    assert flags["changeFromBaseline"]["valueQuantity"]["value"] == 0
    assert flags["category"]["valueCoding"]["code"] == "unchanged"
    assert "interpretation" not in third


@pytest.mark.parametrize("query", ["bogus=1", "code:text=x", "_sort=code", "date=notadate"])
def test_bad_searches_are_400(client: Any, query: str) -> None:
    response = client.get(f"/fhir/Observation?{query}")
    assert response.status_code == 400
    assert response.json["resourceType"] == "OperationOutcome"


def test_unknown_observation_is_404(client: Any) -> None:
    assert client.get("/fhir/Observation/nope").status_code == 404


def test_status_token_with_its_system(client: Any, three_phq9: list[str]) -> None:
    system = "http://hl7.org/fhir/observation-status"
    assert client.get(f"/fhir/Observation?patient=p1&status={system}|final").json["total"] == 9
    assert client.get("/fhir/Observation?patient=p1&status=amended").json["total"] == 0


def test_a_rejected_submission_leaves_no_observation(client: Any, fhir: Any) -> None:
    qr = sample("phq-9")
    qr["item"][0]["answer"] = [{"valueCoding": {"system": "x", "code": "not-an-option"}}]
    assert fhir.submit(qr).status_code == 422
    assert client.get("/fhir/Observation?patient=example").json["total"] == 0


def test_a_relatively_named_form_is_found_by_its_canonical_url(client: Any, fhir: Any) -> None:
    qr = {**sample("gad-7"), "questionnaire": "Questionnaire/gad-7"}
    assert fhir.submit(qr).status_code == 201
    url = "https://mit-fhir.org/fhir/Questionnaire/gad-7"
    assert client.get(f"/fhir/QuestionnaireResponse?questionnaire={url}").json["total"] == 1


def test_wildcards_are_no_reference(client: Any, fhir: Any) -> None:
    """A bare id with LIKE wildcards is no FHIR id (400), never a pattern over other patients."""
    qr = {**sample("phq-9"), "subject": {"reference": "Patient/a1b"}}
    assert fhir.submit(qr).status_code == 201
    assert client.get("/fhir/Observation?patient=a_b").status_code == 400
    assert client.get("/fhir/Observation?patient=a%25b").status_code == 400
    assert client.get("/fhir/Observation?patient=a1b").json["total"] == 3
