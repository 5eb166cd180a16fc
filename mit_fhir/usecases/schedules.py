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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from mit_fhir.errors import Conflict, Issue, NotFound, Unprocessable
from mit_fhir.fhir import schedule, task
from mit_fhir.fhir.extract import CS_DATA_SOURCE
from mit_fhir.fhir.index import plan_index
from mit_fhir.fhir.references import patient_id
from mit_fhir.fhir.schedule import Activity, ScheduleError
from mit_fhir.fhir.search import criteria
from mit_fhir.metrics import SCHEDULE_TASKS
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
from mit_fhir.usecases.care_plans import with_identifier
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.tasks import store_new, store_version

Resource = dict[str, Any]
log = logging.getLogger("mit_fhir.usecases.schedules")
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
    if plan.get("status") not in (schedule.RUNNING, "draft"):
        issues.append(Issue("a new schedule is active (or a draft)", code="value",
                            expression=("CarePlan.status",)))
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
    plan = with_identifier({**{k: v for k, v in _versioned(context, plan).items()
                               if k != "meta"}, "id": new_id()})
    stored = _store(conn, context, plan)
    if stored.get("status") != schedule.RUNNING:
        return stored
    run_plan(conn, context, stored, now or datetime.now(UTC))
    return _read_schedule(conn, stored["id"])  # completed already when nothing remains


def _versioned(context: Context, plan: Resource) -> Resource:
    """The schedule with each activity's form as `url|version` (the canonical its Tasks'
    `questionnaire` input carries), whichever spelling the catalogue resolved (check() did)."""
    out = {**plan, "activity": []}
    for element in plan["activity"]:
        detail = element["detail"]
        form = context.catalogue.resolve(detail["instantiatesCanonical"][0])
        canonical = f"{form['url']}|{form['version']}" if form and form.get("version") \
            else detail["instantiatesCanonical"][0]
        out["activity"].append({**element, "detail": {**detail,
                                                      "instantiatesCanonical": [canonical]}})
    return out


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
            _cancel_task(conn, context, found["id"], stamp, WITHDRAWN, NOT_STARTED)
    return stored


def finish(conn: Connection, context: Context, careplan_id: str) -> Resource:
    """Mark an active schedule completed (it creates no more Tasks; those open stay open, to
    be finished). Completing a completed schedule changes nothing; a revoked one: Conflict."""
    serialize(conn, f"schedule/{careplan_id}")
    plan = _read_schedule(conn, careplan_id)
    if plan["status"] == "completed":
        return plan
    if plan["status"] != schedule.RUNNING:
        raise Conflict(f"the schedule is {plan['status']}, not active")
    return _store(conn, context, {**plan, "status": "completed"}, int(plan["meta"]["versionId"]))


def _cancel_task(conn: Connection, context: Context, task_id: str, when: str, reason: str,
                 statuses: frozenset[str]) -> bool:
    """Cancel a Task still in `statuses`, under the Task's own lock (the one a completion
    takes: mit_fhir/usecases/tasks.py), so a form completed meanwhile stays completed."""
    serialize(conn, f"Task/{task_id}")
    current = read(conn, "Task", task_id)
    if current is None or current.get("status") not in statuses:
        return False
    store_version(conn, context, task.with_status(current, "cancelled", when, reason),
                  int(current["meta"]["versionId"]))
    return True


def schedules_of(conn: Connection, patient: str) -> list[Resource]:
    """A patient's schedules (an id or Patient/<id>): active first, then newest first."""
    pid = patient_id(patient) if "/" in patient else patient
    found = search(conn, "CarePlan", criteria("CarePlan", [("patient", f"Patient/{pid}"),
                                                           ("category", CATEGORY)]))
    found.sort(key=lambda p: str(p.get("created") or ""), reverse=True)
    return sorted(found, key=lambda p: p.get("status") != schedule.RUNNING)


class _RolledBack(Exception):
    """Ends a dry run's transaction (rolled back) with what it would have done."""

    def __init__(self, result: RunResult) -> None:
        super().__init__("dry run")
        self.result = result


def _run_one(context: Context, careplan_id: str, now: datetime, dry_run: bool) -> RunResult:
    try:
        with context.store.transaction() as conn:
            serialize(conn, f"schedule/{careplan_id}")
            plan = read(conn, "CarePlan", careplan_id)
            result = RunResult()
            if plan is not None and plan.get("status") == schedule.RUNNING:
                result = run_plan(conn, context, plan, now)
            if dry_run:
                raise _RolledBack(result)
            return result
    except _RolledBack as done:
        return done.result


def run(context: Context, now: datetime, dry_run: bool = False) -> RunResult:
    """Create the Tasks every active schedule has due at `now`; each schedule in its own
    transaction, serialised with any other run on the same schedule. `dry_run`: the same
    work, each transaction rolled back, so only the counts remain (nothing is written)."""
    with context.store.transaction() as conn:
        ids = [p["id"] for p in search(conn, "CarePlan", criteria(
            "CarePlan", [("category", CATEGORY), ("status", schedule.RUNNING)]))]
    total = RunResult()
    for careplan_id in ids:
        try:
            total += _run_one(context, careplan_id, now, dry_run)
        except Conflict:
            # Another run stored the same occurrence first (the unique business key): it is
            # created, once; this run's part for the schedule rolled back.
            log.info("a concurrent schedule run created the same Task; skipped")
        except ScheduleError:
            # A stored schedule that no longer reads (edited by hand in the database): the
            # others still run. Its id is not logged (patient data stays out of the logs).
            log.warning("a schedule could not be read and was skipped")
    if not dry_run:
        SCHEDULE_TASKS.labels("created").inc(total.created)
        SCHEDULE_TASKS.labels("superseded").inc(total.superseded)
    # One line per run, counts only (no patient, no schedule id).
    log.info("schedules run%s: %d schedule(s), %d created, %d superseded, %d completed",
             " (dry run, nothing written)" if dry_run else "", len(ids), total.created,
             total.superseded, total.completed)
    return total


def run_plan(conn: Connection, context: Context, plan: Resource, now: datetime) -> RunResult:
    """One schedule's part of a run (the caller holds its lock: `serialize`)."""
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
        store_new(conn, context, occurrence_task(context, plan, activity, k, questionnaire,
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
            count += _cancel_task(conn, context, found["id"], instant(now), MISSED, task.OPEN)
    return count


def occurrence_task(context: Context, plan: Resource, activity: Activity, k: int,
                    questionnaire: Resource, now: datetime) -> Resource:
    """The Task of occurrence k: its window from the occurrence, requested by the schedule's
    author, owned by the patient for a self-report form (else by the author)."""
    start = activity.occurrence(k)
    assert start is not None  # latest() returns an index inside the schedule
    window = int(context.settings.get("TASK_WINDOW_DAYS") or DEFAULT_WINDOW_DAYS)
    requester = {"reference": plan["author"]["reference"]}
    pid = str(patient_id(plan["subject"]["reference"]))
    owner = None if task.is_self_report(questionnaire) else requester
    made = task.questionnaire_task(
        activity.questionnaire, pid, requester, instant(now),
        period_start=start.date().isoformat(),
        period_end=(start + timedelta(days=window)).date().isoformat(),
        based_on={"reference": f"CarePlan/{plan['id']}"}, tid=new_id(), owner=owner)
    # A synthetic (demonstration) schedule's Tasks are labelled synthetic too.
    labels = [t for t in (plan.get("meta") or {}).get("tag", ())
              if t.get("system") == CS_DATA_SOURCE]
    if labels:
        made["meta"]["tag"] = [dict(t) for t in labels]
    return made


def run_every(context: Context, interval: float, stop: threading.Event,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    """Run the schedules now and then every `interval` seconds until `stop` is set (the
    worker's loop); a failed run is logged and the next one tried on time."""
    while not stop.is_set():
        try:
            run(context, clock())  # logs its one line of counts
        except Exception:  # a database outage must not end the loop
            log.exception("schedules run failed")
        stop.wait(interval)
