"""The outcomes view as a psychiatrist sees it in Debian's chromium: the demo patient's 18
months, opened from the EHR (time axis, ended medications, thresholds and bands, plain
wording, synthetic data, a phone's width) and from a CDS card's link."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from mit_fhir.usecases.demo import load_demo
from mit_fhir.usecases.submissions import submit
from tests.conftest import sample
from tests.ui.conftest import SCREENSHOTS, AppServer, run_app_server, screenshot
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_browser import axe_violations, launch

READY = "#outcomes[data-ready=true]"
WIDTHS = (360, 1280, 1920)


@pytest.fixture(scope="module")
def demo(app_server: AppServer) -> str:
    patient: str = load_demo(app_server.app.extensions["mit_fhir"]).patient
    return patient


@contextmanager
def browser_page(browser: Any, width: int = 1280, axe: bool = False) -> Iterator[Any]:
    """A page at this width; `axe` lets the axe script in past the app's CSP. Script errors
    and CSP violations of the page itself fail the test."""
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-GB",
                                  bypass_csp=axe)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
        assert errors == []
    finally:
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with browser_page(browser) as pg:
        yield pg


def open_outcomes(page: Any, app_server: AppServer, patient: str) -> None:
    launch(page, app_server, patient, view="outcomes")
    page.wait_for_selector(READY, state="attached", timeout=30_000)


def rendered_axis(page: Any, chart: str) -> tuple[date, date]:
    """The dates at the two ends of a chart's drawn time axis (as Chart.js laid it out)."""
    ends = page.evaluate("""(name) => { const x = window.mitFhirCharts[name].scales.x;
        return [x.getValueForPixel(x.left), x.getValueForPixel(x.right)]
               .map(t => new Date(t).toISOString().slice(0, 10)); }""", chart)
    return date.fromisoformat(ends[0]), date.fromisoformat(ends[1])


def test_the_time_axis_fits_the_assessments_and_plans(app_server: AppServer, demo: str,
                                                      page: Any) -> None:
    open_outcomes(page, app_server, demo)
    dates = page.locator("table[id$='-table'] tbody tr th").all_inner_texts()
    dates += page.locator("#meds-rows tr td:nth-of-type(2), #meds-rows tr td:nth-of-type(3)"
                          ).all_inner_texts()
    known = sorted(date.fromisoformat(d) for d in dates if d[:1].isdigit())
    first, last = known[0], known[-1]
    assert last == date(2020, 9, 7)  # the case report's last assessment
    # Fluoxetine 40 mg is ongoing: it must not stretch the axis to today.
    assert "ongoing" in page.locator("#meds-rows").inner_text()
    for chart in ("ders-total", "scl-90-r-gsi", "bpd-criteria-count", "medications"):
        start, end = rendered_axis(page, chart)
        assert last <= end <= last + timedelta(days=31), (chart, end)
        assert first - timedelta(days=31) <= start <= first, (chart, start)
    shown = page.locator("#period").inner_text()
    assert shown.startswith("Period shown: 2019-0") and " to 2020-" in shown


def test_ended_medications_show_as_ended(app_server: AppServer, demo: str, page: Any) -> None:
    open_outcomes(page, app_server, demo)
    rows = page.locator("#meds-rows tr")
    seen = {(rows.nth(i).locator("th").inner_text(),
             rows.nth(i).locator("td").nth(0).inner_text().split(" per day")[0],
             rows.nth(i).locator("td").nth(2).inner_text(),
             rows.nth(i).locator("td").nth(3).inner_text()) for i in range(rows.count())}
    assert ("fluoxetine", "60 mg", "2020-03-02", "ended: dose changed") in seen
    assert ("topiramate", "50 mg", "2020-06-01", "stopped") in seen
    assert ("fluoxetine", "40 mg", "ongoing", "ongoing") in seen
    assert "active" not in [s[3] for s in seen if s[2] != "ongoing"]
    # On the chart the ended bars end at their stop date; only the ongoing one is marked so.
    bars = page.evaluate("""() => window.mitFhirCharts.medications.data.datasets
        .flatMap(d => d.data.map(p => [p.drug, p.period.dose.split(' per day')[0],
                                        new Date(p.x[1]).toISOString().slice(0, 10)]))""")
    assert ["topiramate", "50 mg", "2020-06-01"] in bars
    assert ["fluoxetine", "60 mg", "2020-03-02"] in bars
    ongoing = page.evaluate("""() => { const c = window.mitFhirCharts.medications;
        return c.data.datasets.flatMap(d => d.data.filter(p => !p.period.stop)
          .map(p => [p.drug, p.x[1] >= c.scales.x.max])); }""")
    assert ongoing == [["fluoxetine", True]]


def test_thresholds_bands_and_plain_words_on_every_chart(app_server: AppServer, demo: str,
                                                         browser: Any) -> None:
    with browser_page(browser, axe=True) as page:
        thresholds_bands_and_words(page, app_server, demo)


def thresholds_bands_and_words(page: Any, app_server: AppServer, demo: str) -> None:
    open_outcomes(page, app_server, demo)
    headings = page.locator("section.instrument h2").all_inner_texts()
    assert "Difficulties in Emotion Regulation Scale (DERS)" in headings
    assert "Symptom Checklist-90-Revised (SCL-90-R): GSI" in headings
    assert not any(h.count("(") > 1 and "))" in h for h in headings)
    notes = {s: page.locator(f"section.instrument[data-code='{s}'] p.note").inner_text()
             for s in ("ders-total", "scl-90-r-gsi", "bpd-criteria-count")}
    assert "clinical range: 106 and above" in notes["ders-total"]
    assert "clinical range: 0.57 and above" in notes["scl-90-r-gsi"]  # not 0.6
    assert "Threshold met (5 or more criteria present" in notes["bpd-criteria-count"]
    lines = page.evaluate("""() => Object.fromEntries(Object.entries(window.mitFhirCharts)
        .filter(([k]) => k !== 'medications').map(([k, c]) => [k,
          Object.values(c.options.plugins.annotation.annotations)
            .filter(a => a.type === 'line').map(a => a.yMin)]))""")
    assert lines["bpd-criteria-count"] == [5]
    assert lines["scl-90-r-gsi"] == [0.57]
    # The BPD chart's last point says how the stored band changed, not "no change computed".
    bpd_rows = page.locator("section.instrument[data-code='bpd-criteria-count'] "
                            "table[id$='-table'] tbody tr")
    assert bpd_rows.last.locator(".category").inner_text() == "threshold met → threshold not met"
    text = page.locator("#main").inner_text()
    assert "no change computed" not in text and "populations" not in text.split("Statistic")[0]
    # Values at the instrument's precision; the statistics in their own table.
    gsi = page.locator("section.instrument[data-code='scl-90-r-gsi']")
    ders = page.locator("section.instrument[data-code='ders-total']")
    assert gsi.locator("table[id$='-table'] tbody tr").last.locator(".value").inner_text() == "0.22"
    assert "RCI" in ders.locator("table[id$='-table'] thead").inner_text()
    assert gsi.locator("table[id$='-stats'] tbody tr").first.locator("td").first.inner_text() \
        == "0.57"
    assert ders.locator("table[id$='-stats']").inner_text().count("cutoff c") == 1
    # No legend entry for the connecting line: the note explains it.
    legend = page.locator("section.instrument ul.legend li").all_inner_texts()
    assert any("reliable improvement, out of the clinical range (case report)" in t
               for t in legend)
    assert any("threshold met → threshold not met (synthetic)" in t for t in legend)
    assert not any("joins" in t for t in legend)
    assert "The grey line joins the assessments" in notes["ders-total"]
    assert axe_violations(page) == []


def test_synthetic_values_are_announced_and_drawn_apart(app_server: AppServer, demo: str,
                                                        page: Any) -> None:
    open_outcomes(page, app_server, demo)
    banner = page.locator("#synthetic-banner")
    assert banner.is_visible() and "not a patient\u2019s results" in banner.inner_text()
    fills = page.evaluate("""() => window.mitFhirCharts['ders-total'].data.datasets
        .filter(d => d.type === 'scatter').map(d => [d.label, d.backgroundColor, d.borderColor])""")
    synthetic = [f for f in fills if f[0].endswith("(synthetic)")]
    recorded = [f for f in fills if f[0].endswith("(case report)")]
    assert synthetic and recorded
    assert all(f[1] == "#ffffff" for f in synthetic)  # hollow
    assert all(f[1] == f[2] for f in recorded)  # filled


def test_the_page_fits_a_phone_and_reads_on_large_screens(app_server: AppServer, demo: str,
                                                          browser: Any) -> None:
    for width in WIDTHS:
        with browser_page(browser, width, axe=width == 360) as page:
            open_outcomes(page, app_server, demo)
            scroll = page.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
            assert scroll[0] <= scroll[1], (width, scroll)
            # Each chart keeps a readable plot area beside its y axis.
            plot = page.evaluate("""() => Object.values(window.mitFhirCharts)
                .map(c => c.chartArea.right - c.chartArea.left)""")
            assert min(plot) >= 0.45 * min(width, 1150), (width, plot)
            path: Path = screenshot(page, f"outcomes-demo-{width}")
            assert path.stat().st_size > 10_000
            # What the first screen shows, uncropped by the full-page shot's downscaling.
            page.screenshot(path=str(SCREENSHOTS / f"outcomes-demo-{width}-first-screen.png"))
            for part in ("section.instrument[data-code='ders-total']", "#medications"):
                name = "ders" if "ders" in part else "medications"
                page.locator(part).screenshot(
                    path=str(SCREENSHOTS / f"outcomes-demo-{width}-{name}.png"))
            if width == 360:
                assert axe_violations(page) == []


@pytest.fixture
def open_app(medplum_server: Any, tmp_path: Path) -> Iterator[AppServer]:
    """The app with inbound auth off, so the test can call its CDS service as an EHR would;
    registered with an EHR of its own (a registration replaces the shared EHR's)."""
    ehr = SmartEhr(fhir_backend=medplum_server.base_url).start()
    try:
        yield from run_app_server(ehr, tmp_path, AUTH="none")
    finally:
        ehr.stop()


def test_the_cds_cards_link_opens_the_outcomes_view(open_app: AppServer, browser: Any) -> None:
    patient = load_demo(open_app.app.extensions["mit_fhir"]).patient
    hook = {"hookInstance": "3e0c9c9a-3d5f-4f52-9b57-5f2a8c1d0e11", "hook": "patient-view",
            "context": {"userId": "Practitioner/example", "patientId": patient}}
    resp = requests.post(f"{open_app.url}/cds-services/mit-outcomes", json=hook, timeout=30)
    assert resp.status_code == 200, resp.text
    links = {link["url"] for card in resp.json()["cards"] for link in card["links"]
             if link["type"] == "smart"}
    (link,) = links
    # What the EHR does with a "smart" link: add its iss and a launch id, then open it.
    launch_id = open_app.ehr.launch(patient)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        joiner = "&" if "?" in link else "?"
        page.goto(link + joiner + urlencode({"iss": open_app.ehr.iss, "launch": launch_id}))
        page.click("button:has-text('Approve')")
        page.wait_for_selector(READY, state="attached", timeout=30_000)
        assert page.url == f"{open_app.url}/app/patients/{patient}/outcomes"
        assert page.locator("h1").inner_text().startswith("Outcomes and medication")
    finally:
        context.close()


def submit_phq9(context: Any, patient: str, name: str, authored: str) -> None:
    qr = {**sample("phq-9", name), "authored": authored,
          "subject": {"reference": f"Patient/{patient}"}}
    qr.pop("id", None)
    submit(context, qr)


def test_phq9_severity_bands_and_its_clinical_range_are_drawn(app_server: AppServer,
                                                              page: Any) -> None:
    context = app_server.app.extensions["mit_fhir"]
    submit_phq9(context, "phq-bands", "severe", "2024-01-10T10:00:00Z")
    submit_phq9(context, "phq-bands", "complete", "2024-04-10T10:00:00Z")
    open_outcomes(page, app_server, "phq-bands")
    section = page.locator("section.instrument[data-code='44261-6']")
    assert section.locator("h2").inner_text().startswith("PHQ-9") or \
        "Patient Health Questionnaire" in section.locator("h2").inner_text()
    edges = page.evaluate("""() => Object.entries(window.mitFhirCharts['44261-6'].options
        .plugins.annotation.annotations).filter(([k, a]) => a.type === 'line')
        .map(([k, a]) => [k, a.yMin])""")
    assert sorted(y for k, y in edges if k.startswith("edge")) == [5, 10, 15, 20]
    assert [y for k, y in edges if not k.startswith("edge")] == [10]
    assert "clinical range: 10 and above" in section.locator("p.note").inner_text()
    values = section.locator("table[id$='-table'] tbody tr .value").all_inner_texts()
    assert all(v.isdigit() for v in values)  # integers for the PHQ-9
    stats = section.locator("table[id$='-stats'] tbody tr td:first-of-type").all_inner_texts()
    assert stats == ["10", "a change of 6 or more"]  # the IAPT conventions, as cited
    # Judged by the raw change, not by an index: no RCI column beside it.
    headers = section.locator("table[id$='-table'] thead th").all_inner_texts()
    assert "RCI" not in headers and "Band" in headers
    bands = section.locator("table[id$='-table'] tbody tr .band").all_inner_texts()
    assert bands[-1] == "Moderate (10-14)"
    # The synthetic banner stays hidden: nothing here is synthetic.
    assert not page.locator("#synthetic-banner").is_visible()
    screenshot(page, "outcomes-phq9-bands")


def test_synthetic_medication_periods_are_hollow_bars(app_server: AppServer, demo: str,
                                                      page: Any) -> None:
    open_outcomes(page, app_server, demo)
    fills = page.evaluate("""() => { const c = window.mitFhirCharts.medications;
        return c.data.datasets.flatMap((d, i) => c.getDatasetMeta(i).data.map((bar, j) =>
          [d.data[j].period.synthetic, bar.options.backgroundColor])); }""")
    assert {f for s, f in fills if s} == {"#ffffff"}
    assert "#ffffff" not in {f for s, f in fills if not s}
    assert "Hollow bars are synthetic periods." in page.locator("#meds-note").inner_text()
