"""FHIR search: the parameters each resource type supports, and their index values.

Unknown parameters are rejected (400) rather than ignored: silently dropping `subject=` from a
search would return every patient's data. https://hl7.org/fhir/R4/search.html#errors
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from mit_fhir.errors import InvalidRequest, Issue
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.references import BadReference, parse

Row = tuple[str, str]
PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_STAMP = "%Y-%m-%dT%H:%M:%S"


def date_range(text: str) -> tuple[str, str]:
    """The UTC instants [start, end] a FHIR date/dateTime of any precision covers."""
    m = _DATE.match(text)
    if not m:
        raise ValueError(f"not a FHIR date: {text!r}")
    try:
        return _range(*m.groups())
    except OverflowError:
        # e.g. 9999-12-31 (its end) or 0001-01-01T00:00+14:00 (its start in UTC)
        raise ValueError(f"date out of range: {text!r}") from None


def _range(year: str, month: str | None, day: str | None, hour: str | None,
           minute: str | None, second: str | None, zone: str | None) -> tuple[str, str]:
    start = datetime(
        int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
        int(second or 0), tzinfo=UTC,
    )
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        start -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    step: relativedelta | timedelta
    if month is None:
        step = relativedelta(years=1)
    elif day is None:
        step = relativedelta(months=1)
    elif hour is None:
        step = timedelta(days=1)
    elif second is None:
        step = timedelta(minutes=1)
    else:
        step = timedelta(seconds=1)
    end = start + step - timedelta(seconds=1)
    return start.strftime(_STAMP), end.strftime(_STAMP)


def date_key(text: str | None) -> str | None:
    """The index (and sort) value of a stored date/dateTime: its start instant in UTC."""
    if not text:
        return None
    try:
        return date_range(text)[0]
    except ValueError:
        return None


def date_end_key(text: str | None) -> str | None:
    """The last UTC instant a stored date/dateTime covers (a period's end of day precision
    includes that whole day), or None."""
    if not text:
        return None
    try:
        return date_range(text)[1]
    except ValueError:
        return None


def _reference(index: str, value: str) -> Criterion:
    # The grammar of mit_fhir.fhir.references, whose canonical Type/id the index rows hold.
    # Values reach here canonical (the guard parsed them with the service's base URL), so a
    # value the guard let through means the same resource here.
    return Criterion(index, "eq", (str(parse(value, TARGETS.get(index))),))


def _token(name: str, value: str) -> Criterion:
    if "|" not in value:
        return Criterion(f"{name}:code", "eq", (value,))
    system, _, code = value.partition("|")
    if not code:
        return Criterion(name, "like-prefix", (system + "|",))
    return Criterion(name, "eq", (f"{system}|{code}",))


def _date(name: str, value: str) -> Criterion:
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    text = value[2:] if value[:2] in PREFIXES else value
    start, end = date_range(text)
    if prefix == "eq":
        return Criterion(name, "between", (start, end))
    if prefix in ("lt", "eb"):
        return Criterion(name, "lt", (start,))
    if prefix in ("gt", "sa"):
        return Criterion(name, "gt", (end,))
    if prefix == "le":
        return Criterion(name, "le", (end,))
    if prefix == "ge":
        return Criterion(name, "ge", (start,))
    raise ValueError(f"date prefix '{prefix}' is not supported")


# parameter -> (kind, index name). Kinds: reference, token, date, id, string.
PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "QuestionnaireResponse": {
        "_id": ("id", "_id"),
        "identifier": ("token", "identifier"),
        "subject": ("reference", "subject"),
        "patient": ("reference", "patient"),
        "questionnaire": ("canonical", "questionnaire"),
        "authored": ("date", "authored"),
        "status": ("token", "status"),
    },
    "Observation": {
        "_id": ("id", "_id"),
        "identifier": ("token", "identifier"),
        "subject": ("reference", "subject"),
        "patient": ("reference", "patient"),
        "code": ("token", "code"),
        "date": ("date", "date"),
        "derived-from": ("reference", "derived-from"),
        "status": ("token", "status"),
    },
}
for _plan_type in ("MedicationRequest", "CarePlan", "CareTeam"):
    PARAMETERS[_plan_type] = {
        "_id": ("id", "_id"),
        "identifier": ("token", "identifier"),
        "subject": ("reference", "subject"),
        "patient": ("reference", "patient"),
        "status": ("token", "status"),
    }
PARAMETERS["MedicationRequest"]["intent"] = ("token", "intent")
PARAMETERS["MedicationRequest"]["code"] = ("token", "code")
PARAMETERS["CarePlan"]["category"] = ("token", "category")
PARAMETERS["Task"] = {
    "_id": ("id", "_id"),
    "identifier": ("token", "identifier"),
    "subject": ("reference", "subject"),
    "patient": ("reference", "patient"),
    "status": ("token", "status"),
    "code": ("token", "code"),
    # SDC Tasks carry the Questionnaire as their `questionnaire` input, not as `focus`
    # (sdc-t1), so the form is searched by that input's canonical.
    "questionnaire": ("canonical", "questionnaire"),
    # restriction.period, the window in which the Task is to be done (fhir/task.py).
    "period": ("period", "period"),
    "requester": ("reference", "requester"),
    "owner": ("reference", "owner"),
    # R4 Task.performerType: SNOMED 116154003 Patient for a self-report form, 223366009
    # Healthcare professional for a clinician-rated one (fhir/task.py).
    "performer": ("token", "performer"),
    "based-on": ("reference", "based-on"),
    "authored-on": ("date", "authored-on"),
}
PARAMETERS["AuditEvent"] = {
    "_id": ("id", "_id"),
    "date": ("date", "date"),
    "action": ("token", "action"),
    "subtype": ("token", "subtype"),
    "outcome": ("token", "outcome"),
    "agent": ("reference", "agent"),
    "entity": ("reference", "entity"),
    "patient": ("reference", "patient"),
}
PARAMETERS["Provenance"] = {
    "_id": ("id", "_id"),
    "target": ("reference", "target"),
    "entity": ("reference", "entity"),
    "patient": ("reference", "patient"),
    "recorded": ("date", "recorded"),
}
CONTROL = {"_sort", "_count", "_cursor", "_format"}
# Reference parameters whose target type is fixed, so that a bare id names it (patient=123).
# `subject` targets only Patient here: every stored subject is a Patient (fhir/validate.py).
TARGETS: dict[str, tuple[str, ...]] = {"patient": ("Patient",), "subject": ("Patient",)}


def criteria(resource_type: str, args: Iterable[tuple[str, str]]) -> list[Criterion]:
    """Parse query arguments into store criteria; 400 for anything unsupported."""
    known = PARAMETERS[resource_type]
    out: list[Criterion] = []
    issues: list[Issue] = []
    for raw_name, raw_value in args:
        if raw_name in CONTROL:
            continue
        name, _, modifier = raw_name.partition(":")
        if name not in known or modifier:
            issues.append(Issue(f"search parameter '{raw_name}' is not supported",
                                code="not-supported"))
            continue
        kind, index = known[name]
        values = [v for v in raw_value.split(",") if v]
        if not values:
            issues.append(Issue(f"search parameter '{name}' has no value"))
            continue
        try:
            if kind == "period":
                if len(values) > 1:
                    raise ValueError("one value only (repeat the parameter to AND ranges)")
                merged = _period(index, values[0])
            else:
                merged = _merge([_parse(kind, index, v) for v in values])
        except ValueError as exc:
            issues.append(Issue(f"search parameter '{name}': {exc}"))
            continue
        out.extend(merged)
    if issues:
        raise InvalidRequest("unsupported search", issues)
    return out


# The index value of a period's missing start or end: an open end compares as the extreme.
PERIOD_OPEN_START = "0001-01-01T00:00:00"
PERIOD_OPEN_END = "9999-12-31T23:59:59"


def _period(index: str, value: str) -> list[Criterion]:
    """A date search on a Period, https://hl7.org/fhir/R4/search.html#prefix : the period is
    indexed as `<index>:start` and `<index>:end` rows."""
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    start, end = date_range(value[2:] if value[:2] in PREFIXES else value)
    first, last = f"{index}:start", f"{index}:end"
    if prefix == "eq":  # the searched range contains the whole period
        return [Criterion(first, "ge", (start,)), Criterion(last, "le", (end,))]
    if prefix == "lt":  # the period starts before the searched range
        return [Criterion(first, "lt", (start,))]
    if prefix == "le":
        return [Criterion(first, "le", (end,))]
    if prefix == "gt":  # the period ends after the searched range
        return [Criterion(last, "gt", (end,))]
    if prefix == "ge":
        return [Criterion(last, "ge", (start,))]
    if prefix == "eb":  # the period ends before the searched range starts (an overdue window)
        return [Criterion(last, "lt", (start,))]
    if prefix == "sa":  # the period starts after the searched range ends
        return [Criterion(first, "gt", (end,))]
    raise ValueError(f"date prefix '{prefix}' is not supported on a period")


def _parse(kind: str, index: str, value: str) -> Criterion:
    if kind == "reference":
        return _reference(index, value)
    if kind == "token":
        return _token(index, value)
    if kind == "date":
        return _date(index, value)
    if kind == "canonical":
        return Criterion(index, "eq", (value.partition("|")[0],))
    return Criterion(index, "eq", (value,))


def _merge(parts: list[Criterion]) -> list[Criterion]:
    """Comma-separated values OR together when they share name and comparison."""
    merged: dict[tuple[str, str], list[str]] = {}
    for c in parts:
        merged.setdefault((c.name, c.op), []).extend(c.values)
    if len(merged) == 1:
        (name, op), values = next(iter(merged.items()))
        return [Criterion(name, op, tuple(values))]
    # Separate criteria would be AND-ed by the store, silently turning the OR into an AND.
    raise ValueError("mixing value forms in one OR list is not supported")


def sort_key(args: Mapping[str, str]) -> str | None:
    """`_sort=date` or `_sort=-date`; anything else is refused."""
    value = args.get("_sort")
    if value in (None, "date", "-date"):
        return value
    raise InvalidRequest(f"_sort={value} is not supported (use date or -date)")


def reference_rows(name: str, ref: dict[str, Any] | None) -> list[Row]:
    """Index rows for a Reference element: its canonical Type/id, as searches name it.

    A reference outside the grammar (an absolute URL of another server, a version) gets no
    row: no search value can name it, and indexing its last segments would let a search for
    one resource find another.
    """
    if not isinstance(ref, dict) or not ref.get("reference"):
        return []
    try:
        return [(name, str(parse(ref["reference"])))]
    except BadReference:
        return []


def token_rows(name: str, concept: dict[str, Any] | None) -> list[Row]:
    """Index rows for a CodeableConcept: system|code and code alone."""
    rows: list[Row] = []
    for coding in (concept or {}).get("coding", []):
        if coding.get("code"):
            rows.append((name, f"{coding.get('system', '')}|{coding['code']}"))
            rows.append((f"{name}:code", coding["code"]))
    return rows
