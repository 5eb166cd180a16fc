"""Schedule CarePlans (fhir/schedule.py): when each form falls due, and what is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.careplan import CarePlan

from mit_fhir.fhir import schedule
from mit_fhir.fhir.schedule import Activity, ScheduleError, next_occurrence

DERS = "https://mit-fhir.org/fhir/Questionnaire/ders"
SCL = "https://mit-fhir.org/fhir/Questionnaire/scl-90-r"
AUTHOR = {"reference": "Practitioner/dr"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _plan(*acts: Activity, status: str = "active") -> dict:
    plan = schedule.schedule_plan("p1", AUTHOR, list(acts), "2026-01-01T09:00:00Z")
    plan["status"] = status
    return plan


@pytest.mark.parametrize(("activity", "after", "expected"), [
    # every 2 weeks from a Monday
    (Activity(DERS, 2, "wk", date(2026, 1, 5)), "2026-01-01T00:00:00", "2026-01-05"),
    (Activity(DERS, 2, "wk", date(2026, 1, 5)), "2026-01-05T00:00:00", "2026-01-19"),
    (Activity(DERS, 2, "wk", date(2026, 1, 5)), "2026-01-18T23:59:59", "2026-01-19"),
    (Activity(DERS, 2, "wk", date(2026, 1, 5)), "2026-03-03T12:00:00", "2026-03-16"),
    # daily
    (Activity(DERS, 1, "d", date(2026, 1, 5)), "2026-01-05T08:00:00", "2026-01-06"),
    (Activity(DERS, 10, "d", date(2026, 1, 5)), "2026-02-04T00:00:00", "2026-02-14"),
    # quarterly from the 4th
    (Activity(DERS, 3, "mo", date(2019, 3, 4)), "2019-03-04T00:00:00", "2019-06-04"),
    (Activity(DERS, 3, "mo", date(2019, 3, 4)), "2019-12-31T00:00:00", "2020-03-04"),
    # monthly from a month-end: the last day of shorter months, back to the 31st after
    (Activity(DERS, 1, "mo", date(2026, 1, 31)), "2026-01-31T00:00:00", "2026-02-28"),
    (Activity(DERS, 1, "mo", date(2026, 1, 31)), "2026-02-28T00:00:00", "2026-03-31"),
    (Activity(DERS, 1, "mo", date(2026, 1, 31)), "2026-03-31T00:00:00", "2026-04-30"),
    (Activity(DERS, 1, "mo", date(2028, 1, 31)), "2028-01-31T00:00:00", "2028-02-29"),
    (Activity(DERS, 1, "mo", date(2026, 8, 31)), "2026-09-15T00:00:00", "2026-09-30"),
    # count: three occurrences, then none
    (Activity(DERS, 1, "wk", date(2026, 1, 5), count=3), "2026-01-12T00:00:00", "2026-01-19"),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), count=3), "2026-01-19T00:00:00", None),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), count=1), "2026-01-04T00:00:00", "2026-01-05"),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), count=1), "2026-01-05T00:00:00", None),
    # end date: inclusive, then none
    (Activity(DERS, 1, "wk", date(2026, 1, 5), end=date(2026, 1, 19)), "2026-01-12T00:00:00",
     "2026-01-19"),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), end=date(2026, 1, 18)), "2026-01-12T00:00:00",
     None),
    (Activity(DERS, 3, "mo", date(2019, 3, 4), end=date(2020, 9, 7)), "2020-06-04T00:00:00",
     "2020-09-04"),
    (Activity(DERS, 3, "mo", date(2019, 3, 4), end=date(2020, 9, 7)), "2020-09-04T00:00:00",
     None),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), end=date(2026, 1, 5)), "2025-12-01T00:00:00",
     "2026-01-05"),
])
def test_next_occurrence(activity: Activity, after: str, expected: str | None) -> None:
    found = next_occurrence(_plan(activity), DERS + "|1.0.0", _at(after))
    assert found == (None if expected is None else _at(expected + "T00:00:00"))


def test_the_occurrence_is_strictly_after_and_timezone_aware() -> None:
    plan = _plan(Activity(DERS, 1, "wk", date(2026, 1, 5)))
    # 2026-01-05 00:30 in UTC+02:00 is 2026-01-04 22:30 UTC: the first occurrence still lies ahead
    local = datetime(2026, 1, 5, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert next_occurrence(plan, DERS, local) == _at("2026-01-05T00:00:00")
    assert next_occurrence(plan, DERS, datetime(2026, 1, 5)) == _at("2026-01-12T00:00:00")


@pytest.mark.parametrize("status", ["revoked", "completed", "draft", "on-hold"])
def test_a_schedule_that_is_not_active_has_no_next_occurrence(status: str) -> None:
    plan = _plan(Activity(DERS, 1, "wk", date(2026, 1, 5)), status=status)
    assert next_occurrence(plan, DERS, _at("2026-01-01T00:00:00")) is None


def test_a_cancelled_activity_has_none_while_the_others_go_on() -> None:
    plan = _plan(Activity(DERS, 1, "wk", date(2026, 1, 5)), Activity(SCL, 2, "wk",
                                                                     date(2026, 1, 5)))
    plan["activity"][0]["detail"]["status"] = "cancelled"
    assert next_occurrence(plan, DERS, _at("2026-01-06T00:00:00")) is None
    assert next_occurrence(plan, SCL, _at("2026-01-06T00:00:00")) == _at("2026-01-19T00:00:00")
    assert next_occurrence(plan, "https://example.org/other", _at("2026-01-06T00:00:00")) is None


def test_the_form_listed_twice_falls_due_at_the_earlier_of_the_two() -> None:
    plan = _plan(Activity(DERS, 4, "wk", date(2026, 1, 5)), Activity(DERS, 1, "wk",
                                                                     date(2026, 1, 7)))
    assert next_occurrence(plan, DERS, _at("2026-01-08T00:00:00")) == _at("2026-01-14T00:00:00")


@pytest.mark.parametrize(("activity", "now", "latest"), [
    (Activity(DERS, 1, "wk", date(2026, 1, 5)), "2026-01-04T23:59:59", None),
    (Activity(DERS, 1, "wk", date(2026, 1, 5)), "2026-01-05T00:00:00", 0),
    (Activity(DERS, 1, "wk", date(2026, 1, 5)), "2026-03-16T00:00:00", 10),
    (Activity(DERS, 1, "mo", date(2026, 1, 31)), "2026-02-28T00:00:00", 1),
    (Activity(DERS, 1, "mo", date(2026, 1, 31)), "2026-02-27T23:00:00", 0),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), count=3), "2027-01-01T00:00:00", 2),
    (Activity(DERS, 1, "wk", date(2026, 1, 5), end=date(2026, 1, 20)), "2027-01-01T00:00:00", 2),
])
def test_the_latest_occurrence_at_or_before_now(activity: Activity, now: str,
                                                latest: int | None) -> None:
    assert activity.latest(_at(now)) == latest


def test_a_schedule_has_ended_once_every_running_form_has() -> None:
    plan = _plan(Activity(DERS, 1, "wk", date(2026, 1, 5), count=2),
                 Activity(SCL, 1, "wk", date(2026, 1, 5), end=date(2026, 2, 2)))
    assert not schedule.ended(plan, _at("2026-01-20T00:00:00"))
    assert schedule.ended(plan, _at("2026-02-02T00:00:00"))
    assert not schedule.ended(_plan(Activity(DERS, 1, "wk", date(2026, 1, 5))),
                              _at("2030-01-01T00:00:00"))


def test_the_schedule_is_a_valid_r4_careplan_that_reads_back() -> None:
    acts = [Activity(DERS + "|1.0.0", 3, "mo", date(2019, 3, 4), end=date(2020, 9, 7)),
            Activity(SCL, 6, "mo", date(2020, 9, 7), count=4)]
    plan = schedule.schedule_plan("p1", AUTHOR, acts, "2019-03-04", title="Follow-up")
    CarePlan.model_validate(plan)
    assert schedule.is_schedule(plan) and schedule.validate(plan) == acts
    repeat = plan["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    assert repeat == {"boundsPeriod": {"start": "2019-03-04", "end": "2020-09-07"},
                      "frequency": 1, "period": 3, "periodUnit": "mo"}
    assert schedule.business_key("cp1", 1, 3) == "schedule/cp1/1/3"


@pytest.mark.parametrize(("kwargs", "where"), [
    ({"every": 0}, "period"),
    ({"every": True}, "period"),
    ({"unit": "a"}, "periodUnit"),
    ({"end": date(2026, 1, 4)}, "boundsPeriod"),
    ({"count": 0}, "count"),
    ({"questionnaire": " "}, "instantiatesCanonical"),
])
def test_an_activity_that_makes_no_sense_is_refused(kwargs: dict, where: str) -> None:
    values = {"questionnaire": DERS, "every": 1, "unit": "wk", "start": date(2026, 1, 5),
              **kwargs}
    with pytest.raises(ScheduleError) as err:
        Activity(**values)
    assert err.value.where == where


def _detail(plan: dict) -> dict:
    return plan["activity"][0]["detail"]


@pytest.mark.parametrize(("change", "where"), [
    (lambda p: _detail(p).update(kind="Appointment"), "CarePlan.activity[0].detail.kind"),
    (lambda p: _detail(p).update(instantiatesCanonical=[DERS, SCL]),
     "CarePlan.activity[0].detail.instantiatesCanonical"),
    (lambda p: _detail(p).update(status="in-progress"), "CarePlan.activity[0].detail.status"),
    (lambda p: _detail(p).pop("scheduledTiming"),
     "CarePlan.activity[0].detail.scheduledTiming.repeat"),
    (lambda p: _detail(p)["scheduledTiming"]["repeat"].update(frequency=2),
     "CarePlan.activity[0].detail.scheduledTiming.repeat.frequency"),
    (lambda p: _detail(p)["scheduledTiming"]["repeat"].update(period=0),
     "CarePlan.activity[0].detail.scheduledTiming.repeat.period"),
    (lambda p: _detail(p)["scheduledTiming"]["repeat"]["boundsPeriod"].update(start="2026"),
     "CarePlan.activity[0].detail.scheduledTiming.repeat.boundsPeriod.start"),
    (lambda p: _detail(p)["scheduledTiming"]["repeat"]["boundsPeriod"].update(end="2025-12-01"),
     "CarePlan.activity[0].detail.scheduledTiming.repeat.boundsPeriod"),
    (lambda p: p.update(activity=[]), "CarePlan.activity"),
    (lambda p: p.update(intent="order"), "CarePlan.intent"),
    (lambda p: p.update(category=[]), "CarePlan.category"),
])
def test_a_malformed_schedule_careplan_is_refused_naming_the_element(change, where: str) -> None:
    plan = _plan(Activity(DERS, 1, "wk", date(2026, 1, 5)))
    change(plan)
    with pytest.raises(ScheduleError) as err:
        schedule.validate(plan)
    assert err.value.where == where


def test_the_category_is_the_code_of_the_published_code_system() -> None:
    import json

    from fhir.resources.R4B.codesystem import CodeSystem

    from mit_fhir.paths import PROFILE_DIR

    raw = json.loads((PROFILE_DIR / "CodeSystem-mit-care-plan.json").read_text())
    CodeSystem.model_validate(raw)
    assert raw["url"] == schedule.CATEGORY_SYSTEM
    assert [c["code"] for c in raw["concept"]] == [schedule.CATEGORY_CODE]
