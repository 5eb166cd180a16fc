"""Storing SDC Tasks (fhir/task.py): each write indexed and queued for the host EHR with it.

The use cases on top (assigning, cancelling, completing with a response, schedules, what is
due) call these inside their own transaction, so a Task and what caused it commit together.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dateutil.parser import isoparse
from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection

from mit_fhir import vocabulary
from mit_fhir.errors import Conflict, Issue, NotFound, PreconditionFailed, Unprocessable
from mit_fhir.fhir import task as task_shape
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.index import sort_date, task_index
from mit_fhir.fhir.references import resource_patient
from mit_fhir.fhir.search import date_key
from mit_fhir.store.repository import insert, new_id, now_instant, read, search, serialize, update
from mit_fhir.sync import outbox
from mit_fhir.usecases.context import Context

Resource = dict[str, Any]


def store_new(conn: Connection, context: Context, task: Resource,
              business_key: str | None = None) -> Resource:
    """Insert a new Task (version 1); a taken `business_key` raises the store's Conflict."""
    task.setdefault("id", new_id())
    stored = insert(conn, task, task_index(task), sort_date(task), business_key)
    if context.sync_enabled:
        outbox.enqueue(conn, [stored], time.time())
    return stored


def store_version(conn: Connection, context: Context, task: Resource,
                  expected_version: int) -> Resource:
    """Store the next version of a Task; PreconditionFailed if it moved on meanwhile."""
    stored = update(conn, task, task_index(task), expected_version, sort_date(task))
    if context.sync_enabled:
        outbox.enqueue(conn, [stored], time.time())
    return stored


# The use cases: what a page, the API and the CLI do with Tasks (CONTRACT of issue 14).

def _instant(when: str | datetime) -> str:
    """FHIR instant text of `when` (a timezone-aware datetime, or text kept as written)."""
    if isinstance(when, str):
        return when
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _patient_ref(patient: str) -> str:
    """`Patient/<id>` for a patient id (a relative reference is kept)."""
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def _reference(ref: str | Resource) -> Resource:
    return {"reference": ref} if isinstance(ref, str) else dict(ref)


def _lock(conn: Connection, task_id: str) -> Resource:
    """The current Task, read after taking its lock: every status change of one Task waits
    for the one before it, so two completions cannot both see it open."""
    serialize(conn, f"Task/{task_id}")
    task = read(conn, "Task", task_id)
    if task is None:
        raise NotFound("no such Task")
    return task


def _next(conn: Connection, context: Context, task: Resource, changed: Resource) -> Resource:
    try:
        return store_version(conn, context, changed, int(task["meta"]["versionId"]))
    except PreconditionFailed:  # a writer that did not serialize: answer as a retry would be
        raise Conflict("the Task changed meanwhile; reload it") from None


def open_tasks(conn: Connection, patient: str, owner: str | None = None) -> list[Resource]:
    """The open Tasks of a patient (an id or `Patient/<id>`), the earliest due first (no due
    date last); `owner` (a reference, e.g. `Patient/<id>`) keeps only the Tasks it owns."""
    criteria = [Criterion("patient", "eq", (_patient_ref(patient),)),
                Criterion("status:code", "eq", tuple(sorted(task_shape.OPEN)))]
    if owner is not None:
        criteria.append(Criterion("owner", "eq", (owner,)))
    found = search(conn, "Task", criteria)
    return sorted(found, key=lambda t: (task_shape.due(t) is None, task_shape.due(t) or "",
                                        t["id"]))


def tasks_of(conn: Connection, patient: str) -> list[Resource]:
    """Every Task of a patient (an id or `Patient/<id>`), the newest (authoredOn) first."""
    found = search(conn, "Task", [Criterion("patient", "eq", (_patient_ref(patient),))])
    return sorted(found, key=lambda t: (date_key(t.get("authoredOn")) or "",
                                        t["meta"]["lastUpdated"], t["id"]), reverse=True)


def window_end(start: str, days: int) -> str:
    """`start` (a FHIR date or dateTime, also `2026` or `2026-01`) plus `days` calendar days: a
    date for a date, else a dateTime in the start's offset."""
    moment = isoparse(start)
    end = moment + relativedelta(days=days)
    if len(start) <= 10:
        return end.date().isoformat()
    # The start's own format (now_instant writes milliseconds), so a period reads as one.
    text = end.isoformat(timespec="milliseconds" if "." in start else "seconds")
    return text.replace("+00:00", "Z") if start.endswith("Z") else text


def assign(conn: Connection, context: Context, questionnaire: str | Resource, patient: str,
           requester: str | Resource, period_start: str | None = None,
           period_end: str | None = None) -> Resource:
    """A one-off Task asking for the form `questionnaire` (a canonical the catalogue resolves,
    or the Questionnaire) about `patient` (id or `Patient/<id>`), requested by `requester` (a
    reference); owned by the patient for a self-report form, else by the requester. Without a
    start it is available now; without an end it is due MIT_FHIR_TASK_WINDOW_DAYS later."""
    form = questionnaire if isinstance(questionnaire, dict) else \
        context.catalogue.resolve(questionnaire)
    if form is None or not form.get("url"):
        raise Unprocessable("unknown Questionnaire", [Issue(
            "the questionnaire is not a form this service serves", code="not-found",
            expression=("Task.input",))])
    canonical = vocabulary.canonical(form)
    start = period_start or now_instant()
    end = period_end or window_end(start, int(context.settings.get("TASK_WINDOW_DAYS", 14)))
    if (date_key(start) or "") > (date_key(end) or ""):
        raise Unprocessable("the period ends before it starts", [Issue(
            "restriction.period.start is after its end", code="invariant",
            expression=("Task.restriction.period",))])
    who = _reference(requester)
    pid = _patient_ref(patient).removeprefix("Patient/")
    owner = None if task_shape.is_self_report(form) else who
    tid = new_id()
    task = task_shape.questionnaire_task(canonical, pid, who, now_instant(), start, end,
                                         tid=tid, owner=owner)
    return store_new(conn, context, task)


def cancel(conn: Connection, context: Context, task_id: str, when: str | datetime,
           reason: str) -> Resource:
    """Cancel an open Task, `reason` as its statusReason.text (409 when it is not open)."""
    task = _lock(conn, task_id)
    if not task_shape.is_open(task):
        raise Conflict(f"the Task is {task.get('status')}, no longer open")
    return _next(conn, context, task,
                 task_shape.with_status(task, "cancelled", _instant(when), reason))


def start(conn: Connection, context: Context, task_id: str, when: str | datetime) -> Resource:
    """A first draft was saved: the Task is in progress (requested, received, accepted or
    ready before; unchanged when already in progress or on hold; 409 when not open)."""
    task = _lock(conn, task_id)
    if not task_shape.is_open(task):
        raise Conflict(f"the Task is {task.get('status')}, no longer open")
    if task.get("status") in ("in-progress", "on-hold"):
        return task
    return _next(conn, context, task, task_shape.with_status(task, "in-progress", _instant(when)))


def _form_url(context: Context, canonical: object) -> str | None:
    """The URL of the form a canonical names (resolved through the catalogue when it can be,
    so `Questionnaire/<id>` and `url|version` name the same form), else its URL part."""
    if not isinstance(canonical, str) or not canonical:
        return None
    form = context.catalogue.resolve(canonical)
    return str(form["url"]) if form is not None and form.get("url") else \
        canonical.partition("|")[0]


def _mismatch(message: str, expression: str) -> Unprocessable:
    return Unprocessable(message, [Issue(message, code="business-rule",
                                         expression=(expression,))])


def complete_with(conn: Connection, context: Context, task_id: str, response: Resource,
                  when: str | datetime) -> Resource:
    """The Task completed by `response` (a stored, completed QuestionnaireResponse), in the
    caller's transaction (submissions.submit_once's on_stored). 409 when the Task is no
    longer open (a second completion too); 422 when it is not this patient's Task, or for
    another form, or the response is not completed. A Task of another patient is answered as
    one that does not exist: the caller learns nothing about it."""
    serialize(conn, f"Task/{task_id}")
    task = read(conn, "Task", task_id)
    patient = resource_patient(response)
    if task is None or patient is None or resource_patient(task) != patient:
        raise _mismatch("no such Task for the response's patient", "Task.for")
    if response.get("status") not in ("completed", "amended"):
        raise _mismatch("only a completed response completes a Task",
                        "QuestionnaireResponse.status")
    if _form_url(context, response.get("questionnaire")) != \
            _form_url(context, task_shape.questionnaire_of(task)):
        raise _mismatch("the response answers another form than the Task asks for",
                        "QuestionnaireResponse.questionnaire")
    if not task_shape.is_open(task):
        raise Conflict(f"the Task is {task.get('status')}, no longer open")
    if _before_the_task(response, task):
        raise _mismatch("the response was stored before the Task asked for it",
                        "QuestionnaireResponse.meta.lastUpdated")
    reference = f"QuestionnaireResponse/{response['id']}"
    serialize(conn, f"{reference}/completes")  # two Tasks racing for one response: one wins
    if _completed_by(conn, patient, reference):
        raise Conflict("the response already completed another Task")
    done = task_shape.completed_by(task, reference, _instant(when))
    return _next(conn, context, task, done)


def _before_the_task(response: Resource, task: Resource) -> bool:
    """Whether the response was stored (the server's meta.lastUpdated, which no client writes)
    before the Task was authored (or, without authoredOn, before its period starts): a
    response that existed before the request answers another one. The client's `authored` is
    not the test: a paper form typed in later keeps the day it was filled."""
    asked = _moment(task.get("authoredOn")) or _moment(task_shape.period(task)[0])
    stored = _moment((response.get("meta") or {}).get("lastUpdated"))
    try:
        return asked is not None and stored is not None and stored < asked
    except OverflowError:  # offsets at the edge of year 1: not a moment to compare
        return False


def _moment(text: object) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime at full precision (UTC when no
    offset), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = isoparse(text)
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _completed_by(conn: Connection, patient: str, reference: str) -> bool:
    """Whether a completed Task of the patient already names `reference` as its output."""
    done = search(conn, "Task", [Criterion("patient", "eq", (f"Patient/{patient}",)),
                                 Criterion("status:code", "eq", ("completed",))])
    return any(task_shape.response_of(t) == reference for t in done)


def due_tasks(conn: Connection, at: datetime, overdue: bool = False,
              patient_performed: bool = False) -> list[Resource]:
    """The open Tasks of every patient available at `at` (their period has started), the
    earliest due first; `overdue`: only those whose due date (period end) `at` has passed;
    `patient_performed`: only those the patient fills (performerType Patient, or for a Task
    stored without it, owned by the patient), the ones a reminder may go to."""
    instant = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    criteria = [Criterion("status:code", "eq", tuple(sorted(task_shape.OPEN))),
                Criterion("period:start", "le", (instant,))]
    if overdue:
        criteria.append(Criterion("period:end", "lt", (instant,)))
    # Filtered on the Task itself, not on the `performer` index rows, so Tasks indexed before
    # those rows existed are judged by their owner too.
    found = [t for t in search(conn, "Task", criteria)
             if not patient_performed or task_shape.patient_performed(t)]
    return sorted(found, key=lambda t: (task_shape.due(t) is None, task_shape.due(t) or "",
                                        t["id"]))
