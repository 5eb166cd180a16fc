"""Schedules (mit_fhir/usecases/schedules.py): created and validated, run into Tasks once,
superseded,
ended, revoked; two runs at once still create each Task once."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from mit_fhir.app import create_app
from mit_fhir.cli import main
from mit_fhir.errors import Conflict, NotFound, Unprocessable
from mit_fhir.fhir import task as tasks
from mit_fhir.fhir.schedule import Activity
from mit_fhir.fhir.search import criteria
from mit_fhir.store.repository import search
from mit_fhir.usecases import schedules
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.tasks import store_version
from tests.conftest import ROOT, service_env, service_log, stored_counts

DERS = "https://mit-fhir.org/fhir/Questionnaire/ders"
SCL = "https://mit-fhir.org/fhir/Questionnaire/scl-90-r"
BPD = "https://mit-fhir.org/fhir/Questionnaire/bpd-criteria"
DR = {"reference": "Practitioner/dr"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def context(app: Flask) -> Context:
    return app.extensions["mit_fhir"]


def _create(context: Context, *acts: Activity, patient: str = "p1",
            now: str = "2026-01-01T09:00:00") -> dict:
    with context.store.transaction() as conn:
        return schedules.create(conn, context, patient, DR, list(acts), now=_at(now))


def _tasks(context: Context, patient: str = "p1") -> list[dict]:
    with context.store.transaction() as conn:
        found = search(conn, "Task", criteria("Task", [("patient", f"Patient/{patient}")]))
    return sorted(found, key=lambda t: (tasks.questionnaire_url(t), tasks.period(t)[0]))


def test_a_schedule_is_an_active_careplan_and_its_first_occurrence_a_task(
        context: Context) -> None:
    plan = _create(context, Activity(DERS + "|1.0.0", 1, "mo", date(2026, 1, 1)),
                   Activity(BPD, 6, "mo", date(2026, 1, 1)))
    assert plan["status"] == "active" and plan["intent"] == "plan"
    assert plan["subject"] == {"reference": "Patient/p1"} and plan["author"] == DR
    bpd, ders = _tasks(context)
    assert tasks.questionnaire_of(ders) == DERS + "|1.0.0"
    assert tasks.period(ders) == ("2026-01-01", "2026-01-15")  # the 14-day default window
    assert ders["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
    assert ders["owner"] == {"reference": "Patient/p1"}  # DERS is self-report
    assert bpd["owner"] == DR and bpd["requester"] == DR  # BPD criteria: clinician-rated
    with context.store.transaction() as conn:
        assert [p["id"] for p in schedules.schedules_of(conn, "p1")] == [plan["id"]]
        assert schedules.schedules_of(conn, "p2") == []


@pytest.mark.parametrize(("acts", "where"), [
    ([Activity("https://example.org/Questionnaire/unknown", 1, "wk", date(2026, 1, 1))],
     "CarePlan.activity[0].detail.instantiatesCanonical"),
    ([], "CarePlan.activity"),
])
def test_a_schedule_that_cannot_be_kept_is_refused_and_nothing_stored(
        app: Flask, context: Context, acts: list, where: str) -> None:
    before = stored_counts(app)
    with pytest.raises(Unprocessable) as err:
        _create(context, *acts)
    assert err.value.issues[0].expression == (where,)
    assert stored_counts(app) == before


def test_a_run_creates_each_occurrence_once_and_supersedes_the_missed_one(
        context: Context) -> None:
    plan = _create(context, Activity(DERS, 2, "wk", date(2026, 1, 5)),
                   now="2026-01-01T00:00:00")
    assert _tasks(context) == []  # not due yet
    assert schedules.run(context, _at("2026-01-05T06:00:00")) == schedules.RunResult(1, 0)
    assert schedules.run(context, _at("2026-01-06T06:00:00")) == schedules.RunResult(0, 0)
    first, = _tasks(context)
    assert tasks.period(first) == ("2026-01-05", "2026-01-19") and tasks.is_open(first)
    assert schedules.run(context, _at("2026-01-19T00:00:00")) == schedules.RunResult(1, 1)
    missed, second = _tasks(context)
    assert missed["id"] == first["id"] and missed["status"] == "cancelled"
    assert missed["statusReason"]["text"] == schedules.MISSED
    assert tasks.period(second) == ("2026-01-19", "2026-02-02") and tasks.is_open(second)
    assert plan["id"] in second["basedOn"][0]["reference"]


def test_a_completed_occurrence_is_not_superseded(context: Context) -> None:
    _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)), now="2026-01-05T08:00:00")
    first, = _tasks(context)
    with context.store.transaction() as conn:
        store_version(conn, context, tasks.completed_by(first, "QuestionnaireResponse/r1",
                                                        "2026-01-06T10:00:00Z"), 1)
    assert schedules.run(context, _at("2026-01-12T08:00:00")) == schedules.RunResult(1, 0)
    assert [t["status"] for t in _tasks(context)] == ["completed", "requested"]


def test_a_schedule_switched_on_late_asks_for_the_latest_occurrence_only(
        context: Context) -> None:
    _create(context, Activity(SCL, 1, "wk", date(2025, 6, 2)), now="2026-01-01T09:00:00")
    only, = _tasks(context)
    assert tasks.period(only)[0] == "2025-12-29"  # the last Monday before now
    assert schedules.run(context, _at("2026-01-01T10:00:00")) == schedules.RunResult(0, 0)


def test_an_ended_schedule_completes_and_creates_no_more(context: Context) -> None:
    plan = _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5), count=2),
                   now="2026-01-05T08:00:00")
    assert schedules.run(context, _at("2026-01-12T08:00:00")) == schedules.RunResult(1, 1, 1)
    assert schedules.run(context, _at("2026-03-01T08:00:00")) == schedules.RunResult()
    assert len(_tasks(context)) == 2
    with context.store.transaction() as conn:
        assert schedules.schedules_of(conn, "p1")[0]["status"] == "completed"
        with pytest.raises(Conflict):
            schedules.cancel(conn, context, plan["id"], "2026-03-01T08:00:00Z")


def test_a_revoked_schedule_creates_none_and_withdraws_its_unstarted_task(
        context: Context) -> None:
    plan = _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)),
                   Activity(SCL, 1, "wk", date(2026, 1, 5)), now="2026-01-05T08:00:00")
    ders, scl = _tasks(context)
    with context.store.transaction() as conn:
        store_version(conn, context, tasks.with_status(scl, "in-progress",
                                                       "2026-01-05T09:00:00Z"), 1)
        revoked = schedules.cancel(conn, context, plan["id"], _at("2026-01-06T08:00:00"))
        again = schedules.cancel(conn, context, plan["id"], _at("2026-01-07T08:00:00"))
    assert revoked["status"] == "revoked" and again["meta"] == revoked["meta"]
    assert schedules.run(context, _at("2026-02-01T08:00:00")) == schedules.RunResult()
    ders, scl = _tasks(context)
    assert ders["status"] == "cancelled" and ders["statusReason"]["text"] == schedules.WITHDRAWN
    assert scl["status"] == "in-progress"  # a form begun can still be finished
    with context.store.transaction() as conn:
        with pytest.raises(NotFound):
            schedules.cancel(conn, context, "no-such-plan", "2026-01-07T08:00:00Z")


def test_schedules_of_lists_the_active_first(context: Context) -> None:
    old = _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)), now="2026-01-01T08:00:00")
    with context.store.transaction() as conn:
        schedules.cancel(conn, context, old["id"], "2026-01-02T08:00:00Z")
    new = _create(context, Activity(DERS, 2, "wk", date(2026, 1, 5)), now="2026-01-03T08:00:00")
    with context.store.transaction() as conn:
        assert [p["id"] for p in schedules.schedules_of(conn, "Patient/p1")] == [new["id"],
                                                                                 old["id"]]


def test_two_runs_at_once_in_threads_create_each_task_once(context: Context) -> None:
    for patient in ("p1", "p2", "p3"):
        _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)), patient=patient,
                now="2026-01-01T08:00:00")
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(schedules.run(context, _at("2026-01-05T08:00:00")))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.created for r in results) == 3
    assert [len(_tasks(context, p)) for p in ("p1", "p2", "p3")] == [1, 1, 1]


def _run_in_process(database_url: str, start: Any, out: Any) -> None:
    app = create_app({"DATABASE_URL": database_url})
    start.wait(30)
    out.put(schedules.run(app.extensions["mit_fhir"], _at("2026-01-05T08:00:00")).created)


def test_two_runs_at_once_in_processes_create_each_task_once(
        database_url: str, context: Context) -> None:
    for patient in ("p1", "p2", "p3", "p4"):
        _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)),
                Activity(SCL, 1, "wk", date(2026, 1, 5)), patient=patient,
                now="2026-01-01T08:00:00")
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Event(), mp.Queue()
    children = [mp.Process(target=_run_in_process, args=(database_url, start, out))
                for _ in range(2)]
    for child in children:
        child.start()
    start.set()
    created = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    assert sum(created) == 8
    assert [len(_tasks(context, p)) for p in ("p1", "p2", "p3", "p4")] == [2, 2, 2, 2]


def test_tasks_schedule_runs_once_as_at_a_moment_and_prints_counts_only(
        database_url: str, context: Context) -> None:
    _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)), patient="p-secret",
            now="2026-01-05T08:00:00")
    env = {"MIT_FHIR_DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["tasks", "schedule", "--at", "2026-01-12T08:00:00Z"],
                                env=env)
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["created:", "1", "superseded:", "1", "completed:", "0"]
    again = CliRunner().invoke(main, ["tasks", "schedule", "--at", "2026-01-12"], env=env)
    assert again.output.split()[:4] == ["created:", "0", "superseded:", "0"]
    assert "p-secret" not in result.output + again.output
    refused = CliRunner().invoke(main, ["tasks", "schedule", "--at", "next week"], env=env)
    assert refused.exit_code != 0 and "--at" in refused.output


def test_tasks_schedule_dry_run_counts_and_writes_nothing(
        database_url: str, app: Flask, context: Context,
        caplog: pytest.LogCaptureFixture) -> None:
    """Newcomer findings 2 and 14: --dry-run counts what a run would do and stores nothing;
    a real run logs one line of counts and adds them to the Prometheus counter."""
    from mit_fhir.metrics import SCHEDULE_TASKS

    _create(context, Activity(DERS, 1, "wk", date(2026, 1, 5)), patient="p-secret",
            now="2026-01-05T08:00:00")
    env = {"MIT_FHIR_DATABASE_URL": database_url}
    before = stored_counts(app)
    dry = CliRunner().invoke(main, ["tasks", "schedule", "--dry-run", "--at", "2026-01-12"],
                             env=env)
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[0] == "dry run: nothing was written"
    assert dry.output.split()[-6:] == ["created:", "1", "superseded:", "1", "completed:", "0"]
    assert stored_counts(app) == before
    assert [t["status"] for t in _tasks(context, "p-secret")] == ["requested"]

    def counted(outcome: str) -> float:
        return SCHEDULE_TASKS.labels(outcome)._value.get()

    created, superseded = counted("created"), counted("superseded")
    caplog.set_level("INFO", "mit_fhir.usecases.schedules")
    caplog.clear()
    assert schedules.run(context, _at("2026-01-12T08:00:00")) == schedules.RunResult(1, 1, 0)
    assert (counted("created"), counted("superseded")) == (created + 1, superseded + 1)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "mit_fhir.usecases.schedules"]
    assert line == "schedules run: 1 schedule(s), 1 created, 1 superseded, 0 completed"
    assert sorted(t["status"] for t in _tasks(context, "p-secret")) == ["cancelled", "requested"]


def test_a_schedule_stores_each_form_as_the_tasks_canonical(context: Context) -> None:
    """Newcomer finding 16: instantiatesCanonical carries |version, as the Task's input."""
    plan = _create(context, Activity(DERS, 1, "mo", date(2026, 1, 1)))
    (task,) = _tasks(context)
    canonical = plan["activity"][0]["detail"]["instantiatesCanonical"]
    assert canonical == [tasks.questionnaire_of(task)] and "|" in canonical[0]
    assert canonical[0].partition("|")[0] == DERS


def test_the_worker_runs_the_schedules_without_an_ehr(database_url: str,
                                                      context: Context) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=3)
    _create(context, Activity(DERS, 1, "d", start.date()), now=start.isoformat())
    env = service_env(DATABASE_URL=database_url, SCHEDULE_INTERVAL_SECONDS="1")
    with service_log("schedule-worker").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mit_fhir", "worker"], env=env, cwd=ROOT,
                                stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(_tasks(context)) < 2:
                time.sleep(0.5)
            assert proc.poll() is None  # it keeps running: no EHR is no reason to stop
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    missed, latest = _tasks(context)
    assert missed["status"] == "cancelled"
    assert tasks.period(latest)[0] == today.date().isoformat() and tasks.is_open(latest)
    assert proc.returncode == 0
