"""The clinician's findings on the form page, in Debian's chromium: Italian dates read day
first, a line for the person who filled a form that raised an alert, refusals that name the
question as it is shown and mark it, a form without Italian opened in Italian
(screenshots in build/screenshots/)."""

from __future__ import annotations

from typing import Any

import pytest

from mit_fhir.ui import i18n
from tests.ui.conftest import AppServer, create_in_ehr, screenshot
from tests.ui.test_browser import axe_violations, click_answer, launch
from tests.ui.test_form_page import open_form

DRAFT = "() => fetch(document.getElementById('form').dataset.draft).then(r => r.json())"


@pytest.fixture
def patient_page(app_server: AppServer, medplum_server: Any, browser: Any) -> Any:
    """A page launched from the EHR for a new patient, 1280 px wide (axe may be injected)."""
    patient = create_in_ehr(medplum_server.base_url, {"resourceType": "Patient"})["id"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    launch(page, app_server, patient)
    yield page
    context.close()


def answer_of(draft: dict[str, Any], link_id: str) -> list[Any]:
    """Every answer value of `link_id` in a (nested) response."""
    found: list[Any] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item["linkId"] == link_id:
                found.extend(v for a in item.get("answer", []) for v in a.values())
            walk(item.get("item", []))
            for answer in item.get("answer", []):
                walk(answer.get("item", []))

    walk(draft.get("item", []))
    return found


def save_draft(page: Any) -> dict[str, Any]:
    page.click("#save-draft")
    page.wait_for_selector("#status:has-text('Bozza salvata'), #status:has-text('Draft saved')")
    draft: dict[str, Any] = page.evaluate(DRAFT)
    return draft


def test_an_italian_date_is_read_day_first_and_an_english_one_month_first(
        app_server: AppServer, patient_page: Any) -> None:
    page = patient_page
    open_form(page, app_server, "medication-plan", "it")
    field = page.locator('input.day-first[data-item="medplan-date/1"]')
    assert field.get_attribute("placeholder") == "GG/MM/AAAA"
    assert page.locator('nz-date-picker[id="medplan-date/1"]').is_hidden()
    field.fill("02/03/2026")  # 2 March
    field.press("Tab")
    start = page.locator('input.day-first[data-item="medplan-med-start/1/1"]')
    start.fill("4.3.2026")
    start.press("Tab")
    # A medicine added later (a repetition the renderer draws then) is read day first too.
    page.locator("#form button").filter(has_text="Farmaco").last.click()
    second = page.locator('input.day-first[data-item="medplan-med-start/2/1"]')
    second.fill("13/01/2026")
    second.press("Tab")
    screenshot(page, "medication-plan-it-day-first")
    draft = save_draft(page)
    assert answer_of(draft, "medplan-date") == ["2026-03-02"]
    assert answer_of(draft, "medplan-med-start") == ["2026-03-04", "2026-01-13"]
    # The draft comes back as it was written.
    open_form(page, app_server, "medication-plan", "it")
    assert field.input_value() == "02/03/2026"
    assert start.input_value() == "04/03/2026"
    # A date that does not exist is said, and nothing is sent until it is put right.
    field.fill("31/02/2026")
    page.click("#submit")
    assert page.inner_text("#status") == i18n.words("it")["date_fix"]
    assert field.get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.dataset.item") == "medplan-date/1"
    assert "31/02/2026" in page.inner_text('[id="day-first-medplan-date/1"]')
    assert answer_of(page.evaluate(DRAFT), "medplan-date") == ["2026-03-02"]
    assert axe_violations(page, "#form") == []
    # English: LHC-Forms' own field, month first, as before.
    open_form(page, app_server, "medication-plan", "en")
    assert page.locator("input.day-first").count() == 0
    own = page.locator('nz-date-picker[id="medplan-date/1"] input')
    assert own.get_attribute("placeholder") == "MM/DD/YYYY"
    own.click()
    own.fill("02/03/2026")
    own.press("Enter")
    page.locator("h1").click()
    assert answer_of(save_draft(page), "medplan-date") == ["2026-02-03"]


def test_an_alert_tells_the_person_who_filled_the_form_where_to_turn(
        app_server: AppServer, patient_page: Any) -> None:
    page = patient_page
    english, italian = i18n.words("en")["alert_help"], i18n.words("it")["alert_help"]
    assert english != italian
    # PHQ-9 has no Italian version: asked in Italian, the English form says it in both.
    for lang, shown in (("en", [english]), ("it", [english, italian])):
        page.goto(f"{app_server.url}/app/forms/phq-9?lang={lang}")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        assert page.locator("#alert-help").is_hidden()
        for n in range(1, 10):
            click_answer(page, f"phq-9-{n}", 3 if n == 9 else 0)
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        assert page.locator("#alerts li").count() >= 1  # the clinician's message stays
        lines = page.locator("#alerts[role=alert] .alert-help")
        assert lines.all_inner_texts() == shown
        assert all(line.is_visible() for line in lines.all())
        if lang == "it":
            assert page.get_attribute("#alert-help-asked", "lang") == "it"
        screenshot(page, f"phq-9-item-9-help-{lang}")
    assert axe_violations(page) == []
    # No alert, no line: a form with nothing to flag says nothing about harm.
    page.goto(f"{app_server.url}/app/forms/phq-9")
    page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
    for n in range(1, 10):
        click_answer(page, f"phq-9-{n}", 0)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.locator("#alert-help").is_hidden()


def test_a_refusal_names_the_question_by_its_text_and_marks_it(app_server: AppServer,
                                                                patient_page: Any) -> None:
    page = patient_page
    served = open_form(page, app_server, "phq-9")
    assert not any(i.get("prefix") for i in served["item"])  # the form shows no numbers
    for n in (1, 3, 4, 5, 6, 7, 8, 9):
        click_answer(page, f"phq-9-{n}", 1)
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Not submitted')")
    second = next(i for i in served["item"] if i["linkId"] == "phq-9-2")["text"]
    said = page.inner_text("#status")
    assert f"Please answer the question \u201c{second}\u201d." in said
    assert "question 2" not in said
    marked = page.locator("#form .refused")
    assert marked.count() == 1
    assert second in marked.inner_text()
    focused = page.evaluate("document.activeElement.id")
    assert focused.startswith("phq-9-2/"), focused
    screenshot(page, "phq-9-refusal-marked")
    click_answer(page, "phq-9-2", 0)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.locator("#form .refused").count() == 0


def test_italian_asked_of_a_form_without_it_shows_the_english_form_and_says_so(
        app_server: AppServer, patient_page: Any) -> None:
    page = patient_page
    catalogue = app_server.app.extensions["mit_fhir"].catalogue
    for qid in ("phq-9", "gad-7", "ders"):
        assert "it" not in i18n.languages(catalogue.get(qid))
        page.goto(f"{app_server.url}/app/forms/{qid}?lang=it")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        notice = page.locator("#notice[lang=it]")
        assert notice.inner_text() == ("Questo questionario non ha una versione in italiano: "
                                       "\u00e8 mostrato in inglese.")
        assert page.get_attribute("#form", "lang") == "en"
    screenshot(page, "ders-asked-in-italian")
    page.goto(f"{app_server.url}/app/forms/phq-9?lang=en")
    assert page.locator("#notice").count() == 0
