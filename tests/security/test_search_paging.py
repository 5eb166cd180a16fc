"""Paged searches with real tokens: a cursor from patient A's search gives nothing of B's, and
the AuditEvent of a search records its query and result count and names a bounded number of
resources, so reading the audit trail no longer grows it quadratically."""

from __future__ import annotations

import base64
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from mit_fhir.fhir.audit import MAX_ENTITIES
from mit_fhir.store.schema import resource
from tests.api.test_paging import add_observations
from tests.security.conftest import OTHER, PATIENT, Tokens
from tests.security.issuer import Issuer


@pytest.fixture(scope="module", autouse=True)
def other_patient_app(issuer: Issuer) -> None:
    issuer.register("other-reader", "patient/Observation.rs", patient=OTHER)


def _next(bundle: dict[str, Any]) -> str | None:
    url = next((lk["url"] for lk in bundle["link"] if lk["relation"] == "next"), None)
    return None if url is None else f"{urlsplit(url).path}?{urlsplit(url).query}"


def test_a_cursor_from_patient_a_gives_nothing_of_patient_b(
    secured_app: Flask, api: FlaskClient, tokens: Tokens
) -> None:
    add_observations(secured_app, PATIENT, range(8))
    add_observations(secured_app, OTHER, range(8))
    first = api.get("/fhir/Observation?_count=3", headers=tokens("patient-reader")).get_json()
    assert {e["resource"]["subject"]["reference"] for e in first["entry"]} == {
        f"Patient/{PATIENT}"}
    url = _next(first)
    assert url is not None
    cursor = dict(parse_qsl(urlsplit(url).query))["_cursor"]
    attempts = [
        api.get(url, headers=tokens("other-reader")),  # B's token, A's next link
        api.get(f"/fhir/Observation?patient=Patient/{OTHER}&_count=3&_cursor={cursor}",
                headers=tokens("other-reader")),
        api.get(f"/fhir/Observation?patient=Patient/{OTHER}&_count=3&_cursor={cursor}",
                headers=tokens("clinic-app")),  # a user token naming B
        api.get(url, headers=tokens("clinic-app")),  # ... or naming nobody (every patient)
    ]
    for resp in attempts:
        assert resp.status_code == 400, resp.get_json()
        assert OTHER not in resp.get_data(as_text=True)
    # A's own token goes on where it stopped.
    second = api.get(url, headers=tokens("patient-reader")).get_json()
    assert len(second["entry"]) == 3
    assert not {e["resource"]["id"] for e in second["entry"]} & {
        e["resource"]["id"] for e in first["entry"]}


def _latest_search_event(secured_app: Flask) -> dict[str, Any]:
    store = secured_app.extensions["mit_fhir"].store
    with store.transaction() as conn:
        events = [e for e in _audit_events(conn) if e["subtype"][0]["code"] == "search-type"]
    return max(events, key=lambda e: e["recorded"])


def _audit_events(conn: Any) -> list[dict[str, Any]]:
    rows = conn.execute(select(resource.c.content).where(resource.c.resource_type == "AuditEvent"))
    return [orjson.loads(r[0]) for r in rows]


def test_the_audit_event_of_a_search_records_query_and_count_and_few_entities(
    secured_app: Flask, api: FlaskClient, tokens: Tokens
) -> None:
    add_observations(secured_app, PATIENT, range(45))
    resp = api.get("/fhir/Observation?status=final&_count=40", headers=tokens("patient-reader"))
    assert len(resp.get_json()["entry"]) == 40
    event = _latest_search_event(secured_app)
    named = [e for e in event["entity"] if "reference" in e.get("what", {})
             and not e["what"]["reference"].startswith("Patient/")]
    assert len(named) == MAX_ENTITIES
    patients = [e["what"]["reference"] for e in event["entity"]
                if e.get("what", {}).get("reference", "").startswith("Patient/")]
    assert patients == [f"Patient/{PATIENT}"]
    (query,) = [e for e in event["entity"] if "query" in e]
    assert query["role"]["code"] == "24"  # Query
    assert query["detail"] == [{"type": "results", "valueString": "40"}]
    recorded = dict(parse_qsl(base64.b64decode(query["query"]).decode()))
    # The patient criterion the token's context added is what was searched, so it is recorded.
    assert recorded == {"status": "final", "_count": "40", "patient": f"Patient/{PATIENT}"}


def test_the_next_page_is_audited_without_its_cursor(
    secured_app: Flask, api: FlaskClient, tokens: Tokens
) -> None:
    add_observations(secured_app, PATIENT, range(5))
    first = api.get("/fhir/Observation?_count=3", headers=tokens("patient-reader")).get_json()
    api.get(_next(first) or "", headers=tokens("patient-reader"))
    (query,) = [e for e in _latest_search_event(secured_app)["entity"] if "query" in e]
    assert "_cursor" not in base64.b64decode(query["query"]).decode()
    assert query["detail"][0]["valueString"] == "2"


def _audit_bytes(secured_app: Flask) -> int:
    store = secured_app.extensions["mit_fhir"].store
    with store.transaction() as conn:
        return int(conn.execute(select(func.sum(func.length(resource.c.content))).where(
            resource.c.resource_type == "AuditEvent")).scalar_one())


def test_reading_the_audit_trail_grows_it_linearly(
    secured_app: Flask, api: FlaskClient, tokens: Tokens
) -> None:
    for _ in range(60):  # an audit trail of 60 searches to read
        api.get("/fhir/Observation?_count=1", headers=tokens("patient-reader"))
    sizes = [_audit_bytes(secured_app)]
    for _ in range(5):
        resp = api.get("/fhir/AuditEvent", headers=tokens("backend"))
        assert resp.status_code == 200
        sizes.append(_audit_bytes(secured_app))
    growth = [b - a for a, b in pairwise(sizes)]
    # Each read adds one AuditEvent of bounded size (was: one naming every event returned,
    # each read larger than the one before).
    assert max(growth) < 8000, growth
    assert max(growth) - min(growth) < 200, growth



def test_a_patient_sees_the_audit_events_of_its_own_searches(
    secured_app: Flask, api: FlaskClient, tokens: Tokens
) -> None:
    """A search's AuditEvent names the query by display only (no reference): that names no
    patient, so the patient-context filter must not hide the patient's own searches."""
    add_observations(secured_app, PATIENT, range(2))
    assert api.get("/fhir/Observation", headers=tokens("patient-app")).status_code == 200
    trail = api.get("/fhir/AuditEvent?subtype=search-type",
                    headers=tokens("patient-app")).get_json()
    queries = [e for entry in trail.get("entry", [])
               for e in entry["resource"].get("entity", [])
               if e.get("role", {}).get("code") == "24"]
    assert queries, trail
    assert all(OTHER not in orjson.dumps(entry).decode() for entry in trail.get("entry", []))
