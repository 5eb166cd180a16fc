"""GET /openapi.json describes every route of the application and is a valid OpenAPI 3 document."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from mit_fhir.api.openapi import described
from mit_fhir.fhir.search import PARAMETERS

FHIR_TYPES = sorted(PARAMETERS)


def _document(client: FlaskClient) -> dict:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    doc: dict = resp.get_json()
    return doc


def test_the_document_validates_as_openapi_3(client: FlaskClient) -> None:
    doc = _document(client)
    validate(doc)  # raises OpenAPIValidationError naming the broken element
    assert doc["openapi"].startswith("3.")


def test_every_route_and_method_of_the_app_is_described(app: Flask, client: FlaskClient) -> None:
    paths = _document(client)["paths"]
    expected = {
        (re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if described(rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert documented == expected
    # The routes a client needs most are there with the right shape.
    assert "post" in paths["/fhir/QuestionnaireResponse"]
    assert "post" in paths["/fhir/QuestionnaireResponse/$extract"]
    assert "get" in paths["/fhir/Observation/{rid}"]


def test_search_parameters_are_the_ones_the_service_accepts(client: FlaskClient) -> None:
    paths = _document(client)["paths"]
    for rtype in FHIR_TYPES:
        params = {p["name"] for p in paths[f"/fhir/{rtype}"]["get"]["parameters"]}
        assert set(PARAMETERS[rtype]) <= params, rtype
        assert "_sort" in params
        # Nothing described that the service would refuse with 400.
        unknown = params - set(PARAMETERS[rtype]) - {"_sort", "_count", "_format"}
        assert not unknown, (rtype, unknown)


def test_every_described_search_parameter_is_accepted(client: FlaskClient) -> None:
    paths = _document(client)["paths"]
    for path, ops in paths.items():
        for param in ops.get("get", {}).get("parameters", []):
            if param["in"] != "query":
                continue
            value = "date" if param["name"] == "_sort" else "2024-01-01"
            if param["name"] in ("subject", "patient", "derived-from", "agent", "entity", "target"):
                value = "Patient/x"
            resp = client.get(path, query_string={param["name"]: value})
            assert resp.status_code == 200, (path, param["name"], resp.get_json())


def test_request_bodies_name_their_resource_types(client: FlaskClient) -> None:
    paths = _document(client)["paths"]
    posts = {path: ops["post"] for path, ops in paths.items() if "post" in ops}
    for path, op in posts.items():
        if not path.startswith("/fhir/"):
            continue  # CDS Hooks: a JSON request, described on its own
        if "{" in path:
            assert "requestBody" not in op, path
            continue
        schema = op["requestBody"]["content"]["application/fhir+json"]["schema"]
        enum = schema["properties"]["resourceType"]["enum"]
        if path.endswith("$extract"):
            assert enum == ["QuestionnaireResponse", "Parameters"]
        else:
            assert enum == [path.rsplit("/", 1)[1]]
        assert op["responses"]["201" if not path.endswith("$extract") else "200"]


def test_fhir_errors_are_documented_as_operation_outcomes(client: FlaskClient) -> None:
    doc = _document(client)
    error = doc["components"]["responses"]["Error"]
    assert error["content"]["application/fhir+json"]["schema"] == {
        "$ref": "#/components/schemas/OperationOutcome"}
    for path, ops in doc["paths"].items():
        if path.startswith("/fhir/"):
            for op in ops.values():
                assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Error"}, path
