"""What is due (mit_fhir/usecases/due.py) and its wording of durations (fhir/duration.py): the pure
summary over Tasks, schedules and responses as tables, then the same read from the store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from mit_fhir.fhir import schedule
from mit_fhir.fhir import task as fhir_task
from mit_fhir.fhir.duration import wording
from mit_fhir.usecases import due, tasks
from tests.conftest import sample

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DERS = "https://mit-fhir.org/fhir/Questionnaire/ders"
BPD = "https://mit-fhir.org/fhir/Questionnaire/bpd-criteria"
DR = {"reference": "Practitioner/dr"}


@pytest.mark.parametrize(("start", "end", "words"), [
    (datetime(2026, 3, 1, 12), datetime(2026, 3, 1, 18), "less than a day"),
    (datetime(2026, 3, 1, 12), datetime(2026, 3, 1, 11), "less than a day"),
    (datetime(2026, 3, 1), datetime(2026, 3, 2), "1 day"),
    (datetime(2026, 3, 1), datetime(2026, 3, 14, 23), "13 days"),
    (datetime(2026, 3, 1), datetime(2026, 3, 15), "2 weeks"),
    (datetime(2026, 3, 1), datetime(2026, 3, 21), "2 weeks"),  # 20 days: never rounded up
    (datetime(2026, 3, 1), datetime(2026, 3, 22), "3 weeks"),
    (datetime(2026, 3, 1), datetime(2026, 5, 31), "13 weeks"),  # 2 months 30 days
    (datetime(2026, 3, 1), datetime(2026, 6, 1), "3 months"),
    (datetime(2025, 11, 30), datetime(2026, 2, 27), "12 weeks"),  # 2 months 28 days
    (datetime(2024, 6, 1), datetime(2026, 3, 1), "21 months"),
])
def test_durations_read_in_days_then_weeks_then_months(start: datetime, end: datetime,
                                                       words: str) -> None:
    assert wording(start, end) == words


def _task(url: str, status: str = "requested", end: str | None = None, tid: str = "t1",
          owner: dict[str, str] | None = None) -> dict[str, Any]:
    task = fhir_task.questionnaire_task(f"{url}|1.0.0", "p1", DR, "2026-01-01T09:00:00Z",
                                        period_start="2026-01-01", period_end=end, tid=tid,
                                        owner=owner)
    return {**task, "status": status}


def _response(url: str, authored: str, status: str = "completed",
              synthetic: bool = False) -> dict[str, Any]:
    qr: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "id": authored[:10],
                          "questionnaire": f"{url}|1.0.0", "status": status,
                          "authored": authored, "subject": {"reference": "Patient/p1"}}
    if synthetic:
        qr["meta"] = {"tag": [{"system": "https://mit-fhir.org/fhir/CodeSystem/data-source",
                               "code": "synthetic"}]}
    return qr


def _schedule(url: str, status: str = "active") -> dict[str, Any]:
    """DERS every 3 months from 1 December 2025: next on 1 June 2026 after NOW."""
    plan = schedule.schedule_plan("p1", DR, [schedule.Activity(
        f"{url}|1.0.0", 3, "mo", date(2025, 12, 1))], "2025-11-20T10:00:00Z")
    return {**plan, "id": "cp1", "status": status}


def _one(app: Flask, *args: Any, **kw: Any) -> dict[str, Any]:
    (row,) = due.summarise(app.extensions["mit_fhir"].catalogue, *args, **kw)
    return row


def test_an_overdue_task_says_by_how_long_and_its_last_completion(app: Flask) -> None:
    row = _one(app, [_task(DERS, end="2026-02-07")],
               [], [_response(DERS, "2025-06-01T10:00:00Z", synthetic=True),
                    _response(DERS, "2025-09-01T10:00:00Z", status="in-progress")], NOW)
    assert row["label"] == "DERS" and row["selfReport"] and row["owner"] == "patient"
    # Due all of 7 February (the period's end day), overdue from the 8th.
    assert row["due"] == "2026-02-07T23:59:59" and row["dueFrom"] == "task"
    (late,) = row["overdue"]
    assert late == {"task": "t1", "due": "2026-02-07T23:59:59", "days": 21, "by": "3 weeks"}
    # A draft is no completion; a synthetic one stays labelled synthetic.
    assert row["last"] == {"date": "2025-06-01T10:00:00Z", "response": "2025-06-01",
                           "synthetic": True}


@pytest.mark.parametrize("status", ["completed", "cancelled", "failed", "entered-in-error"])
def test_a_task_no_longer_open_is_never_overdue(app: Flask, status: str) -> None:
    row = _one(app, [_task(DERS, status=status, end="2026-02-08")], [], [], NOW)
    assert row["overdue"] == [] and row["due"] is None and row["owner"] is None


def test_an_open_task_not_yet_due_is_the_next_due_date(app: Flask) -> None:
    row = _one(app, [_task(DERS, status="in-progress", end="2026-03-10")],
               [_schedule(DERS)], [], NOW)
    assert row["overdue"] == [] and row["due"] == "2026-03-10T23:59:59"
    assert row["dueFrom"] == "task" and row["last"] is None


def test_without_an_open_task_a_running_schedule_gives_the_next_due_date(app: Flask) -> None:
    row = _one(app, [_task(DERS, status="completed", end="2026-02-08")],
               [_schedule(DERS)], [], NOW)
    assert row["due"] == "2026-06-01T00:00:00" and row["dueFrom"] == "schedule"


def test_a_cancelled_schedule_gives_no_next_due_date(app: Flask) -> None:
    done = _task(DERS, status="completed", end="2026-02-08")
    row = _one(app, [done], [_schedule(DERS, "revoked")], [], NOW)
    assert row["due"] is None and row["dueFrom"] is None
    # Nor does it list a form that has no Task.
    assert due.summarise(app.extensions["mit_fhir"].catalogue, [],
                         [_schedule(DERS, "revoked")], [], NOW) == []


def test_a_clinician_rated_form_is_the_clinicians_and_overdue_comes_first(app: Flask) -> None:
    rows = due.summarise(app.extensions["mit_fhir"].catalogue, [
        _task(DERS, end="2026-02-24", tid="a"),
        _task(BPD, end="2025-11-30", tid="b", owner=DR),
        _task(DERS, end="2026-04-01", tid="c"),
    ], [], [], NOW)
    assert [r["questionnaire"]["id"] for r in rows] == ["bpd-criteria", "ders"]
    bpd, ders = rows
    assert bpd["owner"] == "clinician" and not bpd["selfReport"]
    assert bpd["overdue"][0]["by"] == "3 months"
    assert [t["task"] for t in ders["overdue"]] == ["a"] and ders["overdue"][0]["by"] == "4 days"


def test_the_store_summary_reads_tasks_through_the_task_store(app: Flask) -> None:
    """Both databases: a stored overdue Task, a completed one and a stored response."""
    context = app.extensions["mit_fhir"]
    client = app.test_client()
    qr = {**sample("ders"), "authored": "2025-11-20T10:00:00Z",
          "subject": {"reference": "Patient/p-due"}}
    resp = client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                       content_type="application/fhir+json")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    late = (NOW - timedelta(days=40)).date().isoformat()
    with context.store.transaction() as conn:
        for tid, status in (("due-1", "requested"), ("due-2", "completed")):
            task = fhir_task.questionnaire_task(f"{DERS}|1.0.0", "p-due", DR,
                                                "2026-01-01T09:00:00Z", period_end=late,
                                                tid=tid)
            tasks.store_new(conn, context, {**task, "status": status})
        tasks.store_new(conn, context, fhir_task.questionnaire_task(
            f"{DERS}|1.0.0", "someone-else", DR, "2026-01-01T09:00:00Z", period_end=late))
    with context.store.transaction() as conn:
        (row,) = due.summary(conn, context.catalogue, "p-due", NOW)
    assert [t["task"] for t in row["overdue"]] == ["due-1"]
    assert row["overdue"][0]["by"] == "5 weeks"
    assert row["last"]["date"] == "2025-11-20T10:00:00Z" and not row["last"]["synthetic"]
    with context.store.transaction() as conn:
        assert due.summary(conn, context.catalogue, "nobody", NOW) == []


def test_a_stored_schedule_gives_the_next_due_date_until_it_is_cancelled(app: Flask) -> None:
    """Both databases: a schedule not yet started (no Task) is due at its first occurrence; a
    completed Task of the form keeps the form listed once the schedule is cancelled."""
    from mit_fhir.usecases import schedules

    context = app.extensions["mit_fhir"]
    first = (NOW + timedelta(days=10)).date()
    with context.store.transaction() as conn:
        plan = schedules.create(conn, context, "p-plan", DR, [schedule.Activity(
            f"{DERS}|1.0.0", 3, "mo", first)], now=NOW)
        done = fhir_task.questionnaire_task(f"{DERS}|1.0.0", "p-plan", DR,
                                            "2026-01-01T09:00:00Z", period_end="2026-01-15")
        tasks.store_new(conn, context, {**done, "status": "completed"})
    with context.store.transaction() as conn:
        (row,) = due.summary(conn, context.catalogue, "p-plan", NOW)
    assert row["dueFrom"] == "schedule" and row["due"] == f"{first.isoformat()}T00:00:00"
    with context.store.transaction() as conn:
        schedules.cancel(conn, context, plan["id"], NOW)
    with context.store.transaction() as conn:
        (row,) = due.summary(conn, context.catalogue, "p-plan", NOW)
    assert row["due"] is None and row["overdue"] == []


def test_a_form_named_by_a_relative_reference_is_still_one_row(app: Flask) -> None:
    relative = _task(DERS, end="2026-02-08", tid="rel")
    relative["input"][0]["valueCanonical"] = "Questionnaire/ders"
    row = _one(app, [relative, _task(DERS, end="2026-04-01", tid="abs")], [_schedule(DERS)],
               [{**_response(DERS, "2025-06-01T10:00:00Z"), "questionnaire": "Questionnaire/ders"}],
               NOW)
    assert [t["task"] for t in row["overdue"]] == ["rel"]
    assert row["last"]["date"] == "2025-06-01T10:00:00Z"
