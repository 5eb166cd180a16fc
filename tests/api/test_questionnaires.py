"""Questionnaire read and search over the catalogue."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from mit_fhir.paths import QUESTIONNAIRE_DIR

CATALOGUE = [
    "ders", "ders-16", "scl-90-r", "bpd-criteria", "bsl-23", "phq-9", "gad-7",
    "cssrs-screener", "mas-a", "mit-episode", "mit-schema", "mit-contract",
    "mit-regulation-menu", "mit-experiment", "medication-plan", "crisis-contact-plan",
]
BASE = "https://mit-fhir.org/fhir/Questionnaire"


def _ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.get_json()
    bundle = resp.get_json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert bundle["total"] == len(ids)
    return ids


def test_every_catalogue_form_is_listed(client: FlaskClient) -> None:
    assert sorted(_ids(client.get("/fhir/Questionnaire"))) == sorted(CATALOGUE)


@pytest.mark.parametrize("qid", CATALOGUE)
def test_read_serves_the_catalogue_file(client: FlaskClient, qid: str) -> None:
    resp = client.get(f"/fhir/Questionnaire/{qid}")
    assert resp.status_code == 200
    assert resp.mimetype == "application/fhir+json"
    on_disk = json.loads((QUESTIONNAIRE_DIR / f"{qid}.json").read_text(encoding="utf-8"))
    assert resp.get_json() == on_disk


@pytest.mark.parametrize("qid", CATALOGUE)
def test_search_by_canonical_url_finds_exactly_that_form(client: FlaskClient, qid: str) -> None:
    assert _ids(client.get("/fhir/Questionnaire", query_string={"url": f"{BASE}/{qid}"})) == [qid]
    versioned = f"{BASE}/{qid}|1.0.0"
    assert _ids(client.get("/fhir/Questionnaire", query_string={"url": versioned})) == [qid]


def test_search_entries_carry_full_urls(client: FlaskClient) -> None:
    bundle = client.get("/fhir/Questionnaire", query_string={"_id": "phq-9"}).get_json()
    assert bundle["entry"][0]["fullUrl"] == "http://localhost/fhir/Questionnaire/phq-9"
    assert bundle["entry"][0]["search"]["mode"] == "match"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"url": f"{BASE}/phq-9|9.9.9"}, []),
        ({"url": f"{BASE}/phq"}, []),
        ({"url": "https://example.org/Questionnaire/phq-9"}, []),
        ({"version": "1.0.0"}, CATALOGUE),
        ({"version": "2.0.0"}, []),
        ({"name": "PHQ9"}, ["phq-9"]),
        ({"name": "phq"}, ["phq-9"]),  # string search: case-insensitive, starts-with
        ({"name": "DERS"}, ["ders", "ders-16"]),
        ({"name": "Q9"}, []),  # not a "contains" search
        ({"status": "active"}, CATALOGUE),
        ({"status": "draft"}, []),
        ({"status": "retired,active"}, CATALOGUE),
        ({"_id": "gad-7"}, ["gad-7"]),
        ({"_id": "gad-7,phq-9"}, ["gad-7", "phq-9"]),
        ({"_id": "gad"}, []),
        ({"_id": "mas-a", "status": "active"}, ["mas-a"]),
        ({"_id": "mas-a", "status": "draft"}, []),
        ({"url": f"{BASE}/gad-7", "version": "1.0.0"}, ["gad-7"]),
    ],
)
def test_search(client: FlaskClient, query: dict[str, str], expected: list[str]) -> None:
    assert sorted(_ids(client.get("/fhir/Questionnaire", query_string=query))) == sorted(
        expected
    )


@pytest.mark.parametrize("qid", ["unknown", "phq-10", "PHQ-9"])
def test_unknown_id_is_a_404_operation_outcome(client: FlaskClient, qid: str) -> None:
    resp = client.get(f"/fhir/Questionnaire/{qid}")
    assert resp.status_code == 404
    assert resp.mimetype == "application/fhir+json"
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize("param", ["publisher", "code", "subject", "name:exact", "_sort"])
def test_unknown_search_parameter_is_a_400(client: FlaskClient, param: str) -> None:
    resp = client.get("/fhir/Questionnaire", query_string={param: "x"})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert param in body["issue"][0]["diagnostics"]
