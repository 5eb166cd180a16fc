"""Assessment schedules (fhir/schedule.py): created, cancelled, listed, and run into Tasks.

A run turns each active schedule's latest occurrence at or before now into one Task (business
key `schedule/<careplan>/<activity>/<k>`, so a run twice, or two at once, create it once),
cancels as missed an earlier occurrence still open, and completes a schedule that has no
occurrence left. Only the latest occurrence is created: a schedule started in the past, or a
worker that was down for months, asks the patient for one form, not for every one missed.
Authorisation is the caller's (the API's guard, the clinician's session).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from mit_fhir.care_plans import with_identifier
from mit_fhir.context import Context
from mit_fhir.errors import Conflict, Issue, NotFound, Unprocessable
from mit_fhir.fhir import schedule, task
from mit_fhir.fhir.index import plan_index
from mit_fhir.fhir.references import patient_id
from mit_fhir.fhir.schedule import Activity, ScheduleError
from mit_fhir.fhir.search import criteria
from mit_fhir.store.repository import (
    insert,
    new_id,
    read,
    read_by_key,
    read_by_key_prefix,
    search,
    serialize,
    update,
)
from mit_fhir.sync import outbox
from mit_fhir.tasks import store_new, store_version

Resource = dict[str, Any]
log = logging.getLogger("mit_fhir.schedules")
MISSED = "missed: the next occurrence of the schedule is due"
WITHDRAWN = "the schedule was cancelled"
CATEGORY = f"{schedule.CATEGORY_SYSTEM}|{schedule.CATEGORY_CODE}"
DEFAULT_WINDOW_DAYS = 14
# Not started yet: cancelled with their schedule. A form the patient has begun (in-progress)
# stays open so the draft can still be finished.
NOT_STARTED = frozenset({"requested", "received", "accepted", "ready"})


@dataclass(frozen=True)
class RunResult:
    """What one run did: Tasks created, open Tasks superseded, schedules completed."""

    created: int = 0
    superseded: int = 0
    completed: int = 0

    def __add__(self, other: RunResult) -> RunResult:
        return RunResult(self.created + other.created, self.superseded + other.superseded,
                         self.completed + other.completed)


def instant(moment: datetime) -> str:
    """FHIR instant text (UTC, seconds) of an aware or UTC-naive datetime."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


def _store(conn: Connection, context: Context, plan: Resource,
           expected_version: int | None = None) -> Resource:
    if expected_version is None:
        stored = insert(conn, plan, plan_index(plan))
    else:
        stored = update(conn, plan, plan_index(plan), expected_version)
    if context.sync_enabled:
        outbox.enqueue(conn, [stored], time.time())
    return stored


def check(context: Context, plan: Resource) -> list[Activity]:
    """The activities of a schedule CarePlan, each a form of the catalogue; 422 otherwise."""
    try:
        activities = schedule.validate(plan)
    except ScheduleError as err:
        raise Unprocessable("the schedule cannot be accepted",
                            [Issue(str(err), expression=(err.where,))]) from None
    issues = [Issue("the form is not in the catalogue", code="not-found",
                    expression=(f"CarePlan.activity[{i}].detail.instantiatesCanonical",))
              for i, a in enumerate(activities)
              if context.catalogue.resolve(a.questionnaire) is None]
    author = (plan.get("author") or {}).get("reference")
    if not isinstance(author, str) or not author.strip():
        issues.append(Issue("a schedule's author (who asks for the forms) is required",
                            code="required", expression=("CarePlan.author",)))
    if issues:
        raise Unprocessable("the schedule cannot be accepted", issues)
    return activities


def create(conn: Connection, context: Context, patient: str, author: Resource,
           activities: list[Activity], now: datetime | None = None) -> Resource:
    """Store an active schedule for `patient` (an id) and create the Tasks already due."""
    pid = patient_id(patient) if "/" in patient else patient
    if not pid:
        raise Unprocessable("a schedule needs its patient",
                            [Issue("must reference the Patient", code="required",
                                   expression=("CarePlan.subject",))])
    moment = now or datetime.now(UTC)
    try:
        plan = schedule.schedule_plan(pid, author, list(activities), instant(moment))
    except ScheduleError as err:
        raise Unprocessable("the schedule cannot be accepted",
                            [Issue(str(err), expression=(err.where,))]) from None
    return store_schedule(conn, context, plan, moment)


def store_schedule(conn: Connection, context: Context, plan: Resource,
                   now: datetime | None = None) -> Resource:
    """Validate and store a schedule CarePlan (a new id, our identifier); its due Tasks too."""
    check(context, plan)
    plan = with_identifier({**{k: v for k, v in plan.items() if k != "meta"}, "id": new_id()})
    stored = _store(conn, context, plan)
    if stored.get("status") != schedule.RUNNING:
        return stored
    _run_plan(conn, context, stored, now or datetime.now(UTC))
    return _read_schedule(conn, stored["id"])  # completed already when nothing remains


def _read_schedule(conn: Connection, careplan_id: str) -> Resource:
    plan = read(conn, "CarePlan", careplan_id)
    if plan is None or not schedule.is_schedule(plan):
        raise NotFound("no such schedule")
    return plan


def cancel(conn: Connection, context: Context, careplan_id: str,
           when: str | datetime) -> Resource:
    """Revoke a schedule: it creates no more Tasks, and its Tasks not yet started are
    cancelled. Revoking a revoked schedule changes nothing; a completed one is a Conflict."""
    stamp = instant(when) if isinstance(when, datetime) else when
    serialize(conn, f"schedule/{careplan_id}")
    plan = _read_schedule(conn, careplan_id)
    if plan["status"] == "revoked":
        return plan
    if plan["status"] != schedule.RUNNING:
        raise Conflict(f"the schedule is {plan['status']}, not active")
    revoked = {**plan, "status": "revoked"}
    stored = _store(conn, context, revoked, int(plan["meta"]["versionId"]))
    for _, found in read_by_key_prefix(conn, "Task", f"schedule/{careplan_id}/"):
        if found.get("status") in NOT_STARTED:
            store_version(conn, context, task.with_status(found, "cancelled", stamp, WITHDRAWN),
                          int(found["meta"]["versionId"]))
    return stored


def schedules_of(conn: Connection, patient: str) -> list[Resource]:
    """A patient's schedules (an id or Patient/<id>): active first, then newest first."""
    pid = patient_id(patient) if "/" in patient else patient
    found = search(conn, "CarePlan", criteria("CarePlan", [("patient", f"Patient/{pid}"),
                                                           ("category", CATEGORY)]))
    found.sort(key=lambda p: str(p.get("created") or ""), reverse=True)
    return sorted(found, key=lambda p: p.get("status") != schedule.RUNNING)


def run(context: Context, now: datetime) -> RunResult:
    """Create the Tasks every active schedule has due at `now`; each schedule in its own
    transaction, serialised with any other run on the same schedule."""
    with context.store.transaction() as conn:
        ids = [p["id"] for p in search(conn, "CarePlan", criteria(
            "CarePlan", [("category", CATEGORY), ("status", schedule.RUNNING)]))]
    total = RunResult()
    for careplan_id in ids:
        try:
            with context.store.transaction() as conn:
                serialize(conn, f"schedule/{careplan_id}")
                plan = read(conn, "CarePlan", careplan_id)
                if plan is not None and plan.get("status") == schedule.RUNNING:
                    total += _run_plan(conn, context, plan, now)
        except Conflict:
            # Another run stored the same occurrence first (the unique business key): it is
            # created, once; this run's part for the schedule rolled back.
            log.info("a concurrent schedule run created the same Task; skipped")
        except ScheduleError:
            # A stored schedule that no longer reads (edited by hand in the database): the
            # others still run. Its id is not logged (patient data stays out of the logs).
            log.warning("a schedule could not be read and was skipped")
    return total


def _run_plan(conn: Connection, context: Context, plan: Resource, now: datetime) -> RunResult:
    created = superseded = 0
    for index, activity in schedule.running(plan):
        k = activity.latest(now)
        if k is None:
            continue
        key = schedule.business_key(plan["id"], index, k)
        if read_by_key(conn, "Task", key) is not None:
            continue
        questionnaire = context.catalogue.resolve(activity.questionnaire)
        if questionnaire is None:
            log.warning("a scheduled form is not in the catalogue; no Task created")
            continue
        superseded += _supersede(conn, context, plan["id"], index, k, now)
        store_new(conn, context, _occurrence_task(context, plan, activity, k, questionnaire,
                                                  now), key)
        created += 1
    completed = 0
    if schedule.ended(plan, now):
        _store(conn, context, {**plan, "status": "completed"}, int(plan["meta"]["versionId"]))
        completed = 1
    return RunResult(created, superseded, completed)


def _supersede(conn: Connection, context: Context, careplan_id: str, index: int, k: int,
               now: datetime) -> int:
    count = 0
    for key, found in read_by_key_prefix(conn, "Task", f"schedule/{careplan_id}/{index}/"):
        if int(key.rsplit("/", 1)[1]) < k and task.is_open(found):
            store_version(conn, context, task.with_status(found, "cancelled", instant(now),
                                                          MISSED),
                          int(found["meta"]["versionId"]))
            count += 1
    return count


def _occurrence_task(context: Context, plan: Resource, activity: Activity, k: int,
                     questionnaire: Resource, now: datetime) -> Resource:
    start = activity.occurrence(k)
    assert start is not None  # latest() returns an index inside the schedule
    window = int(context.settings.get("TASK_WINDOW_DAYS") or DEFAULT_WINDOW_DAYS)
    requester = {"reference": plan["author"]["reference"]}
    pid = str(patient_id(plan["subject"]["reference"]))
    owner = None if task.is_self_report(questionnaire) else requester
    return task.questionnaire_task(
        activity.questionnaire, pid, requester, instant(now),
        period_start=start.date().isoformat(),
        period_end=(start + timedelta(days=window)).date().isoformat(),
        based_on={"reference": f"CarePlan/{plan['id']}"}, tid=new_id(), owner=owner)
