"""Fix round of issue 14 on the patient's pages, in chromium against the real SMART suite: an
Italian patient keeps Italian words on an English-only form and is told so (finding 3), the
draft's time is local (6), progress is shown and the save/send bar sticks on a phone (7), due
dates are written out (8), crisis numbers are tel: links (9)."""

from __future__ import annotations

import re
from typing import Any

from mit_fhir.paths import QUESTIONNAIRE_DIR
from tests.conftest import load_json
from tests.ui.conftest import AppServer, screenshot
from tests.ui.patient_seed import new_patient, portal_launch, seed_task
from tests.ui.test_browser import click_answer

PHQ9 = load_json(QUESTIONNAIRE_DIR / "phq-9.json")



def test_an_italian_patient_fills_an_english_only_form_in_italian_words(
        app_server: AppServer, medplum_server: Any, browser: Any, patient_user: Any) -> None:
    me = new_patient(medplum_server, "Russo")
    tid = seed_task(app_server.app, me, f"{PHQ9['url']}|{PHQ9['version']}",
                    due="2099-11-29T00:00:00Z")
    overdue = seed_task(app_server.app, me, f"{PHQ9['url']}|{PHQ9['version']}",
                        due="2021-03-01T00:00:00Z")
    patient_user(me)
    ctx = browser.new_context(viewport={"width": 360, "height": 700}, bypass_csp=True,
                              locale="it-IT", timezone_id="Europe/Rome")
    page = ctx.new_page()
    try:
        portal_launch(page, app_server, me)
        page.goto(f"{app_server.url}/app/my?lang=it")
        due = page.locator(f"#my-tasks li[data-task='{tid}'] .my-task-due")
        assert "Da compilare entro il 29 novembre 2099" in due.inner_text()
        assert due.locator("time").evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
        late = page.locator(f"#my-tasks li[data-task='{overdue}'] .my-task-due").inner_text()
        assert "1 marzo 2021" in late and "In ritardo" not in late

        page.click(f"#my-tasks li[data-task='{tid}'] a")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        assert page.evaluate("document.documentElement.lang") == "it"
        assert "inglese" in page.inner_text("#notice")
        assert page.inner_text("#save-draft") == "Salva bozza"
        assert page.inner_text("#submit") == "Invia"
        assert page.locator("#form").get_attribute("lang") == "en"
        assert page.inner_text("#progress") == "0 di 10 risposte date"
        assert page.locator("#progress").get_attribute("aria-live") == "polite"
        for link in ("phq-9-1", "phq-9-2", "phq-9-3"):
            click_answer(page, link, 1)
        page.wait_for_selector("#progress:has-text('3 di 10')")
        bar = page.locator(".actions")
        assert bar.evaluate("e => getComputedStyle(e).position") == "sticky"
        # The bar is in reach at the top of a long form on a phone.
        box = bar.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 700 + 1
        page.click("#save-draft")
        page.wait_for_selector("#status:has-text('Bozza salvata alle')")
        status = page.inner_text("#status")
        assert re.search(r"Bozza salvata alle \d{2}:\d{2}\.", status), status
        assert "T" not in status.split("alle")[1] and "Z" not in status
        safety = page.locator("#safety a[href^='tel:']")
        assert safety.evaluate_all("els => els.map(e => e.getAttribute('href'))") == [
            "tel:112", "tel:0223272327"]
        screenshot(page, "patient-form-it-360")
    finally:
        ctx.close()


def test_the_phq9_difficulty_question_is_answered_by_keyboard(
        app_server: AppServer, medplum_server: Any, browser: Any, patient_user: Any) -> None:
    """Fix finding 5: PHQ-9's last question is LHC-Forms' radio list (ng-zorro), which takes
    Space and the arrows in its model but left the native radio unchecked (what a screen
    reader reads). By keyboard alone: Tab to it, Space, ArrowDown; the checked radio, its
    look and the answer sent agree."""
    me = new_patient(medplum_server, "Gallo")
    tid = seed_task(app_server.app, me, f"{PHQ9['url']}|{PHQ9['version']}")
    patient_user(me)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = ctx.new_page()
    try:
        portal_launch(page, app_server, me)
        page.goto(f"{app_server.url}/app/my/tasks/{tid}")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        for n in range(1, 10):
            click_answer(page, f"phq-9-{n}", 0)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.name") == "radiogroup_phq-9-difficulty/1"
        checked = ("Array.from(document.querySelectorAll('[id^=\"phq-9-difficulty/\"]'))"
                   ".filter(e => e.querySelector('input').checked).map(e => e.id.split('|')[2])")
        looks = ("Array.from(document.querySelectorAll('[id^=\"phq-9-difficulty/\"]'))"
                 ".filter(e => e.classList.contains('ant-radio-wrapper-checked'))"
                 ".map(e => e.id.split('|')[2])")
        page.keyboard.press("Space")
        page.wait_for_function(f"({checked}).length === 1")
        assert page.evaluate(checked) == page.evaluate(looks) == ["LA6572-7"]
        page.keyboard.press("ArrowDown")
        page.wait_for_function(f"({checked})[0] === 'LA6573-5'")
        assert page.evaluate(checked) == page.evaluate(looks) == ["LA6573-5"]
        page.click("#submit")
        page.wait_for_selector("#thanks:not([hidden])", timeout=30_000)
        with app_server.app.extensions["mit_fhir"].store.transaction() as conn:
            from mit_fhir.fhir import task as fhir_task
            from mit_fhir.store import repository
            task = repository.read(conn, "Task", tid)
            assert task is not None
            ref = fhir_task.response_of(task)
            assert ref is not None
            response = repository.read(conn, "QuestionnaireResponse", ref.split("/")[1])
        assert response is not None
        answer = next(i for i in response["item"] if i["linkId"] == "phq-9-difficulty")
        assert answer["answer"][0]["valueCoding"]["code"] == "LA6573-5"
    finally:
        ctx.close()
