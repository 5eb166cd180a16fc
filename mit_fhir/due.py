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

from mit_fhir.catalogue import Catalogue
from mit_fhir.fhir import task as fhir_task
from mit_fhir.fhir.duration import wording
from mit_fhir.fhir.extract import data_source_tags
from mit_fhir.fhir.search import date_key
from mit_fhir.store import repository
from mit_fhir.store.repository import Criterion
from mit_fhir.timeline import _label as form_label

Resource = dict[str, Any]
NextOccurrence = Callable[[Resource, str, datetime], "datetime | None"]
SCHEDULE_CATEGORY = "https://mit-fhir.org/fhir/CodeSystem/mit-care-plan|assessment-schedule"
# A response that counts as the form done (an amended one was completed first).
DONE = frozenset({"completed", "amended"})


def _instant(key: str) -> datetime:
    """A date_key (UTC, no offset) as an aware datetime."""
    return datetime.fromisoformat(key).replace(tzinfo=UTC)


def _key(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _scheduled_forms(careplan: Resource) -> list[str]:
    """The Questionnaire URLs (no |version) of a schedule's activities that still run."""
    urls = []
    for activity in careplan.get("activity") or ():
        detail = activity.get("detail") or {}
        if detail.get("status") == "cancelled":
            continue
        for canonical in detail.get("instantiatesCanonical") or ():
            urls.append(str(canonical).partition("|")[0])
    return urls


def _last_completion(responses: Iterable[Resource], url: str) -> Resource | None:
    done = [r for r in responses if r.get("status") in DONE and date_key(r.get("authored"))
            and str(r.get("questionnaire", "")).partition("|")[0] == url]
    if not done:
        return None
    latest = max(done, key=lambda r: (date_key(r["authored"]) or "", r.get("id", "")))
    return {"date": latest["authored"], "response": latest.get("id"),
            "synthetic": any(t.get("code") == "synthetic" for t in data_source_tags(latest))}


def _overdue(task: Resource, now: datetime) -> Resource:
    due = fhir_task.due(task) or ""
    late = now - _instant(due)
    return {"task": task.get("id"), "due": due, "days": late.days,
            "by": wording(_instant(due), now)}


def _row(questionnaire: Resource, tasks: list[Resource], schedules: list[Resource],
         responses: list[Resource], now: datetime, next_occurrence: NextOccurrence | None
         ) -> Resource:
    url = questionnaire["url"]
    open_tasks = sorted((t for t in tasks if fhir_task.is_open(t)),
                        key=lambda t: (fhir_task.due(t) or "9999", t.get("id", "")))
    overdue = [_overdue(t, now) for t in open_tasks if fhir_task.overdue(t, now)]
    due, due_from, owner = None, None, None
    if open_tasks:
        first = open_tasks[0]
        due, due_from = fhir_task.due(first), "task"
        ref = str((first.get("owner") or {}).get("reference", ""))
        owner = "patient" if ref.startswith("Patient/") else "clinician"
    elif next_occurrence is not None:
        upcoming = [when for plan in schedules if plan.get("status") == "active"
                    and url in _scheduled_forms(plan)
                    and (when := next_occurrence(plan, url, now)) is not None]
        if upcoming:
            due, due_from = _key(min(upcoming)), "schedule"
    return {
        "questionnaire": {"id": questionnaire["id"], "url": url,
                          "title": questionnaire.get("title") or questionnaire["id"]},
        "label": form_label(questionnaire, None),
        "selfReport": fhir_task.is_self_report(questionnaire),
        "due": due, "dueFrom": due_from, "owner": owner,
        "overdue": overdue,
        "last": _last_completion(responses, url),
    }


def summarise(catalogue: Catalogue, tasks: list[Resource], schedules: list[Resource],
              responses: list[Resource], now: datetime,
              next_occurrence: NextOccurrence | None = None) -> list[Resource]:
    """One row per form with a Task or a running schedule (see `_row`), the most overdue first,
    then by next due date; forms neither overdue nor due last. `now` is timezone-aware;
    `next_occurrence` is fhir/schedule.py's (None: schedules give no due date)."""
    by_url: dict[str, list[Resource]] = {}
    for task in tasks:
        if fhir_task.is_questionnaire_task(task) and (url := fhir_task.questionnaire_url(task)):
            by_url.setdefault(url, []).append(task)
    for plan in schedules:
        if plan.get("status") == "active":
            for url in _scheduled_forms(plan):
                by_url.setdefault(url, [])
    rows = []
    for url, form_tasks in by_url.items():
        questionnaire = catalogue.resolve(url)
        if questionnaire is not None:
            rows.append(_row(questionnaire, form_tasks, schedules, responses, now,
                             next_occurrence))
    return sorted(rows, key=lambda r: (-(r["overdue"][0]["days"] if r["overdue"] else -1),
                                       r["due"] or "9999", r["label"]))


def summary(conn: Connection, catalogue: Catalogue, patient: str,
            now: datetime | None = None) -> list[Resource]:
    """summarise() over the patient's (an id) stored Tasks, schedules and responses."""
    from mit_fhir.fhir.schedule import next_occurrence

    ref = (f"Patient/{patient}",)
    tasks = repository.search(conn, "Task", [Criterion("patient", "eq", ref)])
    schedules = repository.search(conn, "CarePlan", [
        Criterion("patient", "eq", ref), Criterion("category", "eq", (SCHEDULE_CATEGORY,))])
    responses = repository.search(conn, "QuestionnaireResponse",
                                  [Criterion("patient", "eq", ref)])
    return summarise(catalogue, tasks, schedules, responses, now or datetime.now(UTC),
                     next_occurrence)
