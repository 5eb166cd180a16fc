"""The assignments page in chromium, launched from the test EHR: assigning by clicking, the
Tasks and schedule CarePlans it stores for the launched patient, cancelling, refusals, and the
hand-over to the patient (screenshots in build/screenshots/)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from mit_fhir.fhir import task as sdc
from mit_fhir.ui import i18n
from mit_fhir.usecases import schedules, tasks
from tests.ui.conftest import (
    CLIENT_ID,
    SCOPE,
    AppServer,
    create_in_ehr,
    run_app_server,
    screenshot,
)
from tests.ui.helpers import catalogue
from tests.ui.smart_ehr import SmartEhr
from tests.ui.test_browser import axe_violations, launch

# What the page writes: Tasks and schedule CarePlans of the launched patient only.
ASSIGN_SCOPE = f"{SCOPE} patient/Task.cu patient/CarePlan.cu"
CAT = catalogue()
PHQ9, DERS = CAT.get("phq-9"), CAT.get("ders")
EN = i18n.words("en")


@pytest.fixture(scope="module")
def server(ehr: SmartEhr, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app asking the EHR for Task and CarePlan writes, registered with them."""
    for found in run_app_server(ehr, tmp_path_factory.mktemp("assign-app"),
                                SMART_SCOPE=ASSIGN_SCOPE):
        ehr.register(CLIENT_ID, f"{found.url}/app/callback", ASSIGN_SCOPE,
                     secret="s3cret-of-the-app")
        yield found


@pytest.fixture
def axe_page(browser: Any) -> Iterator[Any]:
    """A page that lets axe's script in (the Content-Security-Policy bypassed)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB",
                                  bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def errors_of(page: Any) -> list[str]:
    """Script errors and Content-Security-Policy refusals, as the page meets them."""
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def context_of(server: AppServer) -> Any:
    return server.app.extensions["mit_fhir"]


def stored_tasks(server: AppServer, patient: str) -> list[dict[str, Any]]:
    with context_of(server).store.transaction() as conn:
        return tasks.tasks_of(conn, patient)


def stored_schedules(server: AppServer, patient: str) -> list[dict[str, Any]]:
    with context_of(server).store.transaction() as conn:
        return schedules.schedules_of(conn, patient)


def open_page(page: Any, server: AppServer, family: str, lang: str = "en") -> str:
    """A new patient in the EHR, launched, on the assignments page; returns its id."""
    patient: str = create_in_ehr(server.ehr.fhir_backend, {
        "resourceType": "Patient", "name": [{"family": family}]})["id"]
    launch(page, server, patient)
    page.click(f"nav >> text={EN['tasks_nav']}")
    if lang != "en":
        page.click(f"a[hreflang={lang}]")
    page.wait_for_selector("#assignments[data-ready=true]", state="attached")
    return patient


def tick(page: Any, qid: str) -> None:
    page.check(f'input[name="forms"][value="{qid}"]')


def said(page: Any, text: str) -> None:
    page.wait_for_selector(f"#status:has-text({text!r})", timeout=15_000)


def test_assigning_phq9_once_and_ders_every_3_months_by_clicking(server: AppServer,
                                                                  axe_page: Any) -> None:
    page = axe_page
    patient = open_page(page, server, "Assegnata")
    assert page.is_visible("#no-tasks") and page.is_visible("#no-schedules")
    today = datetime.now(UTC).date()
    window = int(context_of(server).settings["TASK_WINDOW_DAYS"])
    due = today + timedelta(days=window)
    assert page.input_value("#due") == due.isoformat()  # the default window, proposed

    tick(page, "phq-9")
    page.click("#assign")
    said(page, "Assigned:")
    [phq9] = stored_tasks(server, patient)
    assert sdc.questionnaire_of(phq9) == f"{PHQ9['url']}|{PHQ9['version']}"
    assert phq9["for"] == {"reference": f"Patient/{patient}"}
    assert phq9["owner"] == {"reference": f"Patient/{patient}"}  # self-report: the patient's
    assert phq9["requester"] == {"reference": server.ehr.fhir_user}
    assert phq9["status"] == "requested" and "basedOn" not in phq9
    assert sdc.due(phq9) == f"{due.isoformat()}T23:59:59"
    row = page.locator(f'tr[data-task="{phq9["id"]}"]')
    assert PHQ9["title"] in row.inner_text() and due.isoformat() in row.inner_text()

    # DERS every 3 months, first tomorrow: nothing is due yet, the worker's run makes it.
    first = today + timedelta(days=1)
    tick(page, "ders")
    page.check('input[name="mode"][value="schedule"]')
    page.fill("#every", "3")
    page.select_option("#unit", "mo")
    page.fill("#start", first.isoformat())
    page.fill("#count", "4")
    page.click("#assign")
    said(page, "Schedule saved:")
    assert "4 times, 3 months apart" in page.inner_text("#status")
    [plan] = stored_schedules(server, patient)
    assert plan["status"] == "active" and plan["subject"] == {"reference": f"Patient/{patient}"}
    assert plan["author"] == {"reference": server.ehr.fhir_user}
    [activity] = plan["activity"]
    assert activity["detail"]["instantiatesCanonical"] == [f"{DERS['url']}|{DERS['version']}"]
    assert activity["detail"]["scheduledTiming"]["repeat"] == {
        "boundsPeriod": {"start": first.isoformat()}, "count": 4, "frequency": 1,
        "period": 3, "periodUnit": "mo"}
    row = page.locator(f'tr[data-schedule="{plan["id"]}"]')
    assert "4 times, 3 months apart" in row.inner_text()
    assert len(stored_tasks(server, patient)) == 1

    # The schedule run makes the first DERS Task once, however often it runs.
    at = datetime.combine(first, time(9), UTC)
    first_run = schedules.run(context_of(server), at)
    again = schedules.run(context_of(server), at + timedelta(minutes=5))
    assert first_run.created >= 1 and again.created == 0
    ders = [t for t in stored_tasks(server, patient) if sdc.questionnaire_url(t) == DERS["url"]]
    assert len(ders) == 1
    assert ders[0]["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
    page.reload()
    page.wait_for_selector("#assignments[data-ready=true]", state="attached")
    assert EN["from_schedule"] in page.inner_text(f'tr[data-task="{ders[0]["id"]}"]')

    assert axe_violations(page) == []
    screenshot(page, "assign-1280")
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, "assign-360")
    page.set_viewport_size({"width": 1920, "height": 1000})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1920


def test_cancelling_a_task_and_stopping_a_schedule(server: AppServer, page: Any) -> None:
    errors = errors_of(page)
    patient = open_page(page, server, "Annullata")
    tick(page, "phq-9")
    page.click("#assign")
    said(page, "Assigned:")
    tick(page, "ders")
    page.check('input[name="mode"][value="schedule"]')
    page.click("#assign")  # from today: its first Task is due at once
    said(page, "Schedule saved:")
    found = {sdc.questionnaire_url(t): t for t in stored_tasks(server, patient)}
    assert set(found) == {PHQ9["url"], DERS["url"]}

    page.click(f'tr[data-task="{found[PHQ9["url"]]["id"]}"] button')
    said(page, "Cancelled:")
    after = {t["id"]: t for t in stored_tasks(server, patient)}
    assert after[found[PHQ9["url"]]["id"]]["status"] == "cancelled"
    assert after[found[DERS["url"]]["id"]]["status"] == "requested"
    row = page.locator(f'tr[data-task="{found[PHQ9["url"]]["id"]}"]')
    assert EN["task_status"]["cancelled"] in row.inner_text()
    assert row.locator("button").count() == 0  # a closed Task has nothing to cancel

    # Cancelled meanwhile elsewhere (a colleague, the API): the stale row's button says so.
    ders_id = found[DERS["url"]]["id"]
    context = context_of(server)
    with context.store.transaction() as conn:
        tasks.cancel(conn, context, ders_id, datetime.now(UTC), "withdrawn over the API")
    page.click(f'tr[data-task="{ders_id}"] button')
    said(page, EN["no_longer_open"][:40])
    page.wait_for_selector(f'tr[data-task="{ders_id}"]:not(:has(button))')

    [plan] = stored_schedules(server, patient)
    page.click(f'tr[data-schedule="{plan["id"]}"] button')
    said(page, "Schedule stopped:")
    [plan] = stored_schedules(server, patient)
    assert plan["status"] == "revoked"
    assert EN["plan_status"]["revoked"] in page.inner_text(f'tr[data-schedule="{plan["id"]}"]')
    later = datetime.now(UTC) + timedelta(days=400)
    schedules.run(context_of(server), later)
    ders = [t for t in stored_tasks(server, patient) if sdc.questionnaire_url(t) == DERS["url"]]
    assert len(ders) == 1  # a stopped schedule makes no more
    # No script error, no Content-Security-Policy refusal: only the 409 the browser logs.
    assert [e for e in errors if "status of 409" not in e] == []


def test_a_bad_cadence_is_refused_with_a_message_and_nothing_stored(server: AppServer,
                                                                    page: Any) -> None:
    patient = open_page(page, server, "Rifiutata")
    assert page.is_hidden("#handover-box")  # nothing the patient could fill yet
    tick(page, "ders")
    page.check('input[name="mode"][value="schedule"]')
    page.fill("#every", "0")
    page.click("#assign")
    page.wait_for_selector("#assign-errors:not([hidden])")
    assert page.inner_text("#assign-errors") == EN["every_invalid"]
    assert page.get_attribute("#every", "aria-invalid") == "true"
    page.fill("#every", "3")
    page.fill("#end", (date.today() - timedelta(days=30)).isoformat())
    page.click("#assign")
    page.wait_for_selector(f"#assign-errors:has-text({EN['end_before_start']!r})")
    page.uncheck('input[name="forms"][value="ders"]')
    page.click("#assign")
    page.wait_for_selector(f"#assign-errors:has-text({EN['choose_form']!r})")
    screenshot(page, "assign-refused")
    assert stored_schedules(server, patient) == [] and stored_tasks(server, patient) == []


def test_the_page_in_italian_refuses_in_italian(server: AppServer, page: Any) -> None:
    patient = open_page(page, server, "Italiana", lang="it")
    it = i18n.words("it")
    assert page.inner_text("h1").startswith(it["tasks_for"])
    assert page.get_attribute("html", "lang") == "it"
    page.click("#assign")
    page.wait_for_selector(f"#assign-errors:has-text({it['choose_form']!r})")
    tick(page, "phq-9")
    page.click("#assign")
    said(page, "Assegnati:")
    assert len(stored_tasks(server, patient)) == 1
    assert it["task_status"]["requested"] in page.inner_text("#task-rows")
    page.set_viewport_size({"width": 360, "height": 800})
    screenshot(page, "assign-it-360")


def test_another_patients_task_cannot_be_cancelled_from_this_launch(server: AppServer,
                                                                    page: Any) -> None:
    other = create_in_ehr(server.ehr.fhir_backend, {"resourceType": "Patient"})["id"]
    context = context_of(server)
    with context.store.transaction() as conn:
        theirs = tasks.assign(conn, context, PHQ9, other, "Practitioner/dr-bianchi")
    open_page(page, server, "Curiosa")
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    resp = page.request.post(f"{server.url}/app/api/tasks/{theirs['id']}/cancel",
                             data="{}", headers={"X-CSRF-Token": csrf,
                                                 "Content-Type": "application/json"})
    assert resp.status == 404
    assert stored_tasks(server, other)[0]["status"] == "requested"
    # Without the CSRF token nothing is written either.
    resp = page.request.post(f"{server.url}/app/api/tasks",
                             data='{"forms": ["phq-9"], "due": "2999-01-01"}',
                             headers={"Content-Type": "application/json"})
    assert resp.status == 403


def test_handing_the_device_to_the_patient_for_the_ticked_forms(server: AppServer,
                                                                page: Any) -> None:
    patient = open_page(page, server, "Consegnata")
    tick(page, "phq-9")
    tick(page, "bpd-criteria")  # clinician-rated: never handed over
    page.click("#assign")
    said(page, "Assigned:")
    found = {sdc.questionnaire_url(t): t for t in stored_tasks(server, patient)}
    bpd = found[CAT.get("bpd-criteria")["url"]]
    assert bpd["owner"] == {"reference": server.ehr.fhir_user}
    assert page.locator(f'tr[data-task="{bpd["id"]}"] input[type=checkbox]').count() == 0
    page.click("#handover")
    said(page, EN["handover_none"])
    assert re.search("sign in again", page.inner_text("#handover"))
    page.check(f'tr[data-task="{found[PHQ9["url"]]["id"]}"] input[name="handover"]')
    page.click("#handover")
    page.wait_for_url(f"{server.url}/app/my*")
    assert "PHQ-9" in page.inner_text("main")
    # The clinician's page is gone with the clinician's session.
    resp = page.request.get(f"{server.url}/app/api/tasks")
    assert resp.status in (401, 403)


def test_an_ehr_that_grants_no_task_writes_gets_a_refusal_and_nothing_stored(
        server: AppServer, page: Any) -> None:
    # The EHR grants only what it allows the app: here the scopes of the form pages alone.
    server.ehr.register(CLIENT_ID, f"{server.url}/app/callback", SCOPE,
                        secret="s3cret-of-the-app")
    try:
        patient = open_page(page, server, "Senzapermesso")
        tick(page, "phq-9")
        page.click("#assign")
        said(page, "Not done: the EHR did not allow this app to assign forms")
        assert "Task.c" in page.inner_text("#status")
        tick(page, "ders")
        page.check('input[name="mode"][value="schedule"]')
        page.click("#assign")
        page.wait_for_selector("#status:has-text('CarePlan.c')")
    finally:
        server.ehr.register(CLIENT_ID, f"{server.url}/app/callback", ASSIGN_SCOPE,
                            secret="s3cret-of-the-app")
    assert stored_tasks(server, patient) == [] and stored_schedules(server, patient) == []
