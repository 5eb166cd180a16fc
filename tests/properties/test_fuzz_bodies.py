"""No body answers 5xx: site Questionnaires, $extract Parameters and plan answers, fuzzed.

Each example takes a valid body (LHC-Forms' PHQ-9 with its response, the medication and crisis
plan samples) and replaces one to three of its elements, anywhere in the tree, with a value of
a wrong JSON type, a number out of range or a deeply nested structure, or deletes them. The
service must answer below 500, and a refused body (4xx) must leave the database as it was;
`$extract` never stores. Examples are bounded and derandomised (~60 s per database in all).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import (
    DATA,
    FHIR_JSON,
    drop_database,
    fresh_database_url,
    load_json,
    sample,
    stored_counts,
)
from tests.resilience.live import build_app

Path = tuple[str | int, ...]
FUZZED = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
SITE_FORM = load_json(DATA / "lhc-forms" / "phq-9-loinc.json")
SITE_RESPONSE = load_json(DATA / "lhc-forms" / "phq-9-loinc.response.json")

_NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([2**31, -(2**31) - 1, 2**63, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e30, -1e30, 1e308, 5e-324, -0.0]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, st.text(max_size=20),
                     st.sampled_from(["", "Patient/x", "1e30", "true", "#", "%resource"]))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=8)


@st.composite
def _deep(draw: st.DrawFn) -> Any:
    value: Any = draw(_SCALARS)
    for _ in range(draw(st.integers(1, 60))):
        value = [value] if draw(st.booleans()) else {"item": value}
    return value


WRONG = st.one_of(_SCALARS, _JSON, _deep())
_DELETE = object()


def paths(doc: Any, prefix: Path = ()) -> list[Path]:
    """Every element's path in a JSON document (the root excluded)."""
    out: list[Path] = []
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) \
        if isinstance(doc, list) else ()
    for key, value in children:
        here = (*prefix, key)
        out.append(here)
        out.extend(paths(value, here))
    return out


def replace(doc: Any, path: Path, value: Any) -> None:
    *parents, last = path
    node = doc
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value  # type: ignore[index]


@st.composite
def mutated(draw: st.DrawFn, doc: Any, keep: Path = ()) -> Any:
    """A copy of `doc` with one to three elements below `keep` replaced or deleted."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        candidates = [p for p in paths(doc) if p[:len(keep)] == keep and len(p) > len(keep)]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        replace(doc, path, draw(st.one_of(WRONG, st.just(_DELETE))))
    return doc


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the module; a short expression budget keeps budget breaches quick."""
    url = fresh_database_url(tmp_path_factory.mktemp("fuzz"), "fuzz")
    application = build_app(url, EXPRESSION_TIME_LIMIT_MS=200)
    yield application
    application.extensions["mit_fhir"].store.dispose()
    drop_database(url)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, path: str, body: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type=FHIR_JSON)


def parameters(form: Any, response: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": response},
        {"name": "questionnaire", "resource": form}]}


def extract_answers_below_500_and_stores_nothing(app: Flask, client: FlaskClient,
                                                 body: Any) -> None:
    before = stored_counts(app)
    response = post(client, "/fhir/QuestionnaireResponse/$extract", body)
    assert response.status_code < 500, response.json
    assert response.json["resourceType"] in ("Bundle", "OperationOutcome")
    assert stored_counts(app) == before


@FUZZED
@given(form=mutated(SITE_FORM))
def test_a_fuzzed_site_questionnaire_never_answers_5xx(
    app: Flask, client: FlaskClient, form: Any
) -> None:
    extract_answers_below_500_and_stores_nothing(app, client, parameters(form, SITE_RESPONSE))


@FUZZED
@given(qr=mutated(SITE_RESPONSE))
def test_a_fuzzed_response_to_a_site_questionnaire_never_answers_5xx(
    app: Flask, client: FlaskClient, qr: Any
) -> None:
    extract_answers_below_500_and_stores_nothing(app, client, parameters(SITE_FORM, qr))


@settings(FUZZED, max_examples=40)
@given(body=mutated(parameters(SITE_FORM, SITE_RESPONSE), keep=("parameter",)))
def test_fuzzed_extract_parameters_never_answer_5xx(
    app: Flask, client: FlaskClient, body: Any
) -> None:
    extract_answers_below_500_and_stores_nothing(app, client, body)


@pytest.mark.parametrize("form", ["medication-plan", "crisis-contact-plan"])
@settings(FUZZED, max_examples=40)
@given(data=st.data())
def test_fuzzed_plan_answers_never_answer_5xx(
    app: Flask, client: FlaskClient, form: str, data: st.DataObject
) -> None:
    qr = data.draw(mutated(sample(form), keep=("item",)))
    before = stored_counts(app)
    response = post(client, "/fhir/QuestionnaireResponse", qr)
    assert response.status_code < 500, response.json
    if response.status_code >= 400:
        assert stored_counts(app) == before
