"""What the Task API accepts (fhir/task.py's SDC shape): a new Task, and a change of status.

Pure: dicts in (and the catalogue's `resolve`, canonical -> Questionnaire), Issues out. A new
Task must be of the SDC Task Questionnaire shape (one `questionnaire` input resolving to a
served form, no `focus` (sdc-t1), `for` a Patient, status requested or draft, intent order, no
output yet); an update may move only its status (and what comes with it: statusReason, the
output of a completion).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mit_fhir.errors import Issue
from mit_fhir.fhir import task as shape
from mit_fhir.fhir.references import BadReference, parse, resource_patient
from mit_fhir.fhir.search import date_end_key, date_key

Resource = dict[str, Any]
Resolve = Callable[[str], Resource | None]  # Catalogue.resolve
CREATE_STATUSES = ("requested", "draft")
# The years a Task's dates may fall in, once in UTC (every window, sort and due mark stays a
# date: a Task in year 1 or 9999 would overflow them).
FIRST_YEAR, LAST_YEAR = 1900, 2200
# Elements an update may change (the service writes executionPeriod, lastModified and meta).
MUTABLE = frozenset({"meta", "text", "status", "statusReason", "output", "executionPeriod",
                     "lastModified"})
# Moves an update may make; -> completed and -> cancelled are checked on their own.
MOVES: dict[str, frozenset[str]] = {
    **{s: shape.OPEN - {s} for s in shape.OPEN},
    "draft": frozenset({"requested"}),
}


def _issue(message: str, element: str, code: str = "invalid") -> Issue:
    return Issue(message, code=code, expression=(f"Task.{element}",))


def questionnaire_inputs(task: Resource) -> list[Resource]:
    return [i for i in task.get("input") or () if isinstance(i, dict)
            and any(c.get("system") == shape.SDC_TEMP and c.get("code") == shape.INPUT_QUESTIONNAIRE
                    for c in (i.get("type") or {}).get("coding") or ())]


def form_of(task: Resource, resolve: Resolve) -> Resource | None:
    """The served Questionnaire the Task's one `questionnaire` input names, or None."""
    inputs = questionnaire_inputs(task)
    canonical = inputs[0].get("valueCanonical") if len(inputs) == 1 else None
    return resolve(canonical) if isinstance(canonical, str) and canonical else None


def create_issues(task: Resource, resolve: Resolve) -> list[Issue]:
    """Every way a new Task is not one this service accepts (after check_structure)."""
    issues = []
    if not shape.is_questionnaire_task(task):
        issues.append(_issue(f"code must be {shape.SDC_TEMP}|{shape.CODE}", "code", "required"))
    inputs = questionnaire_inputs(task)
    if len(inputs) != 1 or not isinstance(inputs[0].get("valueCanonical"), str):
        issues.append(_issue("exactly one input of type 'questionnaire' with a valueCanonical "
                             "is required", "input", "required"))
    elif form_of(task, resolve) is None:
        issues.append(_issue("the questionnaire input names no form this service serves",
                             "input", "not-found"))
    if "focus" in task:
        issues.append(_issue("a Task with a questionnaire input has no focus (sdc-t1)", "focus"))
    if resource_patient(task) is None:
        issues.append(_issue("for must reference the Patient (Patient/<id>, an id of 1 to 64 "
                             "letters, digits, '-' or '.')", "for", "required"))
    if task.get("status") not in CREATE_STATUSES:
        issues.append(_issue("a new Task's status is requested or draft", "status"))
    if task.get("intent") != "order":
        issues.append(_issue("intent must be order", "intent"))
    if task.get("output"):
        issues.append(_issue("a new Task has no output: it is completed by a response",
                             "output"))
    issues += date_issues(task)
    issues += period_issues(task)
    for element in ("requester", "owner"):
        if element in task and not _relative(task[element]):
            issues.append(_issue(f"{element} must be a relative reference (Type/id)", element))
    return issues


def date_issues(task: Resource) -> list[Issue]:
    """The Task's dates (authoredOn, restriction.period) outside FIRST_YEAR..LAST_YEAR in UTC."""
    start, end = shape.period(task)
    issues = []
    for element, text in (("authoredOn", task.get("authoredOn")),
                          ("restriction.period.start", start), ("restriction.period.end", end)):
        if not text:
            continue
        keys = (date_key(text), date_end_key(text))
        if any(k is None or not FIRST_YEAR <= int(k.partition("-")[0]) <= LAST_YEAR
               for k in keys):
            issues.append(_issue(f"must be a date in the years {FIRST_YEAR} to {LAST_YEAR} "
                                 "(UTC)", element))
    return issues


def period_issues(task: Resource) -> list[Issue]:
    start, end = shape.period(task)
    if start and end and (date_key(start) or "") > (date_key(end) or ""):
        return [_issue("restriction.period starts after it ends", "restriction.period",
                       "invariant")]
    return []


def _relative(ref: object) -> bool:
    try:
        parse(ref.get("reference") if isinstance(ref, dict) else None)
    except BadReference:
        return False
    return True


def changed_elements(stored: Resource, proposed: Resource) -> list[str]:
    """The elements an update would change that no update may (sorted)."""
    names = (set(stored) | set(proposed)) - MUTABLE
    return sorted(n for n in names if stored.get(n) != proposed.get(n))


def move_issue(stored: Resource, proposed: Resource) -> Issue | None:
    """Why the status move of an update is refused (None: it may be made). Moves out of a
    closed status are the caller's to answer (409: the Task is no longer open)."""
    old, new = stored.get("status"), proposed.get("status")
    if new not in shape.STATUSES:
        return _issue("status must be a Task status", "status")
    if proposed.get("output") and new != "completed":
        return _issue("only a completion names an output", "output")
    if new == "cancelled":
        reason = (proposed.get("statusReason") or {}).get("text")
        if not isinstance(reason, str) or not reason.strip():
            return _issue("a cancellation says why in statusReason.text", "statusReason",
                          "required")
        return None
    if new == "completed":
        if shape.response_of(proposed) is None or len(proposed.get("output") or ()) != 1:
            return _issue("a completion names its QuestionnaireResponse as the one output "
                          "(type questionnaire-response, valueReference)", "output", "required")
        return None
    if new not in MOVES.get(str(old), frozenset()):
        return _issue(f"status cannot move from {old} to {new}", "status", "business-rule")
    return None
