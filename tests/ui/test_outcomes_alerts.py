"""Risk on the outcomes chart, in Debian's chromium: a PHQ-9 whose item 9 is above 0 and a
C-SSRS high triage are marked on their charts and listed beside them in words."""

from __future__ import annotations

from typing import Any

from mit_fhir.usecases.submissions import submit
from tests.conftest import sample
from tests.ui.conftest import AppServer, screenshot
from tests.ui.test_browser import axe_violations
from tests.ui.test_outcomes_view import browser_page, open_outcomes

LEVEL_WORDS = ("Critical", "Warning")


def submit_sample(context: Any, form: str, name: str, patient: str, authored: str) -> None:
    qr = {**sample(form, name), "authored": authored,
          "subject": {"reference": f"Patient/{patient}"}}
    qr.pop("id", None)
    submit(context, qr)


def item9(qr: dict[str, Any]) -> str:
    answer = next(i for i in qr["item"] if i["linkId"] == "phq-9-9")["answer"][0]
    return str(answer["valueCoding"]["display"])


def test_a_phq9_item_9_above_0_is_marked_on_the_chart_and_listed(app_server: AppServer,
                                                                 browser: Any) -> None:
    context = app_server.app.extensions["mit_fhir"]
    patient = "risk-phq"
    assert item9(sample("phq-9", "complete")) == "Several days"  # weight 1: above 0
    submit_sample(context, "phq-9", "severe", patient, "2024-01-10T10:00:00Z")
    submit_sample(context, "phq-9", "complete", patient, "2024-04-10T10:00:00Z")
    with browser_page(browser, axe=True) as page:
        open_outcomes(page, app_server, patient)
        section = page.locator("section.instrument[data-code='44261-6']")
        items = section.locator(".alerts li").all_inner_texts()
        # Listed beside the chart in words (level, date, what it means), not colour alone.
        assert any(t.startswith(LEVEL_WORDS) and "2024-04-10" in t and "Several days" in t
                   for t in items), items
        marked = page.evaluate("""() => window.mitFhirCharts['44261-6'].data.datasets
            .filter(d => d.label.startsWith('risk alert'))
            .flatMap(d => d.data.map(p => new Date(p.x).toISOString().slice(0, 10)))""")
        assert "2024-04-10" in marked
        cells = section.locator("table[id$='-table'] tbody tr .risk").all_inner_texts()
        assert cells[-1] != ""
        legend = section.locator("ul.legend").inner_text()
        assert "risk alert" in legend
        assert axe_violations(page) == []
        screenshot(page, "outcomes-phq9-item9-alert")


def test_a_cssrs_high_triage_is_marked_on_its_levels_chart(app_server: AppServer,
                                                          browser: Any) -> None:
    context = app_server.app.extensions["mit_fhir"]
    patient = "risk-cssrs"
    submit_sample(context, "cssrs-screener", "low", patient, "2024-01-10T10:00:00Z")
    submit_sample(context, "cssrs-screener", "high-recent-behaviour", patient,
                  "2024-02-10T10:00:00Z")
    with browser_page(browser) as page:
        open_outcomes(page, app_server, patient)
        section = page.locator("section.instrument[data-code='93374-7']")
        rows = section.locator("table[id$='-table'] tbody tr .value").all_inner_texts()
        assert rows == ["Low risk", "High risk"]
        # The y axis names the form's levels, least to most severe.
        ticks = page.evaluate(
            "() => window.mitFhirCharts['93374-7'].scales.y.ticks.map(t => t.label)")
        assert ticks == ["No risk indicated", "Low risk", "Moderate risk", "High risk"]
        items = section.locator(".alerts li").all_inner_texts()
        assert any(t.startswith(LEVEL_WORDS) and "2024-02-10" in t for t in items), items
        screenshot(page, "outcomes-cssrs-alert")
