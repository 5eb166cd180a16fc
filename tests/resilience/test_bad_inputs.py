"""The bad-input corpus (tests/data/bad/manifest.json): each case is refused whole.

Every case gets its manifest status with an application/fhir+json OperationOutcome (never the
input echoed back in bulk), on POST /fhir/QuestionnaireResponse and on $extract, and the
database's row counts (resources, search index, outbox) are the same afterwards.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import DATA, FHIR_JSON, drop_database, fresh_database_url, sample, stored_counts
from tests.resilience.live import build_app

BAD = DATA / "bad"
MANIFEST: dict[str, Any] = json.loads((BAD / "manifest.json").read_text(encoding="utf-8"))
MAX_BODY_BYTES = 4 * 1024 * 1024
LARGEST_OUTCOME = 16 * 1024  # an OperationOutcome never carries the input back in bulk


def _nested(depth: int) -> bytes:
    inner = '{"linkId":"phq-9-1","answer":[{"valueInteger":1}]}'
    for _ in range(depth):
        inner = '{"linkId":"phq-9","item":[' + inner + "]}"
    qr = sample("phq-9")
    qr["item"] = ["@@"]
    return json.dumps(qr).replace('"@@"', inner).encode()


def _huge_answer(size: int) -> bytes:
    qr = sample("phq-9")
    qr["item"][0]["answer"] = [{"valueString": "x" * size}]
    return json.dumps(qr).encode()


def _huge_link_id() -> bytes:
    qr = sample("phq-9")
    qr["item"].append({"linkId": "L" * 3_000_000, "answer": [{"valueInteger": 1}]})
    return json.dumps(qr).encode()


GENERATORS: dict[str, Callable[[], bytes]] = {
    "deep-json-10000": lambda: _nested(10_000),
    "deep-items-300": lambda: _nested(300),
    "huge-string-below-limit": lambda: _huge_answer(3_000_000),
    "huge-string-above-limit": lambda: _huge_answer(5_000_000),
    "huge-linkid": _huge_link_id,
}


def _body(case: dict[str, Any]) -> bytes:
    if "file" in case:
        return (BAD / case["file"]).read_bytes()
    return GENERATORS[case["generate"]]()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    url = fresh_database_url(tmp_path_factory.mktemp("bad"), "bad")
    application = build_app(url, MAX_BODY_BYTES=MAX_BODY_BYTES,
                            EHR_BASE_URL="http://127.0.0.1:9/fhir")
    yield application
    application.extensions["mit_fhir"].store.dispose()
    drop_database(url)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    # Something stored already, so "unchanged" is checked against a non-empty database.
    resp = client.post("/fhir/QuestionnaireResponse", data=json.dumps(sample("gad-7")),
                       content_type=FHIR_JSON)
    assert resp.status_code == 201
    return client


def assert_outcome(resp: Any, status: int) -> None:
    assert resp.status_code == status, resp.get_data()[:500]
    assert resp.mimetype == FHIR_JSON
    assert len(resp.get_data()) < LARGEST_OUTCOME
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"]


def test_the_manifest_names_every_committed_file_and_every_generator() -> None:
    files = {c["file"] for c in MANIFEST["cases"] if "file" in c} | {MANIFEST["duplicate"]["file"]}
    assert files == {p.name for p in BAD.iterdir()} - {"manifest.json"}
    assert {c["generate"] for c in MANIFEST["cases"] if "generate" in c} == set(GENERATORS)


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=lambda c: c.get("file", c.get("generate")))
def test_each_bad_input_is_refused_and_stores_nothing(
    case: dict[str, Any], app: Flask, client: FlaskClient
) -> None:
    body = _body(case)
    paths = ["/fhir/QuestionnaireResponse"]
    if case["extract"]:
        paths.append("/fhir/QuestionnaireResponse/$extract")
    for path in paths:
        before = stored_counts(app)
        resp = client.post(path, data=body, content_type=FHIR_JSON)
        assert_outcome(resp, case["status"])
        assert stored_counts(app) == before, path


def test_a_duplicate_submission_is_stored_once(app: Flask, client: FlaskClient) -> None:
    case = MANIFEST["duplicate"]
    body = (BAD / case["file"]).read_bytes()
    first = client.post("/fhir/QuestionnaireResponse", data=body, content_type=FHIR_JSON)
    assert first.status_code == case["first"], first.get_json()
    stored = stored_counts(app)

    again = client.post("/fhir/QuestionnaireResponse", data=body, content_type=FHIR_JSON)
    assert again.status_code == case["again"], again.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert stored_counts(app) == stored

    changed = copy.deepcopy(json.loads(body))
    coding = changed["item"][0]["answer"][0]["valueCoding"]
    replacement = ("LA6569-3", "Several days")
    if coding["code"] == replacement[0]:
        replacement = ("LA6568-5", "Not at all")
    coding["code"], coding["display"] = replacement
    refused = client.post("/fhir/QuestionnaireResponse", data=json.dumps(changed),
                          content_type=FHIR_JSON)
    assert_outcome(refused, case["changed"])
    assert stored_counts(app) == stored

    ident = json.loads(body)["identifier"]
    found = client.get("/fhir/QuestionnaireResponse",
                       query_string={"identifier": f"{ident['system']}|{ident['value']}"})
    assert found.get_json()["total"] == 1
