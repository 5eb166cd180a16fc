"""The CDS card of what is overdue: Tasks stored through mit_fhir.tasks for the demo patient,
read back by the patient-view service with real bearer tokens (and a golden at a fixed now)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask

from mit_fhir import due, tasks
from mit_fhir.cds import SUMMARY_MAX, outcome_cards
from mit_fhir.demo import load_demo
from mit_fhir.fhir import task as fhir_task
from mit_fhir.timeline import timeline_for
from tests.api.test_cds_hooks import DEMO, call, hook
from tests.fhir.test_extract import GOLDEN, compare_golden
from tests.security.conftest import (  # noqa: F401 - fixtures
    Tokens,
    bearer,
    issuer,
    secured_demo,
    secured_settings,
    tokens,
)
from tests.security.issuer import Issuer

DR = "Practitioner/dr-1"


def assign(app: Flask, form: str, start: date, end: date) -> dict[str, Any]:
    context = app.extensions["mit_fhir"]
    with context.store.transaction() as conn:
        return tasks.assign(conn, context, form, DEMO, DR, start.isoformat(), end.isoformat())


def ago(days: int) -> date:
    return (datetime.now(UTC) - timedelta(days=days)).date()


def summaries(cards: list[dict[str, Any]]) -> list[str]:
    return [c["summary"] for c in cards]


def test_an_overdue_task_is_a_card_beside_its_change_summary(
        secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    api = secured_demo.test_client()
    late = assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/ders", ago(36), ago(22))
    assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/cssrs-screener", ago(19), ago(5))
    cards = call(api, hook(), tokens("clinic-app")).get_json()["cards"]
    said = summaries(cards)
    change = said.index("DERS 118 -> 57 since 2019-03: reliable improvement, recovered")
    ders = cards[change + 1]
    # The demo's last DERS is the case report's 2020-09-07 (not synthetic).
    assert ders["summary"] == "DERS overdue by 3 weeks (last 2020-09-07)"
    assert ders["indicator"] == "info" and "by the patient (self-report)" in ders["detail"]
    assert ders["source"]["topic"] == cards[change]["source"]["topic"]
    # Never completed, and a risk screen: a warning, after the forms that have scores.
    risk = cards[-1]
    assert risk["summary"] == "C-SSRS screener overdue by 5 days (never completed)"
    assert risk["indicator"] == "warning" and "Never completed." in risk["detail"]
    assert all(len(s) <= SUMMARY_MAX for s in said)
    assert len({c["uuid"] for c in cards}) == len(cards)
    # The Tasks the cards name are in the call's audit record, with their patient.
    events = [e["resource"] for e in
              api.get("/fhir/AuditEvent", headers=tokens("clinic-app")).get_json()["entry"]]
    named = {en.get("what", {}).get("reference") for ev in events for en in ev.get("entity", [])}
    assert f"Task/{late['id']}" in named and f"Patient/{DEMO}" in named


def test_a_synthetic_last_completion_says_so(secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/bpd-criteria", ago(120),
           ago(100))
    cards = call(secured_demo.test_client(), hook(), tokens("clinic-app")).get_json()["cards"]
    (card,) = [c for c in cards if "overdue" in c["summary"]]
    assert card["summary"] == "BPD Criteria overdue by 3 months (last 2020-09-07, synthetic)"
    assert "by the clinician" in card["detail"] and "synthetic demonstration" in card["detail"]


def test_a_completed_or_cancelled_task_is_no_card(secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    context = secured_demo.extensions["mit_fhir"]
    done = assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/ders", ago(36), ago(22))
    dropped = assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/scl-90-r", ago(36),
                     ago(22))
    with context.store.transaction() as conn:
        tasks.store_version(conn, context, fhir_task.completed_by(
            done, "QuestionnaireResponse/x", "2026-01-01T10:00:00Z"), 1)
        tasks.cancel(conn, context, dropped["id"], datetime.now(UTC), "no longer needed")
    cards = call(secured_demo.test_client(), hook(), tokens("clinic-app")).get_json()["cards"]
    assert len(cards) == 3 and not [s for s in summaries(cards) if "overdue" in s]


def test_only_a_token_that_may_search_tasks_gets_the_overdue_card(
        secured_demo: Flask, issuer: Issuer) -> None:  # noqa: F811
    api = secured_demo.test_client()
    assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/ders", ago(36), ago(22))

    def overdue(scope: str) -> list[str]:
        token = issuer.mint({"sub": "ehr-cds-client", "client_id": "ehr", "patient": DEMO,
                             "scope": scope})
        resp = call(api, hook(), bearer(token))
        assert resp.status_code == 200
        return [s for s in summaries(resp.get_json()["cards"]) if "overdue" in s]

    assert overdue("patient/Observation.rs") == []
    assert overdue("patient/Observation.rs patient/Task.rs") == [
        "DERS overdue by 3 weeks (last 2020-09-07)"]


NOW = datetime(2021, 3, 1, 9, 0, tzinfo=UTC)


def test_the_overdue_cards_golden(app: Flask) -> None:
    """The demo's cards with three Tasks at a fixed instant: DERS two weeks late, SCL-90-R not
    yet due, the BPD criteria (the clinician's) months late."""
    context = app.extensions["mit_fhir"]
    load_demo(context)
    with context.store.transaction() as conn:
        for tid, form, end in (("t-ders", "ders", "2021-02-14"), ("t-scl", "scl-90-r",
                                                                   "2021-03-10"),
                               ("t-bpd", "bpd-criteria", "2020-11-01")):
            q = context.catalogue.get(form)
            owner = None if fhir_task.is_self_report(q) else {"reference": DR}
            tasks.store_new(conn, context, fhir_task.questionnaire_task(
                f"{q['url']}|{q['version']}", DEMO, {"reference": DR}, "2020-10-01T09:00:00Z",
                "2020-10-01", end, tid=tid, owner=owner))
        rows = due.summary(conn, context.catalogue, DEMO, NOW)
    cards = outcome_cards(timeline_for(context, DEMO), "golden-hook",
                          "http://localhost/app/launch?view=outcomes", rows)
    overdue = [c["summary"] for c in cards["cards"] if "overdue" in c["summary"]]
    assert overdue == ["BPD Criteria overdue by 4 months (last 2020-09-07, synthetic)",
                       "DERS overdue by 2 weeks (last 2020-09-07)"]
    compare_golden(GOLDEN / "cds" / "demo-mit-1-overdue.json", cards)
