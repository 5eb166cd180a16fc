"""The form page in chromium: one identifier per fill, so a double submit, a retry after a lost
answer and a reload of the same fill store one response (screenshots in build/screenshots/)."""

from __future__ import annotations

import re
from typing import Any

from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store import repository
from mit_fhir.ui import i18n, messages
from mit_fhir.ui.forms import FILL_SYSTEM
from tests.ui.conftest import AppServer, create_in_ehr, screenshot
from tests.ui.test_browser import click_answer, launch

GAD7 = [f"gad-7-{n}" for n in range(1, 8)]
ANSWERS = {link: n % 4 for n, link in enumerate(GAD7)}  # total 0+1+2+3+0+1+2 = 9
FILL = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def stored(server: AppServer, patient: str) -> list[dict[str, Any]]:
    with server.app.extensions["mit_fhir"].store.transaction() as conn:
        return repository.search(conn, "QuestionnaireResponse",
                                 [Criterion("patient", "eq", (f"Patient/{patient}",))])


def open_gad7(page: Any, server: AppServer, medplum: Any, family: str) -> str:
    """Launch for a new patient, open GAD-7 and answer every item; return the patient id."""
    patient: str = create_in_ehr(medplum.base_url, {"resourceType": "Patient",
                                                    "name": [{"family": family}]})["id"]
    launch(page, server, patient)
    page.goto(f"{server.url}/app/forms/gad-7")
    answer_gad7(page)
    return patient


def answer_gad7(page: Any) -> None:
    page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
    for link, weight in ANSWERS.items():
        click_answer(page, link, weight)


class Posts:
    """Watches the page's submissions; `lose` drops the answer to the first `lose` of them
    after the service has handled it (a connection lost on the way back)."""

    def __init__(self, page: Any, lose: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.lose = lose
        page.route("**/app/api/forms/*/responses?*", self._handle)

    def _handle(self, route: Any) -> None:
        self.bodies.append(route.request.post_data_json)
        answer = route.fetch()  # the service receives it and stores it
        self.answers.append({"status": answer.status, **answer.json()})
        if len(self.answers) <= self.lose:
            route.abort("connectionreset")
        else:
            route.fulfill(response=answer)

    def identifiers(self) -> list[dict[str, str]]:
        return [b["identifier"] for b in self.bodies]


def test_a_double_click_on_submit_stores_one_response(app_server: AppServer,
                                                      medplum_server: Any, page: Any) -> None:
    patient = open_gad7(page, app_server, medplum_server, "Doppio")
    posts = Posts(page)
    fill = page.get_attribute("#form", "data-fill")
    assert FILL.fullmatch(fill or "")
    page.dblclick("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    screenshot(page, "gad7-double-click")
    [response] = stored(app_server, patient)
    assert response["identifier"] == {"system": FILL_SYSTEM, "value": fill}
    assert all(i == response["identifier"] for i in posts.identifiers())
    # The grid's layout group never leaves the page: the service gets the form's own items.
    sent = [i["linkId"] for i in posts.bodies[0]["item"]]
    assert [link for link in sent if link.startswith("gad-7-") and link[-1].isdigit()] == GAD7
    assert not any(link.startswith("mit-grid-") for link in sent)
    # Item 2 carries LOINC's equivalent coding, so it is a grid block of its own: 3 blocks.
    assert int(page.get_attribute("#form", "data-grids") or 0) >= 1
    assert page.get_attribute("#form", "data-submitted") == response["id"]
    total = page.locator("#scores tr", has_text="GAD-7 total score").locator(".value")
    assert total.inner_text() == "9"


def test_a_retry_after_a_lost_answer_returns_the_stored_response(
        app_server: AppServer, medplum_server: Any, page: Any) -> None:
    patient = open_gad7(page, app_server, medplum_server, "Perso")
    posts = Posts(page, lose=1)
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Not submitted')")
    screenshot(page, "gad7-answer-lost")
    # What the person reads: the connection, and that pressing Submit again is safe.
    assert page.inner_text("#status") == i18n.words("en")["lost"]
    assert "fetch" not in page.inner_text("#status").lower()
    assert len(stored(app_server, patient)) == 1  # it was stored; the page could not know
    assert page.is_enabled("#submit")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    screenshot(page, "gad7-retried")
    [response] = stored(app_server, patient)
    first, retry = posts.answers
    assert (first["status"], retry["status"]) == (200, 200)
    assert first["response"] == retry["response"] == response["id"]
    assert posts.identifiers() == [response["identifier"]] * 2
    assert page.get_attribute("#form", "data-submitted") == response["id"]
    assert "Submitted" in page.inner_text("#status")


def test_a_reload_after_a_lost_answer_continues_the_same_fill(
        app_server: AppServer, medplum_server: Any, page: Any) -> None:
    patient = open_gad7(page, app_server, medplum_server, "Ricarica")
    posts = Posts(page, lose=1)
    fill = page.get_attribute("#form", "data-fill")
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Not submitted')")
    page.reload()  # the person gives up waiting and starts again in the same tab
    assert page.get_attribute("#form", "data-fill") == fill
    answer_gad7(page)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    screenshot(page, "gad7-reloaded-and-resubmitted")
    [response] = stored(app_server, patient)
    assert [a["response"] for a in posts.answers] == [response["id"]] * 2
    # Stored: the next fill of the form (a reload now) is another one.
    page.reload()
    page.wait_for_selector("#form[data-ready=true]", timeout=30_000)
    assert FILL.fullmatch(page.get_attribute("#form", "data-fill") or "")
    assert page.get_attribute("#form", "data-fill") != fill


def test_a_fill_changed_after_a_lost_answer_is_not_stored_over_the_first(
        app_server: AppServer, medplum_server: Any, page: Any) -> None:
    patient = open_gad7(page, app_server, medplum_server, "Cambiato")
    posts = Posts(page, lose=1)
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Not submitted')")
    click_answer(page, "gad-7-1", 3)  # the person changes an answer, then submits again
    page.click("#submit")
    page.wait_for_selector("#status:has-text('differ from the ones already sent')")
    # Said plainly, with what to do; no internal code or HTTP status.
    assert page.inner_text("#status") == "Not submitted: " + messages.WORDS["en"]["conflict"]
    screenshot(page, "gad7-changed-fill-refused")
    assert len(stored(app_server, patient)) == 1
    # The page has made the changed answers a new fill: submitting them now stores them.
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    screenshot(page, "gad7-changed-fill-resubmitted")
    assert len(stored(app_server, patient)) == 2
    assert len({i["value"] for i in posts.identifiers()}) == 2
