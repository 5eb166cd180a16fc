"""The Task use cases (mit_fhir/usecases/tasks.py): assign, start, cancel, complete with a
response, and
what is open, on this run's database."""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from mit_fhir.app import create_app
from mit_fhir.errors import Conflict, NotFound, Unprocessable
from mit_fhir.fhir import task as shape
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.store.repository import search
from mit_fhir.store.schema import outbox
from mit_fhir.usecases import tasks
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.submissions import submit_once
from tests.conftest import sample, stored_counts

PHQ9 = "https://mit-fhir.org/fhir/Questionnaire/phq-9"
BPD = "https://mit-fhir.org/fhir/Questionnaire/bpd-criteria"
DOCTOR = "Practitioner/dr-a"


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    application = create_app({"DATABASE_URL": database_url, "TASK_WINDOW_DAYS": "3"})
    yield application
    application.extensions["mit_fhir"].store.dispose()


@pytest.fixture
def context(app: Flask) -> Context:
    found: Context = app.extensions["mit_fhir"]
    return found


def _assign(context: Context, form: str = PHQ9, patient: str = "p1",
            start: str | None = "2026-01-01", end: str | None = None) -> dict[str, Any]:
    with context.store.transaction() as conn:
        return tasks.assign(conn, context, form, patient, DOCTOR, start, end)


def _response(form: str = "phq-9", patient: str = "p1") -> dict[str, Any]:
    qr = copy.deepcopy(sample(form))
    qr.pop("id", None)
    qr["subject"] = {"reference": f"Patient/{patient}"}
    return qr


def _submit(context: Context, task_id: str, qr: dict[str, Any]) -> dict[str, Any]:
    """Submit `qr`, completing the Task in the response's transaction (as the pages do)."""
    done: dict[str, Any] = {}

    def on_stored(conn: Any, stored: list[dict[str, Any]]) -> None:
        response = next(r for r in stored if r["resourceType"] == "QuestionnaireResponse")
        done["task"] = tasks.complete_with(conn, context, task_id, response,
                                           "2026-01-02T10:00:00Z")

    submit_once(context, qr, on_stored)
    return done["task"]


def _read(context: Context, task_id: str) -> dict[str, Any]:
    with context.store.transaction() as conn:
        found = search(conn, "Task", [Criterion("_id", "eq", (task_id,))])
    assert len(found) == 1
    return found[0]


def _responses(context: Context, patient: str = "p1") -> int:
    with context.store.transaction() as conn:
        return len(search(conn, "QuestionnaireResponse",
                          [Criterion("patient", "eq", (f"Patient/{patient}",))]))


def test_a_self_report_form_is_owned_by_the_patient_and_due_after_the_window(
        context: Context) -> None:
    task = _assign(context)
    assert shape.is_questionnaire_task(task) and task["status"] == "requested"
    assert task["owner"] == {"reference": "Patient/p1"}
    assert task["requester"] == {"reference": DOCTOR}
    assert shape.questionnaire_url(task) == PHQ9 and shape.questionnaire_of(task) == PHQ9 + "|1.0.0"
    assert shape.period(task) == ("2026-01-01", "2026-01-04")  # MIT_FHIR_TASK_WINDOW_DAYS=3
    assert task["identifier"] == [{"system": shape.IDENTIFIER_SYSTEM, "value": task["id"]}]
    assert _read(context, task["id"])["meta"]["versionId"] == "1"


def test_a_clinician_rated_form_is_owned_by_its_requester(context: Context) -> None:
    task = _assign(context, BPD, end="2026-02-01")
    assert task["owner"] == {"reference": DOCTOR}
    assert shape.period(task) == ("2026-01-01", "2026-02-01")


def test_a_start_without_a_date_is_now_and_the_window_runs_from_it(context: Context) -> None:
    task = _assign(context, start=None)
    start, end = shape.period(task)
    assert start is not None and end is not None and start.endswith("Z")
    assert tasks.window_end(start, 3) == end


@pytest.mark.parametrize("form, start, end", [
    ("https://mit-fhir.org/fhir/Questionnaire/not-served", "2026-01-01", None),
    (PHQ9 + "|9.9.9", "2026-01-01", None),
    (PHQ9, "2026-02-01", "2026-01-01"),
])
def test_assign_refuses_an_unknown_form_or_a_backwards_period(
        app: Flask, context: Context, form: str, start: str, end: str | None) -> None:
    before = stored_counts(app)
    with pytest.raises(Unprocessable):
        _assign(context, form, start=start, end=end)
    assert stored_counts(app) == before


def test_open_tasks_lists_the_patients_open_tasks_due_first(context: Context) -> None:
    later = _assign(context, end="2026-03-01")
    sooner = _assign(context, end="2026-02-01")
    rated = _assign(context, BPD, end="2026-01-15")
    gone = _assign(context, end="2026-01-10")
    _assign(context, patient="p2", end="2026-01-05")
    with context.store.transaction() as conn:
        tasks.cancel(conn, context, gone["id"], "2026-01-02T00:00:00Z", "no longer needed")
        assert [t["id"] for t in tasks.open_tasks(conn, "p1")] == \
            [rated["id"], sooner["id"], later["id"]]
        assert [t["id"] for t in tasks.open_tasks(conn, "Patient/p1", owner="Patient/p1")] == \
            [sooner["id"], later["id"]]
        assert {t["id"] for t in tasks.tasks_of(conn, "p1")} == \
            {later["id"], sooner["id"], rated["id"], gone["id"]}
        assert len(tasks.tasks_of(conn, "p2")) == 1


def test_tasks_of_lists_the_newest_first(context: Context) -> None:
    first = _assign(context)
    second = _assign(context)
    with context.store.transaction() as conn:
        assert [t["id"] for t in tasks.tasks_of(conn, "p1")] == [second["id"], first["id"]]


def test_start_puts_a_requested_task_in_progress_once(context: Context) -> None:
    task = _assign(context)
    with context.store.transaction() as conn:
        started = tasks.start(conn, context, task["id"], "2026-01-02T09:00:00Z")
        again = tasks.start(conn, context, task["id"], "2026-01-02T09:30:00Z")
    assert started["status"] == "in-progress" and started["meta"]["versionId"] == "2"
    assert started["executionPeriod"] == {"start": "2026-01-02T09:00:00Z"}
    assert again["meta"]["versionId"] == "2"  # a second draft changes nothing
    assert _read(context, task["id"])["status"] == "in-progress"


def test_cancel_records_the_reason_and_a_cancelled_task_stays_cancelled(
        context: Context) -> None:
    task = _assign(context)
    with context.store.transaction() as conn:
        cancelled = tasks.cancel(conn, context, task["id"], "2026-01-02T09:00:00Z", "moved")
    assert cancelled["status"] == "cancelled" and cancelled["statusReason"] == {"text": "moved"}
    for attempt in (lambda c: tasks.cancel(c, context, task["id"], "2026-01-03", "again"),
                    lambda c: tasks.start(c, context, task["id"], "2026-01-03")):
        with pytest.raises(Conflict), context.store.transaction() as conn:
            attempt(conn)
    with pytest.raises(NotFound), context.store.transaction() as conn:
        tasks.cancel(conn, context, "no-such-task", "2026-01-03", "x")
    assert _read(context, task["id"])["meta"]["versionId"] == "2"


def test_a_response_completes_its_task_in_its_own_transaction(context: Context) -> None:
    task = _assign(context)
    done = _submit(context, task["id"], _response())
    stored = _read(context, task["id"])
    assert stored == done and stored["status"] == "completed"
    reference = shape.response_of(stored)
    assert reference is not None and reference.startswith("QuestionnaireResponse/")
    assert stored["executionPeriod"]["end"] == "2026-01-02T10:00:00Z"


def test_a_task_no_longer_open_is_a_conflict_and_the_response_is_not_stored(
        context: Context) -> None:
    task = _assign(context)
    _submit(context, task["id"], _response())
    with pytest.raises(Conflict):
        _submit(context, task["id"], _response())
    assert _responses(context) == 1
    cancelled = _assign(context)
    with context.store.transaction() as conn:
        tasks.cancel(conn, context, cancelled["id"], "2026-01-02T00:00:00Z", "moved")
    with pytest.raises(Conflict):
        _submit(context, cancelled["id"], _response())
    assert _responses(context) == 1


@pytest.mark.parametrize("why, task_form, response", [
    ("another patient's response", PHQ9, lambda: _response(patient="p2")),
    ("another form's response", PHQ9, lambda: _response("gad-7")),
    ("a response that is not completed", PHQ9,
     lambda: {**_response(), "status": "in-progress"}),
])
def test_a_response_that_does_not_match_the_task_is_unprocessable(
        context: Context, why: str, task_form: str, response: Any) -> None:
    task = _assign(context, task_form)
    with pytest.raises(Unprocessable):
        _submit(context, task["id"], response())
    assert _read(context, task["id"])["status"] == "requested", why
    assert _responses(context, "p1") + _responses(context, "p2") == 0


def test_an_unknown_task_is_answered_as_another_patients(context: Context) -> None:
    other = _assign(context, patient="p2")
    errors = []
    for task_id in (other["id"], "no-such-task"):
        with pytest.raises(Unprocessable) as caught:
            _submit(context, task_id, _response())
        errors.append(caught.value.outcome())
    assert errors[0] == errors[1]  # the caller cannot tell another patient's Task from none


def test_a_relative_questionnaire_reference_names_the_same_form(context: Context) -> None:
    task = _assign(context)
    qr = {**_response(), "questionnaire": "Questionnaire/phq-9"}
    assert _submit(context, task["id"], qr)["status"] == "completed"


def test_two_concurrent_completions_complete_once(context: Context) -> None:
    task = _assign(context)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait(timeout=10)
        try:
            _submit(context, task["id"], _response())
            outcomes.append("completed")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["completed", "conflict", "conflict", "conflict"]
    stored = _read(context, task["id"])
    assert stored["status"] == "completed" and stored["meta"]["versionId"] == "2"
    assert _responses(context) == 1  # the losers' responses rolled back with them


def test_every_task_write_is_queued_for_the_ehr_when_sync_is_on(context: Context) -> None:
    synced = dataclasses.replace(
        context, settings={**context.settings, "EHR_BASE_URL": "http://ehr.invalid/fhir"})
    task = _assign(synced)
    with synced.store.transaction() as conn:
        tasks.start(conn, synced, task["id"], "2026-01-02T09:00:00Z")
        tasks.cancel(conn, synced, task["id"], "2026-01-02T10:00:00Z", "moved")
        versions = conn.execute(select(outbox.c.version_id).where(
            outbox.c.resource_type == "Task", outbox.c.resource_id == task["id"])
            .order_by(outbox.c.version_id)).scalars().all()
        assert versions == [1, 2, 3]
        assert conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.state == "pending")).scalar_one() == 1  # the latest supersedes the rest


@pytest.mark.parametrize("start, end", [
    ("2026-01-31", "2026-02-03"), ("2026-01", "2026-01-04"), ("2026", "2026-01-04"),
    ("2026-03-28T10:00:00Z", "2026-03-31T10:00:00Z"),
    ("2026-03-28T10:00:00+01:00", "2026-03-31T10:00:00+01:00"),
])
def test_the_window_ends_days_after_any_start_a_client_may_write(
        context: Context, start: str, end: str) -> None:
    assert shape.period(_assign(context, start=start)) == (start, end)


def test_who_performs_is_marked_and_searchable(context: Context) -> None:
    """Newcomer finding 1: performerType Patient on a self-report form's Task, Healthcare
    professional on a clinician-rated one, searched as R4's `performer` token."""
    own = _assign(context)
    theirs = _assign(context, BPD, end="2026-02-01")
    assert own["performerType"][0]["coding"][0]["code"] == "116154003"
    assert theirs["performerType"][0]["coding"][0]["code"] == "223366009"
    assert shape.patient_performed(own) and not shape.patient_performed(theirs)
    with context.store.transaction() as conn:
        def found(code: str) -> list[str]:
            return [t["id"] for t in search(conn, "Task", [
                Criterion("performer", "eq", (f"http://snomed.info/sct|{code}",))])]
        assert found("116154003") == [own["id"]]
        assert found("223366009") == [theirs["id"]]


def test_a_task_without_performer_type_is_judged_by_its_owner(context: Context) -> None:
    """A Task stored before performerType was written (or a client's without it) is indexed
    with the performer its owner implies whenever it is stored again."""
    made = shape.questionnaire_task(PHQ9, "p1", {"reference": DOCTOR}, "2026-01-01T00:00:00Z")
    del made["performerType"]
    assert shape.patient_performed(made)
    with context.store.transaction() as conn:
        stored = tasks.store_new(conn, context, made)
        hits = search(conn, "Task", [Criterion("performer", "eq",
                                                ("http://snomed.info/sct|116154003",))])
    assert "performerType" not in stored and [t["id"] for t in hits] == [stored["id"]]


def test_a_period_from_now_is_written_in_one_format(context: Context) -> None:
    """Newcomer finding 16: start and end both instants as now_instant writes them."""
    import re

    start, end = shape.period(_assign(context, start=None))
    instant = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert start and end and instant.match(start) and instant.match(end), (start, end)
