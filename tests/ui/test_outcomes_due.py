"""What is due on the outcomes view, in Debian's chromium after a real SMART launch: Tasks
stored through mit_fhir.usecases.tasks and a schedule through mit_fhir.usecases.schedules; an
overdue Task is
said plainly (and first), the next due date and the last completion (synthetic labelled) are
marked on each instrument, at 360, 1280 and 1920 px."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mit_fhir.fhir.schedule import Activity
from mit_fhir.usecases import schedules, tasks
from tests.ui.conftest import SCREENSHOTS, AppServer, screenshot
from tests.ui.helpers import submit_ders
from tests.ui.test_browser import axe_violations
from tests.ui.test_outcomes_view import WIDTHS, browser_page, open_outcomes

Q = "https://mit-fhir.org/fhir/Questionnaire/"
DR = "Practitioner/dr-1"


def ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


def test_an_overdue_task_and_a_schedule_are_marked_on_the_outcomes_view(
        app_server: AppServer, browser: Any) -> None:
    context = app_server.app.extensions["mit_fhir"]
    patient = "due-view"
    submit_ders(context, patient, "2025-01-10T10:00:00Z", 3)
    submit_ders(context, patient, "2025-04-10T10:00:00Z", 2, synthetic=True)
    now = datetime.now(UTC)
    with context.store.transaction() as conn:
        tasks.assign(conn, context, f"{Q}ders", patient, DR, ago(40), ago(22))
        # Due all of the day 6 days ago (a due day counts whole): 5 days and some hours late.
        tasks.assign(conn, context, f"{Q}cssrs-screener", patient, DR, ago(12), ago(6))
        done = tasks.assign(conn, context, f"{Q}phq-9", patient, DR, ago(40), ago(30))
        tasks.cancel(conn, context, done["id"], now, "asked for by mistake")
        start = (now + timedelta(days=9)).date()
        schedules.create(conn, context, patient, {"reference": DR},
                         [Activity(f"{Q}scl-90-r", 3, "mo", start)], now=now)
        cancelled = schedules.create(conn, context, patient, {"reference": DR},
                                     [Activity(f"{Q}gad-7", 1, "mo", start)], now=now)
        schedules.cancel(conn, context, cancelled["id"], now)
    for width in WIDTHS:
        with browser_page(browser, width, axe=width == 360) as page:
            open_outcomes(page, app_server, patient)
            lines = page.locator("#due-summary li").all_inner_texts()
            # Overdue first, the longest first; then the next due date of the schedule.
            assert [line.split(":")[0] for line in lines] == [
                "DERS", "C-SSRS screener", "SCL-90-R"], lines
            ders, cssrs, scl = lines
            assert f"Overdue by 3 weeks (due {ago(22)})" in ders
            assert "last completed 2025-04-10 (synthetic)" in ders
            assert "the patient fills it" in ders
            assert "Overdue by 5 days" in cssrs and "never completed" in cssrs
            assert f"Next due {start.isoformat()} (schedule)" in scl
            # A cancelled Task (PHQ-9) is not overdue, a cancelled schedule (GAD-7) not due.
            summary = " ".join(page.locator(part).inner_text()
                               for part in ("#due-summary", "#outcomes"))
            assert "PHQ-9" not in summary and "GAD-7" not in summary
            assert "2 overdue" in page.locator("#due-summary h3").inner_text()
            mark = page.locator("section.instrument[data-code='ders-total'] .due-mark")
            assert mark.inner_text().startswith("Overdue by 3 weeks")
            scroll = page.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
            assert scroll[0] <= scroll[1], (width, scroll)
            page.screenshot(path=str(SCREENSHOTS / f"outcomes-due-{width}-first-screen.png"))
            if width == 360:
                assert axe_violations(page) == []
                screenshot(page, "outcomes-due-360")
