"""Assessment schedules as CarePlans: their shape, read and validated, and when forms fall due.

A schedule is a CarePlan with the category `assessment-schedule`
(https://mit-fhir.org/fhir/CodeSystem/mit-care-plan), one `activity` per form: `detail.kind`
Task, `detail.instantiatesCanonical` the Questionnaire, `detail.scheduledTiming.repeat` with
`boundsPeriod` (start, optional end), optional `count`, `frequency` 1, `period` N and
`periodUnit` d | wk | mo (https://hl7.org/fhir/R4/datatypes.html#Timing). Occurrence k (from 0)
of an activity falls on start + k * N units at 00:00 UTC; a monthly schedule started on the
31st falls on the last day of shorter months and returns to the 31st after (python-dateutil's
relativedelta, counted from the start each time, so the day never drifts). Plain dicts; no
store, no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from dateutil.relativedelta import relativedelta

from mit_fhir.vocabulary import BASE

Resource = dict[str, Any]
CATEGORY_SYSTEM = f"{BASE}/CodeSystem/mit-care-plan"
CATEGORY_CODE = "assessment-schedule"
UNITS = {"d": "days", "wk": "weeks", "mo": "months"}  # relativedelta's keyword per unit
RUNNING = "active"  # CarePlan status of a schedule that still creates Tasks
SCHEDULED, CANCELLED = "scheduled", "cancelled"  # detail.status of one activity
# Bounds that keep every occurrence a date (and a schedule a human plan): about ten years
# between two occurrences at most, dates in 1900-2200, one activity per form, 50 forms.
MAX_EVERY = {"d": 3660, "wk": 520, "mo": 120}
FIRST_YEAR, LAST_YEAR = 1900, 2200
MAX_COUNT = 10_000
MAX_ACTIVITIES = 50


class ScheduleError(ValueError):
    """A schedule that cannot be accepted; `where` is the element (FHIRPath), never a value."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


@dataclass(frozen=True)
class Activity:
    """One form on a schedule: every `every` `unit` from `start`, until `end` or `count`."""

    questionnaire: str  # canonical, url or url|version
    every: int
    unit: str  # "d" | "wk" | "mo"
    start: date
    end: date | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.questionnaire, str) or not self.questionnaire.strip():
            raise ScheduleError("instantiatesCanonical", "a Questionnaire canonical is required")
        if self.unit not in UNITS:
            raise ScheduleError("periodUnit", f"must be one of {', '.join(UNITS)}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ScheduleError("period", "must be a whole number of at least 1")
        if isinstance(self.start, datetime) or not isinstance(self.start, date):
            raise ScheduleError("boundsPeriod.start", "must be a date")
        if self.end is not None and (isinstance(self.end, datetime)
                                     or not isinstance(self.end, date)):
            raise ScheduleError("boundsPeriod.end", "must be a date")
        if self.end is not None and self.end < self.start:
            raise ScheduleError("boundsPeriod", "the start must not be after the end")
        if self.count is not None and (isinstance(self.count, bool)
                                       or not isinstance(self.count, int) or self.count < 1):
            raise ScheduleError("count", "must be a whole number of at least 1")
        if self.every > MAX_EVERY[self.unit]:
            raise ScheduleError("period", f"must be at most {MAX_EVERY[self.unit]} "
                                          f"{UNITS[self.unit]}")
        for name, day in (("boundsPeriod.start", self.start), ("boundsPeriod.end", self.end)):
            if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
                raise ScheduleError(name, f"must be in the years {FIRST_YEAR} to {LAST_YEAR}")
        if self.count is not None and self.count > MAX_COUNT:
            raise ScheduleError("count", f"must be at most {MAX_COUNT}")

    @property
    def url(self) -> str:
        """The Questionnaire's URL without `|version`."""
        return self.questionnaire.partition("|")[0]

    def occurrence(self, k: int) -> datetime | None:
        """Occurrence k (from 0) as an aware UTC datetime, or None past the end or count."""
        if k < 0 or (self.count is not None and k >= self.count):
            return None
        day = self.start + relativedelta(**{UNITS[self.unit]: k * self.every})
        if self.end is not None and day > self.end:
            return None
        return datetime.combine(day, time(), UTC)

    def latest(self, now: datetime) -> int | None:
        """The index of the last occurrence at or before `now`, or None before the first."""
        now = _aware(now)
        first = datetime.combine(self.start, time(), UTC)
        if now < first:
            return None
        k = self._estimate(now)
        while k > 0 and (self._at(k) > now):
            k -= 1
        while self._at(k + 1) <= now:
            k += 1
        if self.count is not None:
            k = min(k, self.count - 1)
        while k > 0 and self.occurrence(k) is None:  # past the end date
            k -= 1
        return k

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after `after`, or None when the activity has ended."""
        k = self.latest(after)
        return self.occurrence(0 if k is None else k + 1)

    def ended(self, now: datetime) -> bool:
        """No occurrence remains after `now` (end date passed or count reached)."""
        return self.next_after(now) is None

    def _at(self, k: int) -> datetime:
        day = self.start + relativedelta(**{UNITS[self.unit]: k * self.every})
        return datetime.combine(day, time(), UTC)

    def _estimate(self, now: datetime) -> int:
        if self.unit == "mo":
            months = (now.year - self.start.year) * 12 + now.month - self.start.month
            return max(months // self.every, 0)
        days = (now.date() - self.start).days
        return max(days // (self.every * (7 if self.unit == "wk" else 1)), 0)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- the CarePlan ---------------------------------------------------------------------------

def category() -> Resource:
    return {"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY_CODE,
                        "display": "Assessment schedule"}]}


def is_schedule(careplan: Resource) -> bool:
    """Whether a CarePlan carries the assessment-schedule category."""
    for concept in careplan.get("category") or ():
        for coding in (concept or {}).get("coding") or ():
            if coding.get("system") == CATEGORY_SYSTEM and coding.get("code") == CATEGORY_CODE:
                return True
    return False


def activity_element(activity: Activity, status: str = SCHEDULED) -> Resource:
    """A CarePlan.activity for one form."""
    bounds = {"start": activity.start.isoformat()}
    if activity.end is not None:
        bounds["end"] = activity.end.isoformat()
    repeat: Resource = {"boundsPeriod": bounds}
    if activity.count is not None:
        repeat["count"] = activity.count
    repeat.update({"frequency": 1, "period": activity.every, "periodUnit": activity.unit})
    return {"detail": {"kind": "Task", "instantiatesCanonical": [activity.questionnaire],
                       "status": status, "scheduledTiming": {"repeat": repeat}}}


def schedule_plan(patient: str, author: Resource, activities: list[Activity], created: str,
                  title: str | None = None) -> Resource:
    """An active schedule CarePlan for `patient` (an id), without id or meta."""
    if not activities:
        raise ScheduleError("CarePlan.activity", "a schedule needs at least one form")
    plan: Resource = {
        "resourceType": "CarePlan",
        "status": RUNNING,
        "intent": "plan",
        "category": [category()],
        "subject": {"reference": f"Patient/{patient}"},
        "created": created,
        "author": dict(author),
        "activity": [activity_element(a) for a in activities],
    }
    if title:
        plan["title"] = title
    return plan


def _date(value: Any, where: str) -> date:
    # A FHIR dateTime may be a full date or carry a time; the schedule counts in whole days.
    if not isinstance(value, str) or len(value) < 10:
        raise ScheduleError(where, "must be a full date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ScheduleError(where, "must be a full date (YYYY-MM-DD)") from None


def read_activity(element: Resource, where: str = "CarePlan.activity") -> Activity:
    """An Activity from one CarePlan.activity; ScheduleError naming the element otherwise."""
    detail = element.get("detail") if isinstance(element, dict) else None
    if not isinstance(detail, dict):
        raise ScheduleError(f"{where}.detail", "a scheduled form needs a detail")
    where = f"{where}.detail"
    if detail.get("kind") != "Task":
        raise ScheduleError(f"{where}.kind", "must be Task")
    canonicals = detail.get("instantiatesCanonical") or []
    if len(canonicals) != 1 or not isinstance(canonicals[0], str):
        raise ScheduleError(f"{where}.instantiatesCanonical", "must name exactly one form")
    if detail.get("status") not in (SCHEDULED, CANCELLED):
        raise ScheduleError(f"{where}.status", f"must be {SCHEDULED} or {CANCELLED}")
    repeat = (detail.get("scheduledTiming") or {}).get("repeat")
    if not isinstance(repeat, dict):
        raise ScheduleError(f"{where}.scheduledTiming.repeat", "is required")
    timing = f"{where}.scheduledTiming.repeat"
    if repeat.get("frequency", 1) != 1:
        raise ScheduleError(f"{timing}.frequency", "must be 1 (once per period)")
    bounds = repeat.get("boundsPeriod") or {}
    end = bounds.get("end")
    every: Any = repeat.get("period")
    unit: Any = repeat.get("periodUnit")
    try:
        return Activity(canonicals[0], every, unit,
                        _date(bounds.get("start"), f"{timing}.boundsPeriod.start"),
                        None if end is None else _date(end, f"{timing}.boundsPeriod.end"),
                        repeat.get("count"))
    except ScheduleError as err:
        if err.where.startswith(where):
            raise
        raise ScheduleError(f"{timing}.{err.where}", str(err).partition(": ")[2]) from None


def activities(careplan: Resource) -> list[tuple[int, Activity, str]]:
    """(index, Activity, detail.status) for each activity; ScheduleError if one is malformed."""
    found = careplan.get("activity") or []
    if not isinstance(found, list) or not found:
        raise ScheduleError("CarePlan.activity", "a schedule needs at least one form")
    if len(found) > MAX_ACTIVITIES:
        raise ScheduleError("CarePlan.activity", f"a schedule lists at most {MAX_ACTIVITIES} "
                                                 "forms")
    return [(i, read_activity(e, f"CarePlan.activity[{i}]"), e["detail"]["status"])
            for i, e in enumerate(found)]


def validate(careplan: Resource) -> list[Activity]:
    """The schedule's activities, after checking it is one (category, intent, subject) with
    each form listed once."""
    if not is_schedule(careplan):
        raise ScheduleError("CarePlan.category", f"must include {CATEGORY_CODE}")
    if careplan.get("intent") != "plan":
        raise ScheduleError("CarePlan.intent", "a schedule's intent is plan")
    found = [a for _, a, _ in activities(careplan)]
    seen: set[str] = set()
    for i, activity in enumerate(found):
        if activity.url in seen:  # a new schedule lists each form once
            raise ScheduleError(f"CarePlan.activity[{i}].detail.instantiatesCanonical",
                                "a form is listed once per schedule")
        seen.add(activity.url)
    return found


def running(careplan: Resource) -> list[tuple[int, Activity]]:
    """The activities that still create Tasks: none unless the CarePlan is active."""
    if careplan.get("status") != RUNNING:
        return []
    return [(i, a) for i, a, status in activities(careplan) if status == SCHEDULED]


def next_occurrence(careplan: Resource, questionnaire_url: str,
                    after: datetime) -> datetime | None:
    """The next occurrence strictly after `after` of the form at `questionnaire_url` (with
    or without |version), or None when the schedule is not active, lists the form only as
    cancelled, or has ended for it."""
    url = questionnaire_url.partition("|")[0]
    upcoming = [n for _, a in running(careplan)
                if a.url == url and (n := a.next_after(after)) is not None]
    return min(upcoming, default=None)


def ended(careplan: Resource, now: datetime) -> bool:
    """Every running activity is past its end date or count (the schedule is complete)."""
    return all(a.ended(now) for _, a in running(careplan))


def business_key(careplan_id: str, index: int, k: int) -> str:
    """The key that makes occurrence k of activity `index` one Task, however often it runs."""
    return f"schedule/{careplan_id}/{index}/{k}"
