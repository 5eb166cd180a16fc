"""SDC Tasks asking a patient to complete a Questionnaire: their shape, read and written.

The shape is SDC 4.0's Task Questionnaire profile,
http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-task : `code` complete-questionnaire, the
Questionnaire's canonical as the `questionnaire` input (invariant sdc-t1: no `focus` then),
`for` the Patient, `requester`, `authoredOn`, `restriction.period` the window in which it is to
be done (its end is the due date), and, once done, the QuestionnaireResponse as the
`questionnaire-response` output. Plain dicts; no store, no Flask.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mit_fhir.fhir.search import date_end_key
from mit_fhir.vocabulary import BASE

Resource = dict[str, Any]
PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-task"
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
CODE = "complete-questionnaire"
INPUT_QUESTIONNAIRE = "questionnaire"
OUTPUT_RESPONSE = "questionnaire-response"
IDENTIFIER_SYSTEM = f"{BASE}/identifier/task"
STATUS_SYSTEM = "http://hl7.org/fhir/task-status"
# https://hl7.org/fhir/R4/valueset-task-status.html
STATUSES = frozenset({"draft", "requested", "received", "accepted", "rejected", "ready",
                      "cancelled", "in-progress", "on-hold", "failed", "completed",
                      "entered-in-error"})
# Still to be done by the patient: listed on their page, due or overdue.
OPEN = frozenset({"requested", "received", "accepted", "ready", "in-progress", "on-hold"})


# Who performs the Task (R4 Task.performerType, the `performer` search parameter): reminders
# go to the patient-performed ones only (docs/operations/reminders.md).
SNOMED = "http://snomed.info/sct"
PERFORMER_PATIENT = (SNOMED, "116154003", "Patient")
PERFORMER_CLINICIAN = (SNOMED, "223366009", "Healthcare professional")


def _type(code: str) -> Resource:
    return {"coding": [{"system": SDC_TEMP, "code": code}]}


def questionnaire_task(questionnaire: str, patient: str, requester: Resource,
                       authored_on: str, period_start: str | None = None,
                       period_end: str | None = None, based_on: Resource | None = None,
                       tid: str | None = None, owner: Resource | None = None) -> Resource:
    """A requested Task about `patient` (an id) to complete the form at `questionnaire` (its
    canonical, `url|version` or `url`); owned by the patient (a self-report form) unless
    `owner` says who else completes it (a clinician-rated form: the requester)."""
    task: Resource = {
        "resourceType": "Task",
        "meta": {"profile": [PROFILE]},
        "status": "requested",
        "intent": "order",
        "code": _type(CODE),
        "for": {"reference": f"Patient/{patient}"},
        "owner": dict(owner) if owner is not None else {"reference": f"Patient/{patient}"},
        "authoredOn": authored_on,
        "requester": dict(requester),
        "input": [{"type": _type(INPUT_QUESTIONNAIRE), "valueCanonical": questionnaire}],
    }
    task["performerType"] = [performer_concept(task)]
    if tid is not None:
        task["id"] = tid
        task["identifier"] = [{"system": IDENTIFIER_SYSTEM, "value": tid}]
    period = {k: v for k, v in (("start", period_start), ("end", period_end)) if v}
    if period:
        task["restriction"] = {"period": period}
    if based_on is not None:
        task["basedOn"] = [dict(based_on)]
    return task


def _has_type(element: Resource, code: str) -> bool:
    codings = (element.get("type") or {}).get("coding") or []
    return any(c.get("system") == SDC_TEMP and c.get("code") == code for c in codings)


def is_questionnaire_task(task: Resource) -> bool:
    codings = (task.get("code") or {}).get("coding") or []
    return any(c.get("system") == SDC_TEMP and c.get("code") == CODE for c in codings)


def questionnaire_of(task: Resource) -> str | None:
    """The canonical of the Questionnaire to complete (the `questionnaire` input), or None."""
    for item in task.get("input") or ():
        if isinstance(item, dict) and _has_type(item, INPUT_QUESTIONNAIRE):
            value = item.get("valueCanonical")
            return value if isinstance(value, str) else None
    return None


def questionnaire_url(task: Resource) -> str | None:
    """questionnaire_of() without its `|version`."""
    canonical = questionnaire_of(task)
    return canonical.partition("|")[0] if canonical else None


def response_of(task: Resource) -> str | None:
    """The reference of the QuestionnaireResponse that completed the Task, or None."""
    for item in task.get("output") or ():
        if isinstance(item, dict) and _has_type(item, OUTPUT_RESPONSE):
            ref = (item.get("valueReference") or {}).get("reference")
            return ref if isinstance(ref, str) else None
    return None


def period(task: Resource) -> tuple[str | None, str | None]:
    """restriction.period as (start, end), as written."""
    found = (task.get("restriction") or {}).get("period") or {}
    return found.get("start"), found.get("end")


def performer_concept(task: Resource) -> Resource:
    """The performerType a Task gets from its `owner`: Patient when the patient owns it (a
    self-report form), Healthcare professional otherwise."""
    owner = str((task.get("owner") or {}).get("reference", ""))
    system, code, display = PERFORMER_PATIENT if owner.startswith("Patient/") \
        else PERFORMER_CLINICIAN
    return {"coding": [{"system": system, "code": code, "display": display}]}


def performer_types(task: Resource) -> list[Resource]:
    """The Task's performerType; a Task stored before it was written (or by a client that
    leaves it out) has the one its `owner` implies."""
    found = task.get("performerType")
    if isinstance(found, list) and found and all(isinstance(c, dict) for c in found):
        return found
    return [performer_concept(task)]


def patient_performed(task: Resource) -> bool:
    """Whether the patient fills the form (performerType Patient): the Tasks reminders reach."""
    system, code, _ = PERFORMER_PATIENT
    return any((c.get("system"), c.get("code")) == (system, code)
               for concept in performer_types(task) for c in concept.get("coding") or ())


def is_open(task: Resource) -> bool:
    return task.get("status") in OPEN


def due(task: Resource) -> str | None:
    """The last instant (UTC, `YYYY-MM-DDTHH:MM:SS`) the Task is due by: the end of its
    period's end, so a Task due on 2026-11-11 is due all that day and overdue from the next."""
    return date_end_key(period(task)[1])


def overdue(task: Resource, now: datetime) -> bool:
    """Open and past its due instant (`now` timezone-aware)."""
    end = due(task)
    return is_open(task) and end is not None and end < now.strftime("%Y-%m-%dT%H:%M:%S")


def with_status(task: Resource, status: str, when: str, reason: str | None = None) -> Resource:
    """A copy with a new status (and the execution period it implies)."""
    out = {k: v for k, v in task.items() if k != "statusReason"}
    out["status"] = status
    execution = dict(out.get("executionPeriod") or {})
    if status == "in-progress":
        execution.setdefault("start", when)
    if status == "completed":
        execution.setdefault("start", when)
    if status in ("completed", "cancelled", "failed"):  # a Task never started has no start
        execution["end"] = when
    if execution:
        out["executionPeriod"] = execution
    out["lastModified"] = when
    if reason:
        out["statusReason"] = {"text": reason}
    return out


def completed_by(task: Resource, response: str, when: str) -> Resource:
    """The Task completed, the response (`QuestionnaireResponse/<id>`) as its output."""
    out = with_status(task, "completed", when)
    out["output"] = [{"type": _type(OUTPUT_RESPONSE), "valueReference": {"reference": response}}]
    return out


USAGE_CONTEXT_TYPE = "http://terminology.hl7.org/CodeSystem/usage-context-type"
SNOMED_PATIENT = ("http://snomed.info/sct", "116154003")


def is_self_report(questionnaire: Resource) -> bool:
    """Whether the patient fills the form (useContext `user` = SNOMED 116154003 Patient): a
    Task for it is owned by the patient and listed on the patient's page; a clinician-rated
    form's Task is owned by the clinician who asked for it."""
    for use in questionnaire.get("useContext") or ():
        code = use.get("code") or {}
        if code.get("system") != USAGE_CONTEXT_TYPE or code.get("code") != "user":
            continue
        codings = (use.get("valueCodeableConcept") or {}).get("coding") or []
        if any((c.get("system"), c.get("code")) == SNOMED_PATIENT for c in codings):
            return True
    return False
