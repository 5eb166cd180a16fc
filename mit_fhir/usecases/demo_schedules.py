"""The demo patient's assessment schedules (demo.json `schedules`), stored with their Tasks.

A completed schedule (the treatment's) gets every occurrence's Task, each completed by the
demo response of that form on or after its day and before the next occurrence, so the demo's
Tasks and responses agree; a Task carries the data-source label of its response. An active
schedule (the follow-up) is stored and run as the worker would, as of the load: its latest
occurrence becomes an open Task, labelled as the schedule is. Each schedule and its Tasks are
one transaction under the schedule's business key, so loading again adds nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection

from mit_fhir.errors import Unprocessable
from mit_fhir.fhir import task as tasks
from mit_fhir.fhir.extract import CS_DATA_SOURCE
from mit_fhir.fhir.index import plan_index
from mit_fhir.fhir.schedule import Activity, activities, business_key, schedule_plan
from mit_fhir.fhir.search import criteria
from mit_fhir.store.repository import insert, new_id, read_by_key, search, serialize
from mit_fhir.sync import outbox
from mit_fhir.usecases import schedules
from mit_fhir.usecases.care_plans import with_identifier
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.demo_data import DemoError, source_tag
from mit_fhir.usecases.tasks import store_new

Resource = dict[str, Any]


def schedule_key(data: Resource, sched: Resource) -> str:
    return f"demo/{data['patient']['id']}/schedule/{sched['key']}"


def _activities(context: Context, sched: Resource, now: datetime) -> list[Activity]:
    default = now.date() - timedelta(days=sched.get("startDaysBeforeLoad", 0))
    found = []
    for form in sched["activities"]:
        q = context.catalogue.get(form["questionnaire"])
        if q is None:
            raise DemoError(f"no Questionnaire {form['questionnaire']} in the catalogue")
        start: date = form.get("start") or default
        found.append(Activity(f"{q['url']}|{q['version']}", form["every"], form["unit"], start,
                              form.get("end"), form.get("count")))
    return found


def _plan(context: Context, data: Resource, sched: Resource, now: datetime) -> Resource:
    forms = _activities(context, sched, now)
    first = min(a.start for a in forms)
    created = sched.get("created") or schedules.instant(datetime.combine(first, time(9), UTC))
    plan = schedule_plan(data["patient"]["id"], dict(data["clinician"]), forms, created,
                         sched["title"])
    plan["meta"] = {"tag": [source_tag(sched["source"])]}
    if sched.get("note"):
        plan["note"] = [{"text": sched["note"]}]
    try:
        schedules.check(context, plan)
    except Unprocessable as err:
        raise DemoError(f"schedule {sched['key']}: {err.issues[0].diagnostics}") from None
    return plan


def check_schedules(context: Context, data: Resource, now: datetime) -> None:
    """Every schedule builds and validates (DemoError otherwise), before anything is stored."""
    for sched in data["schedules"]:
        _plan(context, data, sched, now)


def load_schedule(context: Context, data: Resource, sched: Resource, now: datetime) -> bool:
    """Store one schedule and its Tasks unless stored before; whether it was stored now."""
    key = schedule_key(data, sched)
    with context.store.transaction() as conn:
        serialize(conn, key)
        if read_by_key(conn, "CarePlan", key) is not None:
            return False
        plan = with_identifier({**_plan(context, data, sched, now), "id": new_id()})
        plan["status"] = sched["status"]
        insert(conn, plan, plan_index(plan), business_key=key)
        if context.sync_enabled:
            outbox.enqueue(conn, [plan], now.timestamp())
        if plan["status"] == "active":
            schedules.run_plan(conn, context, plan, now)
        else:
            _completed_tasks(conn, context, data, plan)
    return True


def _responses(conn: Connection, patient: str) -> dict[str, list[tuple[datetime, Resource]]]:
    """The patient's completed responses by Questionnaire URL, in the order authored."""
    by_form: dict[str, list[tuple[datetime, Resource]]] = {}
    found = search(conn, "QuestionnaireResponse",
                   criteria("QuestionnaireResponse", [("patient", f"Patient/{patient}")]))
    for qr in found:
        when = datetime.fromisoformat(qr["authored"]).astimezone(UTC)
        by_form.setdefault(qr["questionnaire"].partition("|")[0], []).append((when, qr))
    return {url: sorted(items, key=lambda i: i[0]) for url, items in by_form.items()}


def _completed_tasks(conn: Connection, context: Context, data: Resource,
                     plan: Resource) -> None:
    responses = _responses(conn, data["patient"]["id"])
    for index, activity, _ in activities(plan):
        questionnaire = context.catalogue.resolve(activity.questionnaire)
        assert questionnaire is not None  # _plan() checked the catalogue
        k = 0
        while (start := activity.occurrence(k)) is not None:
            until = activity.occurrence(k + 1)
            match = next((qr for when, qr in responses.get(activity.url, ())
                          if start <= when and (until is None or when < until)), None)
            if match is None:
                raise DemoError(f"no {questionnaire['id']} response for the occurrence on "
                                f"{start.date().isoformat()}")
            made = schedules.occurrence_task(context, plan, activity, k, questionnaire, start)
            done = tasks.completed_by(made, f"QuestionnaireResponse/{match['id']}",
                                      match["authored"])
            done["meta"]["tag"] = [t for t in match["meta"].get("tag", ())
                                   if t.get("system") == CS_DATA_SOURCE]
            store_new(conn, context, done, business_key(plan["id"], index, k))
            k += 1

