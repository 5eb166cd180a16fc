"""The assignments page on the demo patient (`make run`): linked from the landing page, its
synthetic Tasks and schedules labelled, the done ones apart, each form's cadence said."""

from __future__ import annotations

from typing import Any

from flask import Flask

from mit_fhir.ui import i18n
from mit_fhir.usecases import tasks
from mit_fhir.usecases.demo import load_demo
from mit_fhir.usecases.demo_data import demo_data
from tests.ui.helpers import catalogue

CAT = catalogue()
HERE = "https://localhost"


def demo_patient_id() -> str:
    return str(demo_data()["patient"]["id"])


def _rows(app: Flask, lang: str = "en") -> dict[str, Any]:
    """The page's data as tasks.js loads it, once the page has made the demo launch."""
    load_demo(app.extensions["mit_fhir"])
    api = app.test_client()
    assert api.get(f"/app/tasks?lang={lang}", base_url=HERE).status_code == 200
    doc: dict[str, Any] = api.get(f"/app/api/tasks?lang={lang}", base_url=HERE).get_json()
    return doc


def test_the_landing_page_links_the_assigned_forms(app: Flask) -> None:
    load_demo(app.extensions["mit_fhir"])
    api = app.test_client()
    assert 'href="/app/tasks"' in api.get("/").get_data(as_text=True)
    page = api.get("/app/tasks", base_url=HERE)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="synthetic-banner"' in text and 'id="closed-rows"' in text


def test_the_demo_tasks_and_schedules_are_labelled_synthetic(app: Flask) -> None:
    doc = _rows(app)
    assert doc["synthetic"] is True
    # Labelled as stored: the follow-up's open forms and the quarterly ones are synthetic; a
    # Task completed by a response from the published case report is not.
    context = app.extensions["mit_fhir"]
    with context.store.transaction() as conn:
        stored = tasks.tasks_of(conn, demo_patient_id())
    tags = {t["id"]: {g["code"] for g in t["meta"].get("tag", ())} for t in stored}
    assert {t["id"]: t["synthetic"] for t in doc["tasks"]} == {
        tid: "synthetic" in codes for tid, codes in tags.items()}
    assert all(t["synthetic"] for t in doc["tasks"] if t["open"])
    assert {"synthetic", "case-report"} <= set().union(*tags.values())
    assert doc["schedules"] and all(s["synthetic"] for s in doc["schedules"])
    # Both lists have rows: the follow-up's open forms and the treatment's completed ones.
    assert {t["open"] for t in doc["tasks"]} == {True, False}
    assert all(t["done"] for t in doc["tasks"] if t["status"] == "completed")


def test_each_forms_cadence_is_said_when_they_differ(app: Flask) -> None:
    ders, scl, bpd = (CAT.get(q)["title"] for q in ("ders", "scl-90-r", "bpd-criteria"))
    for lang, said in (("en", f"{ders}, {scl}: every 13 weeks; {bpd}: twice, 79 weeks apart"),
                       ("it", f"{ders}, {scl}: ogni 13 settimane; {bpd}: due volte, a 79 "
                              "settimane di distanza")):
        doc = _rows(app, lang)
        cadences = {s["cadence"] for s in doc["schedules"]}
        assert said in cadences, cadences
        assert i18n.words(lang)["units"]["wk"]["many"].format(n=26) in cadences  # one cadence
