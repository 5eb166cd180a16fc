"""What is due for one patient: per form with Tasks or a schedule, when it is next due, what
is overdue and by how long, the last completion and who completes the open Task.

`summarise` is pure (Tasks, schedule CarePlans and responses in, JSON-ready rows out), so the
outcomes page (ui/data.py) and the CDS card (cds.py) word the same facts; `summary` reads them
from the store for one patient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from mit_fhir.fhir import schedule as fhir_schedule
from mit_fhir.fhir import task as fhir_task
from mit_fhir.fhir.alerts import EXT_CRITICAL_ANSWER
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.duration import wording
from mit_fhir.fhir.extract import data_source_tags
from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.search import date_key
from mit_fhir.store import repository
from mit_fhir.usecases import schedules as schedule_store
from mit_fhir.usecases import tasks as task_store
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.timeline import _label as form_label
from mit_fhir.vocabulary import extension

Resource = dict[str, Any]
NextOccurrence = Callable[[Resource, str, datetime], "datetime | None"]
# A response that counts as the form done (an amended one was completed first).
DONE = frozenset({"completed", "amended"})


def _instant(key: str) -> datetime | None:
    """A date_key (UTC, no offset) as an aware datetime; None for one no datetime holds (a
    stored Task dated in year 1, say: the due marks still answer)."""
    try:
        return datetime.fromisoformat(key).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _key(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _scheduled_forms(careplan: Resource) -> list[str]:
    """The Questionnaire URLs (no |version) of a schedule's activities that still create
    Tasks: none when it is not active, or is malformed (the outcomes page still loads)."""
    try:
        return [activity.url for _, activity in fhir_schedule.running(careplan)]
    except fhir_schedule.ScheduleError:
        return []


def _form_url(catalogue: Catalogue, canonical: object) -> str | None:
    """The catalogue URL of the form a canonical names (`url|version`, a bare url, or the
    relative `Questionnaire/<id>` simple clients send), so one form is one row."""
    found = catalogue.resolve(str(canonical)) if canonical else None
    return str(found["url"]) if found and found.get("url") else None


def _last_completion(catalogue: Catalogue, responses: Iterable[Resource],
                     url: str) -> Resource | None:
    done = [r for r in responses if r.get("status") in DONE and date_key(r.get("authored"))
            and _form_url(catalogue, r.get("questionnaire")) == url]
    if not done:
        return None
    latest = max(done, key=lambda r: (date_key(r["authored"]) or "", r.get("id", "")))
    return {"date": latest["authored"], "response": latest.get("id"),
            "synthetic": any(t.get("code") == "synthetic" for t in data_source_tags(latest))}


def _overdue(task: Resource, now: datetime) -> Resource | None:
    due = fhir_task.due(task) or ""
    if (when := _instant(due)) is None:
        return None
    try:
        late = now - when
    except OverflowError:
        return None
    return {"task": task.get("id"), "due": due, "days": late.days, "by": wording(when, now)}


def _is_overdue(task: Resource, now: datetime) -> bool:
    try:
        return fhir_task.overdue(task, now)
    except (ValueError, OverflowError):
        return False


def _row(catalogue: Catalogue, questionnaire: Resource, tasks: list[Resource],
         schedules: list[Resource], responses: list[Resource], now: datetime,
         next_occurrence: NextOccurrence) -> Resource:
    url = questionnaire["url"]
    open_tasks = sorted((t for t in tasks if fhir_task.is_open(t)),
                        key=lambda t: (fhir_task.due(t) or "9999", t.get("id", "")))
    overdue = [late for t in open_tasks if _is_overdue(t, now)
               and (late := _overdue(t, now)) is not None]
    due, due_from, owner = None, None, None
    if open_tasks:
        first = open_tasks[0]
        due, due_from = fhir_task.due(first), "task"
        ref = str((first.get("owner") or {}).get("reference", ""))
        owner = "patient" if ref.startswith("Patient/") else "clinician"
    else:
        upcoming = [when for plan in schedules if url in _scheduled_forms(plan)
                    and (when := next_occurrence(plan, url, now)) is not None]
        if upcoming:
            due, due_from = _key(min(upcoming)), "schedule"
    return {
        "questionnaire": {"id": questionnaire["id"], "url": url,
                          "title": questionnaire.get("title") or questionnaire["id"]},
        "label": form_label(questionnaire, None),
        "selfReport": fhir_task.is_self_report(questionnaire),
        # It marks answers critical (a suicide-risk item): the CDS card warns when it is late.
        "riskScreen": any(extension(item, EXT_CRITICAL_ANSWER)
                          for item in walk_items(questionnaire.get("item", []))),
        "due": due, "dueFrom": due_from, "owner": owner,
        "overdue": overdue,
        "last": _last_completion(catalogue, responses, url),
    }


def summarise(catalogue: Catalogue, tasks: list[Resource], schedules: list[Resource],
              responses: list[Resource], now: datetime,
              next_occurrence: NextOccurrence = fhir_schedule.next_occurrence
              ) -> list[Resource]:
    """One row per form with a Task or a running schedule (see `_row`), the most overdue first,
    then by next due date; forms neither overdue nor due last. `now` is timezone-aware;
    `schedules` are the patient's schedule CarePlans (fhir/schedule.py)."""
    by_url: dict[str, list[Resource]] = {}
    for task in tasks:
        url = _form_url(catalogue, fhir_task.questionnaire_of(task))
        if fhir_task.is_questionnaire_task(task) and url:
            by_url.setdefault(url, []).append(task)
    for plan in schedules:
        for scheduled in _scheduled_forms(plan):
            if url := _form_url(catalogue, scheduled):
                by_url.setdefault(url, [])
    rows = [_row(catalogue, questionnaire, form_tasks, schedules, responses, now,
                 next_occurrence)
            for url, form_tasks in by_url.items()
            if (questionnaire := catalogue.resolve(url)) is not None]
    return sorted(rows, key=lambda r: (-(r["overdue"][0]["days"] if r["overdue"] else -1),
                                       r["due"] or "9999", r["label"]))


def summary(conn: Connection, catalogue: Catalogue, patient: str,
            now: datetime | None = None) -> list[Resource]:
    """summarise() over the patient's (an id) stored Tasks, schedules and responses."""
    responses = repository.search(conn, "QuestionnaireResponse",
                                  [Criterion("patient", "eq", (f"Patient/{patient}",))])
    return summarise(catalogue, task_store.tasks_of(conn, patient),
                     schedule_store.schedules_of(conn, patient), responses,
                     now or datetime.now(UTC))
