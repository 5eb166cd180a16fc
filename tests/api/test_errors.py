"""Every error leaves the service as a FHIR OperationOutcome with the right HTTP status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from mit_fhir import errors
from mit_fhir.errors import Issue
from tests.conftest import FHIR_JSON, sample


def outcome(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == f"{FHIR_JSON}; charset=utf-8"
    body: dict[str, Any] = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"]
    return body


@pytest.mark.parametrize(
    "path",
    ["/fhir/Patient", "/fhir/Observationz/1", "/nothing", "/fhir/Questionnaire/phq-9/extra/x"],
)
def test_unknown_route_is_a_404_outcome(client: FlaskClient, path: str) -> None:
    body = outcome(client.get(path), 404)
    assert body["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/fhir/QuestionnaireResponse", {"GET", "POST"}),
        ("put", "/fhir/QuestionnaireResponse", {"GET", "POST"}),
        ("put", "/fhir/Questionnaire/phq-9", {"GET"}),
        ("post", "/fhir/Questionnaire", {"GET"}),
        ("delete", "/fhir/Questionnaire/phq-9", {"GET"}),
        ("post", "/fhir/metadata", {"GET"}),
    ],
)
def test_wrong_method_is_a_405_outcome_with_allow(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    resp = getattr(client, method)(path, data=b"{}", content_type=FHIR_JSON)
    body = outcome(resp, 405)
    assert body["issue"][0]["code"] == "not-supported"
    allow = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method.upper() not in allow


def test_wrong_method_stores_nothing(client: FlaskClient) -> None:
    resp = client.put(
        "/fhir/QuestionnaireResponse", data=json.dumps(sample("phq-9")), content_type=FHIR_JSON
    )
    assert resp.status_code == 405
    assert client.get("/fhir/QuestionnaireResponse").get_json()["total"] == 0


def test_unexpected_exception_is_a_generic_500(app: Flask) -> None:
    def boom() -> None:
        raise RuntimeError("SECRET-ANSWER-123 leaked from a stack")

    app.add_url_rule("/boom", "boom", boom)
    resp = app.test_client().get("/boom")
    body = outcome(resp, 500)
    assert body["issue"][0] == {
        "severity": "fatal", "code": "exception", "diagnostics": "internal error"
    }
    assert "SECRET" not in resp.get_data(as_text=True)


def test_unreachable_database_is_a_503(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = app.extensions["mit_fhir"].store.engine

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("connect", {}, Exception("database is locked"))

    monkeypatch.setattr(engine, "begin", down)
    resp = app.test_client().get("/fhir/QuestionnaireResponse")
    body = outcome(resp, 503)
    assert body["issue"][0]["code"] == "transient"


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.InvalidRequest, 400, "invalid"),
        (errors.PayloadTooLarge, 413, "too-long"),
        (errors.UnsupportedMediaType, 415, "not-supported"),
        (errors.NotFound, 404, "not-found"),
        (errors.MethodNotAllowed, 405, "not-supported"),
        (errors.Conflict, 409, "conflict"),
        (errors.PreconditionFailed, 412, "conflict"),
        (errors.Unprocessable, 422, "processing"),
        (errors.ServiceUnavailable, 503, "transient"),
    ],
)
def test_each_error_class_maps_to_its_status(
    app: Flask, cls: type[errors.FhirError], status: int, code: str
) -> None:
    def fail() -> None:
        raise cls("the reason")

    app.add_url_rule("/fail", "fail", fail)
    body = outcome(app.test_client().get("/fail"), status)
    assert body["issue"] == [{"severity": "error", "code": code, "diagnostics": "the reason"}]


def test_errors_carry_all_their_issues() -> None:
    exc = errors.Unprocessable(
        "two problems",
        [Issue("first", expression=("QuestionnaireResponse.item[0]",)),
         Issue("second", code="required")],
    )
    assert exc.status == 422
    assert exc.outcome() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "first",
             "expression": ["QuestionnaireResponse.item[0]"]},
            {"severity": "error", "code": "required", "diagnostics": "second"},
        ],
    }

