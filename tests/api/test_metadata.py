"""GET /fhir/metadata: a valid R4 CapabilityStatement describing what the routes really do."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from flask.testing import FlaskClient


@pytest.fixture
def statement(client: FlaskClient) -> dict[str, Any]:
    resp = client.get("/fhir/metadata")
    assert resp.status_code == 200
    assert resp.mimetype == "application/fhir+json"
    body: dict[str, Any] = resp.get_json()
    return body


def _resource(statement: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (rest,) = [r for r in statement["rest"] if r["mode"] == "server"]
    found = [r for r in rest["resource"] if r["type"] == resource_type]
    assert len(found) == 1, f"{resource_type} listed {len(found)} times"
    return found[0]


def test_metadata_is_a_valid_r4_capability_statement(statement: dict[str, Any]) -> None:
    model = CapabilityStatement.model_validate(statement)
    assert model.fhirVersion == "4.0.1"
    assert statement["kind"] == "instance"
    assert "application/fhir+json" in statement["format"]


def test_metadata_is_served_as_fhir_json_utf8(client: FlaskClient) -> None:
    resp = client.get("/fhir/metadata")
    assert resp.headers["Content-Type"] == "application/fhir+json; charset=utf-8"


def test_implementation_url_is_the_configured_base(database_url: str) -> None:
    from mit_fhir.app import create_app

    app = create_app(
        {
            "DATABASE_URL": database_url,
            "BASE_URL": "https://ehr.example.org/fhir/",
        }
    )
    try:
        body = app.test_client().get("/fhir/metadata",
                                     base_url="https://ehr.example.org").get_json()
    finally:
        app.extensions["mit_fhir"].store.dispose()
    assert body["implementation"]["url"] == "https://ehr.example.org/fhir"


@pytest.mark.parametrize(
    ("resource_type", "interactions", "params"),
    [
        (
            "Questionnaire",
            {"read", "search-type"},
            {"url": "uri", "version": "token", "name": "string", "status": "token",
             "_id": "token"},
        ),
        (
            "QuestionnaireResponse",
            {"create", "read", "search-type"},
            {"subject": "reference", "patient": "reference", "questionnaire": "reference",
             "authored": "date", "status": "token", "_id": "token"},
        ),
    ],
)
def test_resources_list_their_interactions_and_search_params(
    statement: dict[str, Any], resource_type: str, interactions: set[str], params: dict[str, str]
) -> None:
    res = _resource(statement, resource_type)
    assert {i["code"] for i in res["interaction"]} == interactions
    declared = {p["name"]: p["type"] for p in res["searchParam"]}
    for name, kind in params.items():
        assert declared.get(name) == kind, f"{resource_type}?{name} should be a {kind} parameter"


def test_declared_questionnaire_search_params_are_accepted(
    statement: dict[str, Any], client: FlaskClient
) -> None:
    for param in _resource(statement, "Questionnaire")["searchParam"]:
        resp = client.get("/fhir/Questionnaire", query_string={param["name"]: "x"})
        assert resp.status_code == 200, param["name"]


def test_declared_response_search_params_are_accepted(
    statement: dict[str, Any], client: FlaskClient
) -> None:
    values = {"date": "2024", "reference": "Patient/x", "token": "x", "string": "x",
              "number": "10"}
    for param in _resource(statement, "QuestionnaireResponse")["searchParam"]:
        resp = client.get(
            "/fhir/QuestionnaireResponse", query_string={param["name"]: values[param["type"]]}
        )
        assert resp.status_code == 200, param["name"]


@pytest.mark.parametrize("rtype", ["QuestionnaireResponse", "Observation", "MedicationRequest",
                                   "CarePlan", "CareTeam", "AuditEvent", "Provenance"])
def test_count_is_declared_with_its_bounds(database_url: str, rtype: str) -> None:
    from mit_fhir.app import create_app

    app = create_app({"DATABASE_URL": database_url, "SEARCH_DEFAULT_COUNT": 20,
                      "SEARCH_MAX_COUNT": 200})
    statement = app.test_client().get("/fhir/metadata").get_json()
    (count,) = [p for p in _resource(statement, rtype)["searchParam"] if p["name"] == "_count"]
    assert count["type"] == "number"
    assert "1 to 200 (default 20)" in count["documentation"]
    app.extensions["mit_fhir"].store.dispose()
