"""The clinician's findings on the outcomes view, in Debian's chromium: the summary at the top,
the medication timeline beside the scores on one time axis, chart labels that hide no point
on a phone, whole marker at the axis' ends, named C-SSRS levels, and dates that do not wrap."""

from __future__ import annotations

from typing import Any

import pytest

from mit_fhir.usecases.demo import load_demo
from tests.ui.conftest import SCREENSHOTS, AppServer
from tests.ui.test_outcomes_alerts import submit_sample
from tests.ui.test_outcomes_view import WIDTHS, browser_page, open_outcomes

PHQ9, CSSRS = "44261-6", "93374-7"


@pytest.fixture(scope="module")
def demo(app_server: AppServer) -> str:
    patient: str = load_demo(app_server.app.extensions["mit_fhir"]).patient
    return patient


@pytest.fixture(scope="module")
def risk_patient(app_server: AppServer) -> str:
    """A PHQ-9 whose latest item 9 is above 0, and two C-SSRS screeners on one day."""
    context = app_server.app.extensions["mit_fhir"]
    patient = "reading-risk"
    submit_sample(context, "phq-9", "severe", patient, "2024-01-10T10:00:00Z")
    submit_sample(context, "phq-9", "complete", patient, "2024-04-10T10:00:00Z")
    submit_sample(context, "cssrs-screener", "low", patient, "2024-04-10T09:00:00Z")
    submit_sample(context, "cssrs-screener", "high-recent-behaviour", patient,
                  "2024-04-10T11:00:00Z")
    return patient


def top_of(page: Any, selector: str) -> float:
    return float(page.locator(selector).first.bounding_box()["y"])


def test_the_summary_says_there_is_no_risk_screen_and_gives_each_latest_score(
        app_server: AppServer, demo: str, browser: Any) -> None:
    with browser_page(browser, 1920) as page:
        open_outcomes(page, app_server, demo)
        summary = page.locator("#summary")
        assert summary.locator("#no-risk-alert").inner_text() == "No risk alert on record."
        screen = summary.locator("#no-risk-screen").inner_text()
        assert screen.startswith("No risk screen on record") and "PHQ-9" in screen
        lines = {li.get_attribute("data-code"): li.inner_text()
                 for li in summary.locator("#score-summary li").all()}
        # The instrument's precision, as in its table: 57 and 0.22 (not 57.0, not 0.222).
        assert lines["ders-total"].startswith("DERS: 57 on 2020-09-07")
        assert "since 118 on 2019-03-04" in lines["ders-total"]
        assert "reliable improvement, out of the clinical range" in lines["ders-total"]
        assert lines["scl-90-r-gsi"].startswith("SCL-90-R GSI: 0.22 on 2020-09-07")
        assert "Threshold not met" in lines["bpd-criteria-count"]
        gsi_table = page.locator("section.instrument[data-code='scl-90-r-gsi'] "
                                 "table[id$='-table'] tbody tr").last
        assert gsi_table.locator(".value").inner_text() == "0.22"
        # Read top-down: summary, then the medication timeline, then the first chart.
        assert top_of(page, "#summary") < top_of(page, "#medications") \
            < top_of(page, "section.instrument")
        # The medication bars share the score charts' time axis, pixel for pixel, and the page
        # uses the wide screen (the clinician measured ~1130 px of 1920 before).
        areas = page.evaluate("""() => Object.fromEntries(Object.entries(window.mitFhirCharts)
            .map(([k, c]) => [k, [c.canvas.getBoundingClientRect().left + c.chartArea.left,
                                  c.canvas.getBoundingClientRect().left + c.chartArea.right,
                                  c.scales.x.min, c.scales.x.max]]))""")
        meds = areas.pop("medications")
        for name, area in areas.items():
            assert area == pytest.approx(meds, abs=1), name
        used = page.evaluate("() => document.querySelector('#summary').offsetWidth")
        assert used >= 1700
        page.screenshot(path=str(SCREENSHOTS / "outcomes-reading-1920-first-screen.png"))
        # Following the summary's link to a chart keeps the medication bars on screen above it.
        page.locator("#score-summary li[data-code='ders-total'] a").click()
        on_screen = page.evaluate("""() => ['#meds-chart', "section[data-code='ders-total'] canvas"]
            .map(s => document.querySelector(s).getBoundingClientRect())
            .map(r => r.top >= 0 && r.bottom <= innerHeight)""")
        assert on_screen == [True, True]
        meds = page.locator("#meds-chart").bounding_box()
        ders = page.locator("section[data-code='ders-total'] canvas").bounding_box()
        assert meds["y"] + meds["height"] <= ders["y"]  # above it, not over it
        page.screenshot(path=str(SCREENSHOTS / "outcomes-reading-1920-ders-with-medication.png"))


def test_the_summary_lists_the_latest_risk_alerts_in_words(app_server: AppServer,
                                                           risk_patient: str,
                                                           browser: Any) -> None:
    with browser_page(browser, 1280) as page:
        open_outcomes(page, app_server, risk_patient)
        risk = page.locator("#risk-summary")
        items = risk.locator("li").all_inner_texts()
        assert any(t.startswith("Critical: C-SSRS screener, 2024-04-10. High suicide risk")
                   for t in items), items
        assert any(t.startswith(("Warning: PHQ-9, 2024-04-10", "Critical: PHQ-9, 2024-04-10"))
                   for t in items), items
        assert page.locator("#no-risk-screen").count() == 0
        assert page.locator("#no-risk-alert").count() == 0
        # Within the first screen, above every chart.
        box = risk.bounding_box()
        assert box["y"] + box["height"] <= 900
        page.screenshot(path=str(SCREENSHOTS / "outcomes-reading-risk-1280-first-screen.png"))


def test_the_cssrs_axis_names_its_levels_and_the_phq9_axis_shows_severe(
        app_server: AppServer, risk_patient: str, browser: Any) -> None:
    for width in WIDTHS:
        with browser_page(browser, width) as page:
            open_outcomes(page, app_server, risk_patient)
            axis = page.evaluate("""(code) => { const y = window.mitFhirCharts[code].scales.y;
                const lines = (l) => [].concat(l);  // a phone draws a name on two lines
                y.ctx.save(); y.ctx.font = Chart.helpers.toFont(y.options.ticks.font).string;
                return { labels: y.getLabelItems().map(i => lines(i.label).join(' ')),
                         left: Math.min(...y.getLabelItems().flatMap(i => lines(i.label)
                               .map(t => i.options.translation[0] - y.ctx.measureText(t).width))),
                         restored: y.ctx.restore() }; }""",
                CSSRS)
            assert axis["labels"] == ["No risk indicated", "Low risk", "Moderate risk",
                                      "High risk"], width
            assert axis["left"] >= 0, width  # drawn whole, not cut at the canvas' left edge
            top = page.evaluate("(c) => window.mitFhirCharts[c].scales.y.max", PHQ9)
            assert top == 27  # the Severe band (20-27) shown whole
            ticks = page.evaluate("(c) => window.mitFhirCharts[c].scales.y.ticks.map(t => t.value)",
                                  PHQ9)
            assert ticks == [0, 5, 10, 15, 20, 27]  # the band edges: no crowded "25 27"


def drawn(page: Any, code: str) -> dict[str, Any]:
    return dict(page.evaluate("""(code) => { const c = window.mitFhirCharts[code];
        const points = c.data.datasets.flatMap((d, i) => d.type !== 'scatter' ? [] :
          c.getDatasetMeta(i).data.map((el, j) => ({ x: el.x, y: el.y,
            r: el.options.radius + el.options.borderWidth / 2, value: d.data[j].y,
            day: new Date(d.data[j].x).toISOString().slice(0, 10) })));
        return { points, labels: c.$placedLabels || [], width: c.width, height: c.height,
                 area: c.chartArea }; }""", code))


def overlap(box: dict[str, float], point: dict[str, float]) -> bool:
    x, y, r = point["x"], point["y"], point["r"]
    return (box["x"] < x + r and x - r < box["x"] + box["w"]
            and box["y"] < y + r and y - r < box["y"] + box["h"])


@pytest.mark.parametrize("width", WIDTHS)
def test_chart_labels_hide_no_point_and_no_marker_is_cut(app_server: AppServer, demo: str,
                                                         risk_patient: str, browser: Any,
                                                         width: int) -> None:
    with browser_page(browser, width) as page:
        for patient, codes in ((demo, ("ders-total", "scl-90-r-gsi", "bpd-criteria-count")),
                               (risk_patient, (PHQ9, CSSRS))):
            open_outcomes(page, app_server, patient)
            for code in codes:
                chart = drawn(page, code)
                texts = [label["text"] for label in chart["labels"]]
                if code == "ders-total":
                    assert any("106 and above" in t for t in texts), (width, texts)
                    assert any(p["day"] == "2019-09-02" and p["value"] == 104
                               for p in chart["points"])
                if code == "scl-90-r-gsi":
                    assert any(p["day"] == "2020-06-01" for p in chart["points"])
                if code == PHQ9:
                    assert "Severe" in texts, (width, texts)
                for label in chart["labels"]:
                    hidden = [p["day"] for p in chart["points"] if overlap(label, p)]
                    assert hidden == [], (width, code, label["text"], hidden)
                for p in chart["points"]:  # every marker whole inside the canvas
                    assert p["r"] <= p["x"] <= chart["width"] - p["r"], (width, code, p)
                    assert p["r"] <= p["y"] <= chart["height"] - p["r"], (width, code, p)
                    assert p["x"] <= chart["area"]["right"], (width, code, p)
                page.locator(f"section.instrument[data-code='{code}'] .chart").screenshot(
                    path=str(SCREENSHOTS / f"outcomes-reading-{width}-{code}.png"))
            page.screenshot(path=str(SCREENSHOTS / f"outcomes-reading-{width}-{patient}.png"),
                            full_page=True)


@pytest.mark.parametrize("width", (1280, 1920))
def test_table_dates_stay_on_one_line(app_server: AppServer, demo: str, browser: Any,
                                      width: int) -> None:
    with browser_page(browser, width) as page:
        open_outcomes(page, app_server, demo)
        heights = page.evaluate("""() => [...document.querySelectorAll("table[id$='-table'] "
            + "tbody th, #meds-rows td:nth-of-type(2), #meds-rows td:nth-of-type(3)")]
            .map(el => { const r = document.createRange(); r.selectNodeContents(el);
                         return [el.textContent, r.getClientRects().length]; })""")
        assert heights and all(lines == 1 for _, lines in heights), heights
        page.screenshot(path=str(SCREENSHOTS / f"outcomes-reading-{width}-full.png"),
                        full_page=True)
