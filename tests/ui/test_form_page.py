"""What a patient sees on the form page, in Debian's chromium: no scoring key beside the
answers, grids for items on one scale, one screen wide on a phone, the page in Italian,
plain-language refusals, the licensed-wording notice (screenshots in build/screenshots/)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mit_fhir.fhir.items import walk_items
from mit_fhir.ui import i18n
from mit_fhir.usecases.catalogue import licensed_slots, load_wording
from tests.ui.conftest import AppServer, create_in_ehr, run_app_server, screenshot
from tests.ui.helpers import catalogue
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_browser import axe_violations, click_answer, launch

# Every answer the page renders: list labels (id "linkId/1|system|code"), grid radio buttons
# (aria-label "<answer> for <question>") and grid column headers.
RENDERED = """() => {
  const list = Array.from(document.querySelectorAll('#form label.lhc-answer[id*="|"]'))
    .map(l => ({kind: 'list', id: l.id, text: l.innerText.trim()}));
  const grid = Array.from(document.querySelectorAll(
      '#form .lhc-form-matrix-table input[type=radio][id*="|"]'))
    .map(i => ({kind: 'grid', id: i.id, text: i.getAttribute('aria-label')}));
  const heads = Array.from(document.querySelectorAll('#form .lhc-form-matrix-table'))
    .map(t => ({kind: 'head', id: (t.querySelector('input[type=radio]') || {}).id || '',
                texts: Array.from(t.querySelectorAll('thead th.lhc-form-matrix-cell'))
                  .map(th => th.innerText.trim())}));
  return list.concat(grid, heads);
}"""
SCROLL = "() => [document.scrollingElement.scrollWidth, window.innerWidth]"


def forms_and_languages() -> list[tuple[str, str]]:
    return [(q["id"], lang) for q in catalogue() for lang in i18n.languages(q)]


def open_form(page: Any, server: AppServer, qid: str, lang: str = "en") -> dict[str, Any]:
    """Open the form and return the Questionnaire as the page received it (translated)."""
    page.goto(f"{server.url}/app/forms/{qid}?lang={lang}")
    page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
    served: dict[str, Any] = page.evaluate(
        "(url) => fetch(url + '&grid=0').then(r => r.json())",
        page.get_attribute("#form", "data-questionnaire"))
    return served


def answers_of(questionnaire: dict[str, Any]) -> dict[str, dict[str, tuple[str, Any]]]:
    """linkId -> code -> (display, weight) as the Questionnaire says."""
    found: dict[str, dict[str, tuple[str, Any]]] = {}
    for item in walk_items(questionnaire.get("item", [])):
        for option in item.get("answerOption", []):
            coding = option.get("valueCoding")
            if coding:
                weight = next((e.get("valueDecimal") for e in option.get("extension", [])
                               if e["url"].endswith("itemWeight")), None)
                found.setdefault(item["linkId"], {})[coding["code"]] = (coding.get("display"),
                                                                        weight)
    return found


def check_labels(page: Any, questionnaire: dict[str, Any]) -> int:
    """Every rendered answer reads exactly as the Questionnaire words it: nothing appended
    (LHC-Forms' displayScoreWithAnswerText adds " - <weight>"). Returns how many were read."""
    options = answers_of(questionnaire)
    rendered = page.evaluate(RENDERED)
    for shown in rendered:
        link_id = shown["id"].split("/")[0]
        if shown["kind"] == "head":
            expected = [d for d, _ in options[link_id].values()]
            assert shown["texts"] == expected, (link_id, shown["texts"])
            continue
        display, weight = options[link_id][shown["id"].rsplit("|", 1)[1]]
        text = shown["text"] if shown["kind"] == "list" else shown["text"].split(" for ")[0]
        assert text == display, (link_id, text, display, weight)
        if weight is not None and not display.startswith(f"{weight:g} "):
            assert not re.search(rf"\b{weight:g}\b", text.replace(display, "")), text
    return len(rendered)


@pytest.fixture
def patient_page(app_server: AppServer, medplum_server: Any, browser: Any) -> Any:
    """A page launched from the EHR for a new patient, 1280 px wide (axe may be injected)."""
    patient = create_in_ehr(medplum_server.base_url, {"resourceType": "Patient"})["id"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    launch(page, app_server, patient)
    yield page
    context.close()


def test_no_answer_shows_its_weight_on_any_form_in_any_language(app_server: AppServer,
                                                                patient_page: Any) -> None:
    page = patient_page
    read = 0
    for qid, lang in forms_and_languages():
        served = open_form(page, app_server, qid, lang)
        read += check_labels(page, served)
        screenshot(page, f"form-{qid}-{lang}-1280")
        page.set_viewport_size({"width": 1920, "height": 1000})
        screenshot(page, f"form-{qid}-{lang}-1920")
        page.set_viewport_size({"width": 1280, "height": 900})
    assert read > 36 * 5 + 90 * 5  # the DERS and SCL-90-R grids alone


def test_items_on_one_scale_are_a_grid_and_a_phone_scrolls_down_only(
        app_server: AppServer, patient_page: Any) -> None:
    page = patient_page
    served = open_form(page, app_server, "ders")
    rows = page.locator("#form .lhc-form-matrix-table tbody tr")
    assert rows.count() == 36
    headers = page.locator("#form .lhc-form-matrix-table").first.locator(
        "thead th.lhc-form-matrix-cell")
    assert headers.all_inner_texts() == [d for d, _ in answers_of(served)["ders-1"].values()]
    # One visible header: where the keying changes the next block continues the same columns.
    visible = page.evaluate("""() => Array.from(document.querySelectorAll(
        '#form .lhc-matrix-table-header-row')).filter(r => r.getBoundingClientRect().height > 2)
        .length""")
    assert visible == 1
    assert axe_violations(page, "#form") == []
    page.set_viewport_size({"width": 360, "height": 800})
    for qid, lang in forms_and_languages():
        served = open_form(page, app_server, qid, lang)
        width, viewport = page.evaluate(SCROLL)
        assert width <= viewport, (qid, lang, width)
        check_labels(page, served)
        screenshot(page, f"form-{qid}-{lang}-360")
    assert page.get_attribute("#form", "data-grids") == "0"  # lists on a phone


def test_the_italian_page_is_italian_controls_and_header_included(app_server: AppServer,
                                                                  patient_page: Any) -> None:
    page = patient_page
    open_form(page, app_server, "mit-contract", "it")
    words = i18n.words("it")
    assert page.locator("header nav a").all_inner_texts() == [words["forms"],
                                                             words["outcomes_nav"],
                                                             words["tasks_nav"]]
    assert page.inner_text("#sign-out") == words["sign_out"]
    assert page.inner_text("#status") == words["ready"]
    shown = page.evaluate("""() => {
        const root = document.getElementById('main');
        const attrs = Array.from(root.querySelectorAll('[placeholder], [aria-label], [title]'))
          .flatMap(e => ['placeholder', 'aria-label', 'title'].map(a => e.getAttribute(a)));
        return {text: root.innerText, attrs: attrs.filter(Boolean)};
    }""")
    # ("No" is Italian too.)
    english = ["Type a value", "Type a number", "MM/DD/YYYY", "Select one", "Yes",
               "Not Answered"]
    for phrase in english:
        assert phrase not in shown["attrs"], phrase
        assert not re.search(rf"(^|\n)\s*{re.escape(phrase)}\s*($|\n)", shown["text"]), phrase
    assert "GG/MM/AAAA" in shown["attrs"]  # the date fields' placeholder: day first
    assert axe_violations(page) == []
    assert words["renderer"]["Type a value"] in shown["attrs"]
    screenshot(page, "form-mit-contract-it-controls")


def test_a_refusal_names_the_question_as_the_patient_sees_it(app_server: AppServer,
                                                             patient_page: Any) -> None:
    page = patient_page
    served = open_form(page, app_server, "phq-9")
    for n in (1, 2, 3, 5, 6, 7, 8, 9):
        click_answer(page, f"phq-9-{n}", 1)
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Not submitted')")
    fourth = next(i for i in served["item"] if i["linkId"] == "phq-9-4")["text"]
    said = page.inner_text("#status")
    assert f"Please answer the question \u201c{fourth}\u201d." in said
    assert "phq-9-4" not in said and "linkId" not in said
    screenshot(page, "phq-9-refused-in-plain-words")


def test_licensed_forms_say_how_the_site_loads_their_wording(app_server: AppServer,
                                                             patient_page: Any) -> None:
    page = patient_page
    for qid in ("bsl-23", "scl-90-r"):
        open_form(page, app_server, qid)
        notice = page.locator("#licensed")
        assert notice.is_visible()
        text = notice.inner_text()
        slots = len(licensed_slots(app_server.app.extensions["mit_fhir"].catalogue.get(qid)))
        assert f"{slots} questions show a placeholder" in text
        assert f"mit-fhir wording template {qid} > {qid}.csv" in text
        assert f"mit-fhir wording load {qid} {qid}.csv" in text
        screenshot(page, f"form-{qid}-licensed-notice")
    assert axe_violations(page) == []  # the notice and the SCL-90-R grid, read by axe
    open_form(page, app_server, "phq-9")
    assert page.locator("#licensed").count() == 0  # LOINC's wording ships with the form
    context = app_server.app.extensions["mit_fhir"]
    bsl = context.catalogue.get("bsl-23")
    with context.store.transaction() as conn:
        load_wording(conn, bsl, {link: f"Wording {link}" for link in licensed_slots(bsl)}, "en")
    try:
        open_form(page, app_server, "bsl-23")
        assert page.locator("#licensed").count() == 0
        assert page.locator("#form").get_by_text("Wording bsl-23-1", exact=True).count() == 1
    finally:
        with context.store.transaction() as conn:
            load_wording(conn, bsl, {}, "en")


def test_development_mode_opens_the_product_and_submits_for_the_demo_patient(
        medplum_server: Any, browser: Any, tmp_path: Path) -> None:
    """`make run`: no EHR, MIT_FHIR_AUTH=none; the landing page leads to a filled form."""
    ehr = SmartEhr(fhir_backend=medplum_server.base_url).start()
    try:
        with contextmanager(run_app_server)(ehr, tmp_path, AUTH="none") as server:
            from mit_fhir.usecases.demo import load_demo

            patient = load_demo(server.app.extensions["mit_fhir"]).patient
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{server.url}/")
            screenshot(page, "development-landing")
            page.click("text=Fill a form for the demo patient")
            assert page.locator("h1").inner_text() == f"Forms for patient {patient}"
            page.click("a:text-is('Generalized Anxiety Disorder 7-item scale (GAD-7)')")
            page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
            for n in range(1, 8):
                click_answer(page, f"gad-7-{n}", 2)
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=30_000)
            assert page.locator('#scores tr[data-code="70274-6"] .value').inner_text() == "14"
            screenshot(page, "development-gad7-submitted")
            page.click("#to-outcomes")
            page.wait_for_url(f"{server.url}/app/patients/{patient}/outcomes")
            context.close()
    finally:
        ehr.stop()


def band_shown(page: Any, link_id: str) -> str:
    """The band the page shows in the calculated band's field, once the renderer's
    expressions have run (it recalculates asynchronously after each answer)."""
    field = page.locator(f'input[id="{link_id}/1"]')
    text = None
    for _ in range(40):
        page.wait_for_timeout(150)
        now: str = field.input_value()
        if now == text:
            return now
        text = now
    return text or ""


def test_the_phq9_band_shows_and_changes_while_answering(app_server: AppServer,
                                                         patient_page: Any) -> None:
    page = patient_page
    served = open_form(page, app_server, "phq-9")
    bands = answers_of(served)["phq-9-severity"]
    assert band_shown(page, "phq-9-severity") == ""  # nothing until all nine are answered
    for n in range(1, 10):
        click_answer(page, f"phq-9-{n}", 1 if n <= 5 else 0)  # total 5
    assert band_shown(page, "phq-9-severity") == bands["phq-9-mild"][0] == "Mild (5-9)"
    assert page.locator('input[id="phq-9-total/1"]').input_value() == "5"
    for n in range(1, 6):
        click_answer(page, f"phq-9-{n}", 2)  # total 10
    assert band_shown(page, "phq-9-severity") == bands["phq-9-moderate"][0] \
        == "Moderate (10-14)"
    screenshot(page, "phq-9-band-live")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    # The service computes its own: the same band.
    assert "Moderate" in page.locator("#scores").inner_text()


def test_phq9_item_9_above_0_is_a_warning_on_the_result_panel(app_server: AppServer,
                                                               patient_page: Any) -> None:
    page = patient_page
    served = open_form(page, app_server, "phq-9")
    ninth = next(i for i in served["item"] if i["linkId"] == "phq-9-9")
    for n in range(1, 10):
        click_answer(page, f"phq-9-{n}", 1 if n == 9 else 0)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    alerts = page.locator("#alerts[role=alert] li")
    assert alerts.count() >= 1
    item9 = page.locator("#alerts li").filter(has_text=ninth["text"])
    assert item9.count() == 1
    several = answers_of(served)["phq-9-9"]["LA6569-3"][0]
    assert item9.inner_text().endswith(f"\u201c{ninth['text']}\u201d: {several}")
    assert item9.get_attribute("data-level") in ("warning", "critical")
    # Said in words, not by colour alone.
    assert item9.inner_text().startswith(("Warning: ", "Urgent: "))
    assert page.locator("#alerts").is_visible()
    screenshot(page, "phq-9-item-9-warning")
    assert axe_violations(page) == []
    # No alert when item 9 is 0: the panel stays hidden.
    open_form(page, app_server, "phq-9")
    for n in range(1, 10):
        click_answer(page, f"phq-9-{n}", 0)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.locator("#alerts").is_hidden()
