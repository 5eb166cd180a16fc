"""Task in the CapabilityStatement and the OpenAPI document: what is declared is what works."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from flask.testing import FlaskClient

from mit_fhir.fhir import task as shape
from mit_fhir.fhir.search import PARAMETERS


def _task_entry(client: FlaskClient) -> dict[str, Any]:
    statement = client.get("/fhir/metadata").get_json()
    CapabilityStatement.model_validate(statement)
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Task"]
    return entry  # type: ignore[no-any-return]


def test_task_is_declared_with_the_sdc_profile_and_its_interactions(client: FlaskClient) -> None:
    entry = _task_entry(client)
    assert entry["supportedProfile"] == [shape.PROFILE]
    assert {i["code"] for i in entry["interaction"]} == {"create", "read", "update",
                                                         "search-type"}
    assert entry["versioning"] == "versioned-update" and entry["updateCreate"] is False
    names = {p["name"] for p in entry["searchParam"]}
    assert names == set(PARAMETERS["Task"]) | {"_count"}


def test_every_declared_task_search_parameter_is_accepted(client: FlaskClient) -> None:
    values = {"date": "le2026-01-01", "reference": "Patient/x", "token": "requested",
              "string": "x", "number": "10"}
    for param in _task_entry(client)["searchParam"]:
        value = values[param["type"]]
        if param["name"] in ("code", "identifier"):
            value = f"{shape.SDC_TEMP}|{shape.CODE}"
        if param["name"] == "questionnaire":
            value = "https://mit-fhir.org/fhir/Questionnaire/phq-9"
        resp = client.get("/fhir/Task", query_string={param["name"]: value})
        assert resp.status_code == 200, (param["name"], resp.get_json())


def test_openapi_describes_task_create_search_read_and_the_versioned_update(
        client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/fhir/Task"])
    item = paths["/fhir/Task/{rid}"]
    assert {"get", "put"} <= set(item)
    (if_match,) = [p for p in item["put"]["parameters"] if p["name"] == "If-Match"]
    assert if_match["in"] == "header" and if_match["required"] is True
    assert item["put"]["requestBody"]["required"] is True
    searched = {p["name"] for p in paths["/fhir/Task"]["get"]["parameters"]}
    assert set(PARAMETERS["Task"]) <= searched
