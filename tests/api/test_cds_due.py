"""The CDS card of what is overdue: Tasks stored through mit_fhir.usecases.tasks for the demo
patient,
read back by the patient-view service with real bearer tokens (and a golden at a fixed now).

The demo itself leaves two forms overdue: its follow-up schedule's DERS and SCL-90-R Tasks,
due 22 days before the load (docs/clinical/schedules.md), so their cards are in every call."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask

from mit_fhir.fhir import task as fhir_task
from mit_fhir.usecases import due, tasks
from mit_fhir.usecases.cds import SUMMARY_MAX, outcome_cards
from mit_fhir.usecases.demo import load_demo
from mit_fhir.usecases.timeline import timeline_for
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


# The demo's own follow-up forms, overdue by three weeks whenever it is loaded.
FOLLOW_UP = ["DERS overdue by 3 weeks (last 2020-09-07)",
             "SCL-90-R overdue by 3 weeks (last 2020-09-07)"]


def overdue_of(cards: list[dict[str, Any]]) -> list[str]:
    return [s for s in summaries(cards) if " overdue by " in s]


def test_an_overdue_task_is_a_card_beside_its_change_summary(
        secured_demo: Flask, tokens: Tokens) -> None:  # noqa: F811
    api = secured_demo.test_client()
    late = assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/ders", ago(36), ago(22))
    # Due all of the day 6 days ago: overdue by 5 whole days.
    assign(secured_demo, "https://mit-fhir.org/fhir/Questionnaire/cssrs-screener", ago(19), ago(6))
    cards = call(api, hook(), tokens("clinic-app")).get_json()["cards"]
    said = summaries(cards)
    change = said.index("DERS 118 -> 57 since 2019-03: reliable improvement, recovered")
    ders = cards[change + 1]
    # The demo's last DERS is the case report's 2020-09-07 (not synthetic).
    assert ders["summary"] == "DERS overdue by 3 weeks (last 2020-09-07)"
    assert ders["indicator"] == "info" and "by the patient (self-report)" in ders["detail"]
    # The one assigned here and the demo's follow-up one, both due 22 days ago.
    assert "2 open Tasks for this form are overdue." in ders["detail"]
    assert overdue_of(cards) == [*FOLLOW_UP, "C-SSRS screener overdue by 5 days (never completed)"]
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
    assert overdue_of(cards) == [
        "BPD Criteria overdue by 3 months (last 2020-09-07, synthetic)", *FOLLOW_UP]
    (card,) = [c for c in cards if c["summary"].startswith("BPD Criteria overdue")]
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
    # The three change cards and the demo's own two overdue forms; the DERS and SCL-90-R
    # Tasks completed or cancelled here count for nothing (one overdue Task per form).
    assert len(cards) == 5 and overdue_of(cards) == FOLLOW_UP
    assert not [c for c in cards if "open Tasks for this form" in c["detail"]]


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
    assert overdue("patient/Observation.rs patient/Task.rs") == FOLLOW_UP


NOW = datetime(2021, 3, 1, 9, 0, tzinfo=UTC)


def test_the_overdue_cards_golden(app: Flask) -> None:
    """The demo loaded at a fixed instant (its follow-up's DERS and SCL-90-R due 22 days
    before) and three Tasks more: DERS two weeks late, SCL-90-R not yet due, the BPD criteria
    (the clinician's) four months late. Nothing in it depends on the day the suite runs."""
    context = app.extensions["mit_fhir"]
    load_demo(context, now=NOW)
    with context.store.transaction() as conn:
        for tid, form, end in (("t-ders", "ders", "2021-02-14"), ("t-scl", "scl-90-r",
                                                                   "2021-03-10"),
                               ("t-bpd", "bpd-criteria", "2020-10-31")):
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
                       *FOLLOW_UP]
    ders = next(c for c in cards["cards"] if c["summary"] == FOLLOW_UP[0])
    assert "(DERS): due 2021-02-07," in ders["detail"]  # the follow-up's, the longest overdue
    assert "2 open Tasks for this form are overdue." in ders["detail"]  # and t-ders
    compare_golden(GOLDEN / "cds" / "demo-mit-1-overdue.json", cards)
