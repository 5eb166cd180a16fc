"""The SMART pages in Debian's chromium: EHR launch, DERS filled by clicking, drafts, the
outcomes chart and the medication timeline (screenshots in build/screenshots/)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.ui import i18n
from tests.conftest import ROOT, load_json
from tests.ui.conftest import AppServer, create_in_ehr, run_app_server, screenshot
from tests.ui.helpers import (
    answer_codes,
    catalogue,
    ders_items,
    medication_request,
    submit_ders,
    weight,
)
from tests.ui.smart_ehr import SmartEhr

# axe-core belongs to the tests, not to the pages: `make ui-assets` npm-installs it in ui/ only.
AXE = str(ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js")


def launch(page: Any, server: AppServer, patient: str, view: str = "forms") -> None:
    """Open the patient's chart in the test EHR, follow its app link, approve as the user."""
    page.goto(f"{server.ehr.url}/ehr/chart?patient={patient}&app={server.url}&view={view}")
    page.click("#launch")
    page.click("button:has-text('Approve')")
    page.wait_for_url(re.compile(re.escape(server.url) + r"/app/"))


def click_answer(page: Any, link_id: str, answer_weight: int) -> None:
    """Choose the answer of that weight (looked up in the catalogue: the page shows none),
    in a list (its label) or a grid (its radio button): both carry the answer's code."""
    code = answer_codes()[link_id][answer_weight]
    page.locator(f'[id^="{link_id}/"][id$="|{code}"]').first.click()


def live_score(page: Any, link_id: str) -> str:
    """The renderer's value of a calculated item once its expressions have run: LHC-Forms
    recalculates asynchronously after each answer, so the value is read when it holds."""
    field = page.locator(f'input[id="{link_id}/1"]')
    value: str = field.input_value()
    for _ in range(20):
        page.wait_for_timeout(150)
        again: str = field.input_value()
        if again == value:
            return value
        value = again
    return value


def axe_violations(page: Any, include: str | None = None) -> list[dict[str, Any]]:
    page.add_script_tag(path=AXE)
    found: list[dict[str, Any]] = page.evaluate(
        """async (include) => (await axe.run(include ? {include: [include]} : document,
             {runOnly: ['wcag2a', 'wcag2aa']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                         target: v.nodes[0].target}))""", include)
    return found


def test_launch_fill_ders_submit_and_see_the_new_point(app_server: AppServer, medplum_server: Any,
                                                       browser: Any) -> None:
    context = app_server.app.extensions["mit_fhir"]
    patient = create_in_ehr(medplum_server.base_url,
                            {"resourceType": "Patient", "name": [{"family": "Bianchi"}]})["id"]
    submit_ders(context, patient, "2025-03-01T10:00:00Z", each=4)  # baseline 144
    # Bypassing CSP only lets the test inject axe-core; the app's own scripts are self-hosted.
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    try:
        launch(page, app_server, patient)
        assert page.locator("h1").inner_text() == f"Forms for patient {patient}"
        assert axe_violations(page) == []
        page.click("a:text-is('Difficulties in Emotion Regulation Scale (DERS)')")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)

        assert axe_violations(page) == []  # the form as LHC-Forms renders it, in our page
        items = [i["linkId"] for i in ders_items()]
        assert len(items) == 36
        chosen = {link: 1 if n % 3 else 2 for n, link in enumerate(items)}
        # Item 1 by keyboard alone: focus its first answer and select it with Space.
        page.focus(f'input[type=radio][name^="{items[0]}/"] >> nth=0')
        page.keyboard.press("Space")
        chosen[items[0]] = weight(ders_items()[0]["answerOption"][0])
        for link in items[1:10]:
            click_answer(page, link, chosen[link])
        page.click("#save-draft")
        page.wait_for_selector("#status:has-text('Draft saved')")
        page.reload()
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        assert "Draft restored" in page.inner_text("#status")
        restored = page.locator("#form input[type=radio]:checked")
        assert restored.count() == 10

        for link in items[10:]:
            click_answer(page, link, chosen[link])
        expected = sum(chosen.values())
        assert expected == 5 + 11 * 2 + 24 * 1  # 51: items 1, 4, 7, ... weigh 2, item 1 is 5
        live = live_score(page, "ders-total")
        screenshot(page, "ders-filled")
        page.focus("#submit")
        page.keyboard.press("Enter")
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        row = page.locator('#scores tr[data-code="ders-total"]')
        service = row.locator(".value").inner_text()
        # The renderer's calculatedExpression and the service's scoring agree.
        assert live == service == str(expected)
        assert row.locator(".category").inner_text() == "recovered"
        for sub in ("ders-nonacceptance", "ders-goals", "ders-impulse", "ders-awareness",
                    "ders-strategies", "ders-clarity"):
            assert live_score(page, sub) == page.locator(
                f'#scores tr[data-code="{sub}"] .value').inner_text()
        screenshot(page, "ders-submitted")

        page.click("#to-outcomes")
        page.wait_for_selector("#outcomes[data-ready=true]", state="attached", timeout=30_000)
        rows = page.locator(
            "section.instrument[data-code='ders-total'] table[id$='-table'] tbody tr")
        assert rows.count() == 2
        assert rows.nth(1).locator(".value").inner_text() == str(expected)
        assert rows.nth(1).locator(".category").inner_text() == \
            "reliable improvement, out of the clinical range"
        chart = page.evaluate("""() => {
            const c = window.mitFhirCharts['ders-total'];
            return c.data.datasets.map(d => ({label: d.label, ys: d.data.map(p => p.y),
                                              shape: d.pointStyle || null}));
        }""")
        recovered = next(
            d for d in chart
            if d["label"] == "reliable improvement, out of the clinical range (recorded)")
        assert recovered["ys"] == [expected] and recovered["shape"] == "circle"
        assert next(d for d in chart
                    if d["label"] == "first assessment (baseline) (recorded)")["ys"] == [144]
        screenshot(page, "outcomes-after-ders")
        assert axe_violations(page) == []
        assert errors == []  # no script error, no Content-Security-Policy violation
    finally:
        ctx.close()


def test_psychiatrist_sees_both_medications_on_the_timeline(app_server: AppServer,
                                                            medplum_server: Any,
                                                            page: Any) -> None:
    context = app_server.app.extensions["mit_fhir"]
    backend = medplum_server.base_url
    patient = create_in_ehr(backend, {"resourceType": "Patient",
                                      "name": [{"family": "Verdi"}]})["id"]
    for req in (
        medication_request(patient, "38404", "topiramate", "25 mg twice daily",
                           "2019-03-15", "2019-09-30", "completed"),
        medication_request(patient, "38404", "topiramate", "50 mg twice daily",
                           "2019-10-01", "2020-06-30", "stopped"),
        medication_request(patient, "4493", "fluoxetine", "20 mg once daily",
                           "2019-05-01", None, "active"),
    ):
        create_in_ehr(backend, req)
    submit_ders(context, patient, "2019-03-01T10:00:00Z", each=3)  # 108
    # Tagged synthetic as the demo patient's in-between points are.
    submit_ders(context, patient, "2019-11-01T10:00:00Z", each=3, synthetic=True)  # 108 again
    submit_ders(context, patient, "2020-09-01T10:00:00Z", each=2)  # 72
    launch(page, app_server, patient, view="outcomes")
    page.wait_for_selector("#outcomes[data-ready=true]", state="attached", timeout=30_000)
    assert page.locator("html").get_attribute("lang") == "en"
    drugs = page.locator("#meds-rows tr th").all_inner_texts()
    assert sorted(set(drugs)) == ["fluoxetine", "topiramate"]
    doses = page.locator("#meds-rows tr td:first-of-type").all_inner_texts()
    assert "25 mg twice daily" in doses and "50 mg twice daily" in doses
    labels = page.evaluate("() => window.mitFhirCharts.medications.data.labels")
    assert sorted(labels) == ["fluoxetine · EHR", "topiramate · EHR"]
    bars = page.evaluate("""() => window.mitFhirCharts.medications.data.datasets
        .flatMap(d => d.data.map(p => [p.y, new Date(p.x[0]).toISOString().slice(0, 10)]))""")
    assert sorted(bars) == [["fluoxetine · EHR", "2019-05-01"], ["topiramate · EHR", "2019-03-15"],
                            ["topiramate · EHR", "2019-10-01"]]
    # The score chart and the medication timeline share one time axis.
    # The synthetic point says so in the legend and in the table.
    legend = page.evaluate("() => window.mitFhirCharts['ders-total'].data.datasets"
                           ".map(d => d.label)")
    assert "no reliable change (synthetic)" in legend
    rows = page.locator("section.instrument[data-code='ders-total'] table[id$='-table'] tbody tr")
    assert [rows.nth(i).locator(".origin").inner_text() for i in range(3)] == [
        "recorded", "synthetic", "recorded"]
    axes = page.evaluate("""() => [window.mitFhirCharts['ders-total'].scales.x,
        window.mitFhirCharts.medications.scales.x].map(s => [s.min, s.max])""")
    assert axes[0] == axes[1]
    # The prescriptions were read from the EHR with the session's token.
    assert ("GET", "MedicationRequest") in app_server.ehr.fhir_requests
    page.focus("nav a:text-is('Forms')")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{app_server.url}/app/")
    page.go_back()
    page.wait_for_selector("#outcomes[data-ready=true]", state="attached", timeout=30_000)
    screenshot(page, "psychiatrist-timeline")


def test_italian_form_is_served_translated(app_server: AppServer, medplum_server: Any,
                                           page: Any) -> None:
    patient = create_in_ehr(medplum_server.base_url,
                            {"resourceType": "Patient", "name": [{"family": "Neri"}]})["id"]
    launch(page, app_server, patient)
    page.click("a[hreflang=it][href*='mit-contract']")
    page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
    assert page.locator("h1").inner_text() == "Contratto terapeutico MIT"
    assert page.locator("#form").get_by_text("Base del contratto").count() >= 1
    assert page.locator("html").get_attribute("lang") == "it"
    assert page.locator("#submit").inner_text() == "Invia"
    screenshot(page, "mit-contract-italian")
    page.click("#sign-out")
    page.wait_for_selector("h1:text-is('Signed out')")
    page.goto(f"{app_server.url}/app/")
    assert "No session" in page.inner_text("main")


def test_weights_of_the_fixture_are_those_of_the_catalogue() -> None:
    # The test clicks answers by their weight in the catalogue; make sure it has those.
    item = ders_items()[0]
    assert sorted(weight(o) for o in item["answerOption"]) == [1, 2, 3, 4, 5]


def test_a_decimal_score_shown_live_equals_the_services(app_server: AppServer,
                                                        medplum_server: Any,
                                                        page: Any) -> None:
    bsl = load_json(QUESTIONNAIRE_DIR / "bsl-23.json")
    items = [i for i in bsl["item"] if i["type"] == "choice" and not i.get("readOnly")]
    assert len(items) == 23
    patient = create_in_ehr(medplum_server.base_url,
                            {"resourceType": "Patient", "name": [{"family": "Gialli"}]})["id"]
    launch(page, app_server, patient)
    page.goto(f"{app_server.url}/app/forms/bsl-23")
    page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
    chosen = [n % 4 for n in range(len(items))]  # sum 33: the mean 1.4347... shows as 1.43
    for item, answer in zip(items, chosen, strict=True):
        click_answer(page, item["linkId"], answer)
    live = live_score(page, "bsl-23-mean")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    service = page.locator('#scores tr[data-code="bsl-23-mean"] .value').inner_text()
    assert sum(chosen) == 33
    assert live == service == "1.43"


def test_every_catalogue_form_renders_in_each_of_its_languages(app_server: AppServer,
                                                               medplum_server: Any,
                                                               page: Any) -> None:
    patient = create_in_ehr(medplum_server.base_url, {"resourceType": "Patient"})["id"]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(f"{msg.text} {msg.location}")
            if msg.type == "error" else None)
    launch(page, app_server, patient)
    rendered = []
    for questionnaire in catalogue():
        for lang in i18n.languages(questionnaire):
            page.goto(f"{app_server.url}/app/forms/{questionnaire['id']}?lang={lang}")
            page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
            assert page.inner_text("#status") == i18n.words(lang)["ready"]
            rendered.append((questionnaire["id"], lang))
    assert len(rendered) == 23 and ("medication-plan", "it") in rendered
    assert errors == []


def test_the_app_runs_framed_inside_the_ehr(medplum_server: Any, browser: Any,
                                            tmp_path: Path) -> None:
    """The chart at http://localhost embeds the app at http://127.0.0.1: a cross-site frame,
    where only the SameSite=None cookie reaches the app and CSP frame-ancestors decides."""
    ehr = SmartEhr(fhir_backend=medplum_server.base_url).start()
    chart = f"http://localhost:{ehr.port}"
    try:
        with contextmanager(run_app_server)(ehr, tmp_path, FRAME_ANCESTORS=chart) as server:
            patient = create_in_ehr(medplum_server.base_url, {"resourceType": "Patient"})["id"]
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.goto(f"{chart}/ehr/frame?patient={patient}&app={server.url}")
            app = page.frame_locator("#app")
            app.locator("button:has-text('Approve')").click()
            heading = app.locator("h1")
            heading.wait_for()
            assert heading.inner_text() == f"Forms for patient {patient}"
            screenshot(page, "framed-in-ehr")
            ctx.close()
    finally:
        ehr.stop()



def test_the_demo_patients_outcomes_show_the_case_report_and_both_medications(
        app_server: AppServer, medplum_server: Any, page: Any) -> None:
    """The demo patient `make run` loads (the case report's 18 months), opened from the EHR."""
    from mit_fhir.usecases.demo import load_demo

    context = app_server.app.extensions["mit_fhir"]
    patient = load_demo(context).patient
    launch(page, app_server, patient, view="outcomes")
    page.wait_for_selector("#outcomes[data-ready=true]", state="attached", timeout=30_000)
    drugs = page.locator("#meds-rows tr th").all_inner_texts()
    assert sorted(set(drugs)) == ["fluoxetine", "topiramate"]
    labels = page.evaluate("() => window.mitFhirCharts.medications.data.labels")
    assert all(label.endswith("MIT plan") for label in labels), labels
    # DERS 118 -> 57 as in the case report, the months between labelled synthetic.
    rows = page.locator("section.instrument[data-code='ders-total'] table[id$='-table'] tbody tr")
    first, last = rows.first, rows.last
    assert first.locator(".value").inner_text() == "118"
    assert last.locator(".value").inner_text() == "57"
    assert last.locator(".category").inner_text() == \
        "reliable improvement, out of the clinical range"
    data_cells = [rows.nth(i).locator(".origin").inner_text() for i in range(rows.count())]
    assert data_cells[0] == data_cells[-1] == "case report"
    assert set(data_cells[1:-1]) == {"synthetic"}
    legend = page.evaluate("() => window.mitFhirCharts['ders-total'].data.datasets"
                           ".map(d => d.label)")
    assert any(label.endswith("(synthetic)") for label in legend)
    # The dose changes the report does not give are labelled synthetic too.
    doses = page.locator("#meds-rows tr td:first-of-type").all_inner_texts()
    assert any(d.endswith("(synthetic)") for d in doses)
    assert any(not d.endswith("(synthetic)") for d in doses)
    screenshot(page, "demo-patient-outcomes")
