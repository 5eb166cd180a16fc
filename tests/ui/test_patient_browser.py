"""The patient's pages in chromium against the real SMART suite (test EHR + Medplum): a portal
launch sees exactly its open Tasks and fills DERS by clicking; the hand-over mode cannot reach
the chart by URL or by the back button; screenshots at 360 and 1280 px in build/screenshots/."""

from __future__ import annotations

from typing import Any

from mit_fhir.fhir import task as fhir_task
from mit_fhir.store import repository
from tests.ui.conftest import SCREENSHOTS, AppServer, screenshot
from tests.ui.helpers import ders_items
from tests.ui.patient_seed import DERS_URL, new_patient, portal_launch, seed_task
from tests.ui.test_browser import axe_violations, click_answer, launch


def _read(server: AppServer, resource_type: str, rid: str) -> dict[str, Any]:
    with server.app.extensions["mit_fhir"].store.transaction() as conn:
        found = repository.read(conn, resource_type, rid)
    assert found is not None
    return found


def _no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def test_a_patient_fills_their_own_ders_task_by_clicking(
        app_server: AppServer, medplum_server: Any, browser: Any, patient_user: Any) -> None:
    me, other = new_patient(medplum_server, "Verdi"), new_patient(medplum_server, "Neri")
    tid = seed_task(app_server.app, me, DERS_URL)
    hidden = [seed_task(app_server.app, me, DERS_URL, status="completed"),
              seed_task(app_server.app, me, DERS_URL, owner="Practitioner/dr-rossi"),
              seed_task(app_server.app, other, DERS_URL)]
    patient_user(me)
    ctx = browser.new_context(viewport={"width": 360, "height": 780}, bypass_csp=True,
                              locale="en-GB")
    page = ctx.new_page()
    try:
        portal_launch(page, app_server, me)
        tasks = page.locator("#my-tasks li")
        assert [tasks.nth(i).get_attribute("data-task") for i in range(tasks.count())] == [tid]
        assert not any(h in page.content() for h in hidden)
        assert "Please fill in by 31 January 2099" in page.inner_text("#my-tasks")
        assert page.locator("nav a").all_inner_texts() == ["Your forms"]  # no chart, no list
        assert _no_horizontal_scroll(page)
        assert axe_violations(page) == []
        screenshot(page, "patient-my-360")
        page.set_viewport_size({"width": 1280, "height": 900})
        screenshot(page, "patient-my-1280")
        page.set_viewport_size({"width": 360, "height": 780})

        page.click(f"#my-tasks li[data-task='{tid}'] a")
        page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
        assert _no_horizontal_scroll(page)
        assert "weight" not in page.inner_text("#form").lower()
        page.screenshot(path=str(SCREENSHOTS / "patient-form-360-top.png"))
        items = [i["linkId"] for i in ders_items()]
        for link in items[:5]:
            click_answer(page, link, 2)
        page.click("#save-draft")
        page.wait_for_selector("#status:has-text('Draft saved')")
        assert _read(app_server, "Task", tid)["status"] == "in-progress"
        for link in items[5:]:
            click_answer(page, link, 2)
        screenshot(page, "patient-form-360")
        page.click("#submit")
        page.wait_for_selector("#thanks:not([hidden])", timeout=30_000)
        assert page.locator("#safety").is_hidden() and page.locator("#scores").count() == 0
        assert "sent to your care team" in page.inner_text("#status")
        screenshot(page, "patient-thanks-360")

        task = _read(app_server, "Task", tid)
        assert task["status"] == "completed"
        ref = fhir_task.response_of(task)
        assert ref is not None
        response = _read(app_server, "QuestionnaireResponse", ref.split("/")[1])
        me_ref = {"reference": f"Patient/{me}"}
        assert response["author"] == me_ref and response["source"] == me_ref
        assert response["subject"] == me_ref
        page.click("#to-my")
        assert page.locator("#my-none").is_visible()
    finally:
        ctx.close()


def test_the_handover_mode_never_shows_the_chart_again(
        app_server: AppServer, medplum_server: Any, browser: Any) -> None:
    patient = new_patient(medplum_server, "Gialli")
    tid = seed_task(app_server.app, patient, DERS_URL)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = ctx.new_page()
    try:
        launch(page, app_server, patient)
        assert "Forms for patient" in page.inner_text("h1")
        answer = page.evaluate("""async (tid) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/app/api/handover', {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
              body: JSON.stringify({tasks: [tid]})});
            return {status: r.status, body: await r.json()};
        }""", tid)
        assert answer == {"status": 200, "body": {"url": "/app/my"}}
        page.goto(f"{app_server.url}{answer['body']['url']}")
        assert page.locator("#my-tasks li").get_attribute("data-task") == tid
        screenshot(page, "patient-handover-1280")
        page.go_back()
        page.wait_for_load_state()
        assert "Forms for patient" not in page.content()
        for path in ("/app/", "/app/outcomes", f"/app/patients/{patient}/outcomes"):
            page.goto(f"{app_server.url}{path}")
            assert "Forms for patient" not in page.content()
            assert "This device is in patient mode" in page.inner_text("main"), path
            assert page.locator("#message-link").get_attribute("href") == "/app/my"
        page.goto(f"{app_server.url}/app/my")
        page.click("#finished")
        page.wait_for_selector("#give-back")
        screenshot(page, "patient-give-back-1280")
        page.go_back()
        page.wait_for_load_state()
        assert "Forms for patient" not in page.content()
    finally:
        ctx.close()
