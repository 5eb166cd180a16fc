"""The assignments page on a phone (360 px), English and Italian: an overdue Task, Tasks from a
schedule and the longest titles wrap inside their cards; no cell and no element is clipped;
the closed Tasks are listed apart from the forms to fill."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mit_fhir.fhir.schedule import Activity
from mit_fhir.ui import i18n
from mit_fhir.usecases import schedules, tasks
from mit_fhir.usecases.demo import load_demo
from tests.ui.conftest import AppServer, run_app_server, screenshot
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_assign import CAT, context_of, open_page
from tests.ui.test_assign import server as server  # the module's app server
from tests.ui.test_browser import axe_violations

GAD7, SCL, BPD = CAT.get("gad-7"), CAT.get("scl-90-r"), CAT.get("bpd-criteria")

# Every element of the page that is drawn (not the visually hidden headers and captions):
# its content wider than its box (scrollWidth > clientWidth), or its box past its parent's.
CLIPPED = """() => {
  const hidden = (e) => { for (let a = e; a; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.clipPath !== "none" || s.display === "none") return true; } return false; };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : "");
  const found = [];
  for (const e of document.querySelectorAll("main *")) {
    if (hidden(e)) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const text = (e.textContent || "").trim().slice(0, 40);
    if (e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0 &&
        getComputedStyle(e).display !== "inline") {
      found.push(["scroll", name(e), text, e.scrollWidth, e.clientWidth]);
    }
    const p = e.parentElement.getBoundingClientRect();
    if (r.right > p.right + 1 || r.left < p.left - 1) {
      found.push(["outside", name(e), text, Math.round(r.right), Math.round(p.right)]);
    }
  }
  return found;
}"""


def _overdue_and_scheduled(server: AppServer, patient: str) -> None:
    """An overdue one-off GAD-7, the clinician's BPD criteria, and a running schedule whose
    Tasks (one missed and cancelled, one open) carry the longest form titles."""
    context = context_of(server)
    now = datetime.now(UTC)
    start = (now - timedelta(days=20)).date()
    with context.store.transaction() as conn:
        tasks.assign(conn, context, GAD7, patient, "Practitioner/dr-bianchi",
                     (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     (now - timedelta(days=16)).strftime("%Y-%m-%dT23:59:59Z"))
        tasks.assign(conn, context, BPD, patient, "Practitioner/dr-bianchi")
        done = tasks.assign(conn, context, SCL, patient, "Practitioner/dr-bianchi")
        tasks.cancel(conn, context, done["id"], now, "withdrawn over the API")
        schedules.create(conn, context, patient, {"reference": "Practitioner/dr-bianchi"}, [
            Activity(f"{GAD7['url']}|{GAD7['version']}", 2, "wk", start),
            Activity(SCL["url"], 2, "wk", start, count=5)])
    schedules.run(context, now)


@pytest.mark.parametrize("lang", ["en", "it"])
def test_at_360_px_no_cell_is_clipped(server: AppServer, page: Any,
                                      lang: str) -> None:
    patient = open_page(page, server, f"Stretta-{lang}", lang=lang)
    _overdue_and_scheduled(server, patient)
    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    page.wait_for_selector("#assignments[data-ready=true]", state="attached")
    assert page.locator("#task-rows tr.overdue").count() >= 1
    assert page.locator("#task-rows tr").count() >= 4
    # Closed Tasks are not among the forms to fill: they have their own list.
    assert page.locator("#closed-rows tr").count() == 1 and page.is_visible("#closed-section")
    cancelled = i18n.words(lang)["task_status"]["cancelled"]
    assert cancelled in page.inner_text("#closed-rows")
    assert cancelled not in page.inner_text("#task-rows")
    assert page.locator("#schedule-rows tr").count() == 1
    # Each title in the schedule row says its language (English where it has no Italian one).
    titles = page.locator("#schedule-rows th span[lang]")
    assert titles.count() == 2 and {titles.nth(i).get_attribute("lang") for i in (0, 1)} == {"en"}
    screenshot(page, f"assign-overdue-360-{lang}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.evaluate(CLIPPED) == []


@pytest.mark.parametrize("lang", ["en", "it"])
def test_the_demo_patients_page_says_synthetic_and_fits_at_360_px(
        ehr: SmartEhr, browser: Any, tmp_path: Path, lang: str) -> None:
    """`make run`: the landing page's link, the banner, each synthetic row labelled, the done
    forms in their own list, the treatment schedule's cadence per form; nothing clipped."""
    words = i18n.words(lang)
    with contextmanager(run_app_server)(ehr, tmp_path, AUTH="none") as dev:
        load_demo(dev.app.extensions["mit_fhir"])
        context = browser.new_context(viewport={"width": 360, "height": 800}, bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(f"{dev.url}/")
            page.click("a:text-is('Assigned forms')")
            if lang != "en":
                page.click(f"a[hreflang={lang}]")
            page.wait_for_selector("#assignments[data-ready=true]", state="attached")
            assert page.is_visible("#synthetic-banner")
            assert words["synthetic"] in page.inner_text("#task-rows")
            assert words["synthetic"] in page.inner_text("#schedule-rows")
            assert page.locator("#closed-rows tr").count() >= 6
            assert words["task_status"]["completed"] not in page.inner_text("#task-rows")
            assert words["times_n"]["two"] in page.inner_text("#schedule-rows")  # BPD criteria
            screenshot(page, f"assign-demo-360-{lang}")
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            assert page.evaluate(CLIPPED) == []
            for width in (700, 920):  # cards, then the narrowest tables
                page.set_viewport_size({"width": width, "height": 900})
                screenshot(page, f"assign-demo-{width}-{lang}")
                assert page.evaluate(CLIPPED) == [], width
            page.set_viewport_size({"width": 1280, "height": 900})
            screenshot(page, f"assign-demo-1280-{lang}")
            assert page.evaluate(CLIPPED) == []
            # On a wide screen no one-word value is broken inside the word ("Complete|d").
            broken = page.evaluate("""() => Array.from(document.querySelectorAll("main .value"))
              .filter((v) => !/\\s/.test(v.textContent.trim()) && v.getClientRects().length > 1)
              .map((v) => v.textContent)""")
            assert broken == []
            assert axe_violations(page) == []
        finally:
            context.close()
