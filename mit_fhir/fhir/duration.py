"""How long, in the words a clinician reads at a glance: "5 days", "3 weeks", "4 months".

Days under two weeks, whole weeks under three months, then whole calendar months (counted
with python-dateutil, so 31 January to 28 February is one month, not "4 weeks"). Always
rounded down: "overdue by 3 weeks" is never said of 20 days. No store, no Flask.
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta

WEEKS_FROM_DAYS = 14
MONTHS_FROM = 3


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def wording(start: datetime, end: datetime) -> str:
    """The time from `start` to `end` (both aware, or both naive), e.g. "3 weeks"; under a
    day is "less than a day", and `end` before `start` reads as no time at all."""
    if end <= start:
        return "less than a day"
    span = relativedelta(end, start)
    months = span.years * 12 + span.months
    days = (end - start).days
    if months >= MONTHS_FROM:
        return _count(months, "month")
    if days >= WEEKS_FROM_DAYS:
        return _count(days // 7, "week")
    if days >= 1:
        return _count(days, "day")
    return "less than a day"
