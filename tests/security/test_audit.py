"""AuditEvents for every create, read and search of patient data; Provenance per extraction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from mit_fhir.security import audit
from tests.conftest import FHIR_JSON, sample, stored_counts
from tests.security.conftest import OTHER, PATIENT, Tokens

MARKER = "Zebulon-Quartz-4417"  # a free-text answer that must never reach the audit trail


def _events(api: FlaskClient, tokens: Tokens, query: str = "") -> list[dict[str, Any]]:
    bundle = api.get(f"/fhir/AuditEvent?{query}", headers=tokens("backend")).get_json()
    return [e["resource"] for e in bundle["entry"]]


def _submit(api: FlaskClient, headers: dict[str, str], patient: str = PATIENT) -> Any:
    qr = sample("phq-9")
    qr["subject"] = {"reference": f"Patient/{patient}"}
    return api.post("/fhir/QuestionnaireResponse", data=json.dumps(qr), content_type=FHIR_JSON,
                    headers=headers)


def test_create_read_and_search_are_audited(api: FlaskClient, tokens: Tokens) -> None:
    clinic = tokens("clinic-app")
    qr = _submit(api, clinic).get_json()
    obs = api.get(f"/fhir/Observation?derived-from=QuestionnaireResponse/{qr['id']}",
                  headers=clinic).get_json()["entry"]
    api.get(f"/fhir/Observation/{obs[0]['resource']['id']}", headers=clinic)

    events = _events(api, tokens, f"patient=Patient/{PATIENT}")
    by_subtype = {e["subtype"][0]["code"]: e for e in events}
    assert set(by_subtype) >= {"create", "search-type", "read"}
    create = by_subtype["create"]
    assert create["action"] == "C" and create["outcome"] == "0"
    assert {"reference": f"QuestionnaireResponse/{qr['id']}"} in [
        e["what"] for e in create["entity"]]
    assert {"reference": f"Observation/{obs[0]['resource']['id']}"} in [
        e["what"] for e in create["entity"]], "the derived scores are listed with the create"
    who = create["agent"][0]
    assert who["who"]["reference"] == "Practitioner/dr-1"
    assert who["who"]["identifier"]["value"] == "clinic-app"
    assert who["altId"] == "clinic-app"
    assert who["network"]["address"] == "127.0.0.1"
    assert by_subtype["read"]["action"] == "R"
    assert {"reference": f"Observation/{obs[0]['resource']['id']}"} in [
        e["what"] for e in by_subtype["read"]["entity"]]
    assert by_subtype["search-type"]["action"] == "E"


def test_refusals_are_audited_as_failures(api: FlaskClient, tokens: Tokens) -> None:
    assert _submit(api, tokens("patient-app"), patient=OTHER).status_code == 403
    failures = _events(api, tokens, "outcome=4")
    assert failures and failures[-1]["outcomeDesc"] == "HTTP 403"
    assert failures[-1]["agent"][0]["altId"] == "patient-app"


def test_the_catalogue_is_not_patient_data(api: FlaskClient, tokens: Tokens) -> None:
    before = len(_events(api, tokens))
    api.get("/fhir/Questionnaire/phq-9", headers=tokens("clinic-app"))
    assert len(_events(api, tokens)) == before + 1  # only the AuditEvent search itself


def test_every_extraction_has_a_provenance(api: FlaskClient, tokens: Tokens) -> None:
    clinic = tokens("clinic-app")
    qr = _submit(api, clinic).get_json()
    found = api.get(f"/fhir/Provenance?entity=QuestionnaireResponse/{qr['id']}",
                    headers=clinic).get_json()
    assert found["total"] == 1
    prov = found["entry"][0]["resource"]
    obs = api.get(f"/fhir/Observation?derived-from=QuestionnaireResponse/{qr['id']}",
                  headers=clinic).get_json()
    assert {t["reference"] for t in prov["target"]} == {
        f"Observation/{e['resource']['id']}" for e in obs["entry"]}
    assert prov["entity"] == [{"role": "derivation",
                               "what": {"reference": f"QuestionnaireResponse/{qr['id']}"}}]
    assert api.get(f"/fhir/Provenance?patient=Patient/{PATIENT}",
                   headers=clinic).get_json()["total"] >= 1


def test_audit_and_provenance_carry_no_answer_content(api: FlaskClient, tokens: Tokens) -> None:
    clinic = tokens("clinic-app")
    qr = sample("mit-episode")
    qr["subject"] = {"reference": f"Patient/{PATIENT}"}
    text_answers = 0
    for item in _walk(qr["item"]):
        for answer in item.get("answer", []):
            if "valueString" in answer:
                answer["valueString"] = MARKER
                text_answers += 1
    assert text_answers, "the sample needs a free-text answer"
    assert api.post("/fhir/QuestionnaireResponse", data=json.dumps(qr), content_type=FHIR_JSON,
                    headers=clinic).status_code == 201
    api.get(f"/fhir/QuestionnaireResponse?patient=Patient/{PATIENT}", headers=clinic)
    trail = api.get("/fhir/AuditEvent", headers=tokens("backend")).get_data(as_text=True)
    trail += api.get("/fhir/Provenance", headers=clinic).get_data(as_text=True)
    assert MARKER not in trail


def _walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        out.append(item)
        out += _walk(item.get("item", []))
        for answer in item.get("answer", []):
            out += _walk(answer.get("item", []))
    return out



def test_a_create_and_its_audit_event_commit_together(
    api: FlaskClient, tokens: Tokens, secured_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One commit per create, and no stored response without its AuditEvent."""
    engine = secured_app.extensions["mit_fhir"].store.engine
    commits: list[object] = []

    def count(conn: object) -> None:
        commits.append(conn)

    event.listen(engine, "commit", count)
    try:
        created = _submit(api, tokens("clinic-app"))
    finally:
        event.remove(engine, "commit", count)
    assert created.status_code == 201
    assert len(commits) == 1, "the response, its scores and its AuditEvent in one transaction"
    creates = _events(api, tokens, "subtype=create")
    assert [e["outcome"] for e in creates] == ["0"]

    before = stored_counts(secured_app)

    def refuse(_conn: object, _event: object) -> None:
        raise OperationalError("INSERT INTO resource", {}, Exception("disk I/O error"))

    monkeypatch.setattr(audit, "_insert", refuse)
    failed = _submit(api, tokens("clinic-app"))
    assert failed.status_code == 503
    assert failed.get_json()["resourceType"] == "OperationOutcome"
    assert stored_counts(secured_app) == before, "nothing stored when its audit cannot be"


def test_a_read_that_cannot_be_audited_logs_the_traceback(
    api: FlaskClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in the audit write (here a KeyError) answers 503 like a full disk, and the log keeps
    its traceback, so it does not pass for one."""
    def broken(_conn: object, _event: object) -> None:
        raise KeyError("a bug, not a disk")

    monkeypatch.setattr(audit, "_insert", broken)
    with caplog.at_level("ERROR", logger="mit_fhir"):
        resp = api.get(f"/fhir/Observation?patient=Patient/{PATIENT}", headers=tokens("clinic-app"))
    assert resp.status_code == 503
    record = next(r for r in caplog.records if "could not be stored" in r.getMessage())
    assert record.exc_info and record.exc_info[0] is KeyError
