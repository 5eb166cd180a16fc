"""The AuditEvent mapping: a search names a bounded number of resources and records its query;
a create or read names everything it stored or returned."""

from __future__ import annotations

import base64

from mit_fhir.fhir.audit import MAX_ENTITIES, MAX_QUERY, Agent, AuditRecord, audit_event

AGENT = Agent(None, None, None, None, None)


def test_a_create_still_names_everything_it_stored() -> None:
    """The bound is the search's: a submission's AuditEvent lists the response and every score,
    however many an instrument has."""
    stored = [f"Observation/o{n}" for n in range(MAX_ENTITIES + 5)]
    create = audit_event(AuditRecord("create", "QuestionnaireResponse", stored, ["p"]), AGENT,
                         201, "2026-12-01T00:00:00Z", None)
    search = audit_event(AuditRecord("search-type", "Observation", stored, ["p"],
                                     [("patient", "Patient/p")], len(stored)), AGENT, 200,
                         "2026-12-01T00:00:00Z", None)
    refs = [e["what"].get("reference") for e in create["entity"]]
    assert set(stored) <= set(refs)
    named = [e for e in search["entity"] if e["what"].get("reference", "").startswith("Obs")]
    assert len(named) == MAX_ENTITIES


def test_a_search_records_its_query_but_never_its_cursor_and_a_bounded_length() -> None:
    args = [("code", "http://loinc.org|44261-6"), ("_cursor", "opaque"),
            ("identifier", "x" * (3 * MAX_QUERY))]
    event = audit_event(AuditRecord("search-type", "Observation", [], [], args, 0), AGENT, 200,
                        "2026-12-01T00:00:00Z", None)
    (query,) = [e for e in event["entity"] if "query" in e]
    text = base64.b64decode(query["query"]).decode()
    assert text.startswith("code=http%3A%2F%2Floinc.org%7C44261-6&identifier=xxx")
    assert "_cursor" not in text and len(text) == MAX_QUERY
    assert query["detail"] == [{"type": "results", "valueString": "0"}]
