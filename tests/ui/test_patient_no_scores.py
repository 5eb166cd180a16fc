"""The patient's form carries no score (fix finding 1): in chromium, PHQ-9 and DERS filled on
the patient's page show no calculated item (no total, subscale or band, label or value) while
filling, and the service still scores the response from its own Questionnaire."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mit_fhir.fhir import task as fhir_task
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.items import walk_items
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.store import repository
from mit_fhir.ui import presentation
from mit_fhir.vocabulary import EXT_CALCULATED_EXPRESSION
from tests.conftest import load_json
from tests.ui.conftest import AppServer, screenshot
from tests.ui.helpers import answer_codes
from tests.ui.patient_seed import new_patient, portal_launch, seed_task
from tests.ui.test_browser import click_answer


def _form(name: str) -> dict[str, Any]:
    return load_json(QUESTIONNAIRE_DIR / f"{name}.json")


def _calculated(questionnaire: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in walk_items(questionnaire["item"])
            if any(e["url"] == EXT_CALCULATED_EXPRESSION for e in i.get("extension", []))]


def test_the_patient_variant_drops_every_calculated_item_and_keeps_the_questions() -> None:
    for name in ("phq-9", "ders", "scl-90-r", "cssrs-screener"):
        form = _form(name)
        served = presentation.for_patient(form)
        linked = {i["linkId"] for i in walk_items(served["item"])}
        assert _calculated(form) and not _calculated(served)
        asked = {i["linkId"] for i in walk_items(form["item"])} - {
            i["linkId"] for i in _calculated(form)}
        assert asked <= linked | {i["linkId"] for i in walk_items(form["item"])
                                  if i.get("type") == "group"}
        assert not {i["linkId"] for i in _calculated(form)} & linked



def _observations(server: AppServer, response: str) -> list[dict[str, Any]]:
    with server.app.extensions["mit_fhir"].store.transaction() as conn:
        return repository.search(conn, "Observation", [Criterion(
            "derived-from", "eq", (f"QuestionnaireResponse/{response}",))])


def _task(server: AppServer, tid: str) -> dict[str, Any]:
    with server.app.extensions["mit_fhir"].store.transaction() as conn:
        found = repository.read(conn, "Task", tid)
    assert found is not None
    return found


@pytest.mark.parametrize("name", ["phq-9", "ders"])
def test_no_score_shows_while_the_patient_fills_and_the_response_is_scored(
        app_server: AppServer, medplum_server: Any, browser: Any, patient_user: Any,
        name: str) -> None:
    form = _form(name)
    me = new_patient(medplum_server, "Bianchi")
    tid = seed_task(app_server.app, me, f"{form['url']}|{form['version']}")
    patient_user(me)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True,
                              locale="en-GB")
    page = ctx.new_page()
    try:
        portal_launch(page, app_server, me)
        page.goto(f"{app_server.url}/app/my/tasks/{tid}")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        codes = answer_codes()
        asked = [i["linkId"] for i in walk_items(form["item"]) if i["linkId"] in codes]
        for link in asked:
            click_answer(page, link, max(codes[link]))
        page.wait_for_timeout(500)  # LHC-Forms recalculates after each answer
        text = page.inner_text("main")
        calculated = _calculated(form)
        for item in calculated:
            assert item["text"] not in text
            assert page.locator(f'[id^="{item["linkId"]}/"]').count() == 0
            for option in item.get("answerOption", []):
                assert option["valueCoding"]["display"] not in text
        assert not re.search(r"\btotal\b|\bscore\b", text, re.IGNORECASE)
        screenshot(page, f"patient-{name}-no-scores")
        page.click("#submit")
        page.wait_for_selector("#thanks:not([hidden])", timeout=30_000)
        ref = fhir_task.response_of(_task(app_server, tid))
        assert ref is not None
        scored = _observations(app_server, ref.split("/")[1])
        extracted = [i for i in calculated if any(
            e["url"].endswith("observationExtract") for e in i.get("extension", []))]
        assert extracted and len([o for o in scored if "hasMember" not in o]) >= len(extracted)
        values = [o.get("valueQuantity", {}).get("value") for o in scored]
        assert any(isinstance(v, int | float) and v > 0 for v in values)
    finally:
        ctx.close()
