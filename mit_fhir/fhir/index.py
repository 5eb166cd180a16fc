"""Search-index rows (parameter, value) and sort keys of the resources the service stores."""

from __future__ import annotations

from typing import Any

from mit_fhir.fhir import task as tasks
from mit_fhir.fhir.search import (
    PERIOD_OPEN_END,
    PERIOD_OPEN_START,
    Row,
    date_end_key,
    date_key,
    reference_rows,
    token_rows,
)

Resource = dict[str, Any]


def _subject_rows(res: Resource) -> list[Row]:
    rows = reference_rows("subject", res.get("subject"))
    return rows + [("patient", v) for _, v in rows if v.startswith("Patient/")]


QR_STATUS_SYSTEM = "http://hl7.org/fhir/questionnaire-answers-status"
OBS_STATUS_SYSTEM = "http://hl7.org/fhir/observation-status"


def _status_rows(system: str, status: str | None) -> list[Row]:
    return token_rows("status", {"coding": [{"system": system, "code": status}]}) if status else []


def response_index(qr: Resource, questionnaire: Resource | None = None) -> list[Row]:
    """QuestionnaireResponse: subject, patient, questionnaire, authored, status, _id.

    The questionnaire is indexed by the canonical URL of the form it resolved to, so a response
    that named it relatively ("Questionnaire/phq-9") is found by the form's URL too.
    """
    rows = _subject_rows(qr)
    rows.append(("questionnaire", qr["questionnaire"].partition("|")[0]))
    if questionnaire and questionnaire.get("url"):
        rows.append(("questionnaire", questionnaire["url"]))
    rows += _status_rows(QR_STATUS_SYSTEM, qr.get("status"))
    rows += identifier_rows(qr)
    if (authored := date_key(qr.get("authored"))) is not None:
        rows.append(("authored", authored))
    rows.append(("_id", qr["id"]))
    return rows


def observation_index(obs: Resource) -> list[Row]:
    """Observation: subject, patient, code, date, derived-from, status, _id."""
    rows = _subject_rows(obs)
    rows += token_rows("code", obs.get("code"))
    if (effective := date_key(obs.get("effectiveDateTime"))) is not None:
        rows.append(("date", effective))
    for ref in obs.get("derivedFrom", []):
        rows += reference_rows("derived-from", ref)
    rows += _status_rows(OBS_STATUS_SYSTEM, obs["status"])
    rows += identifier_rows(obs)
    rows.append(("_id", obs["id"]))
    return rows


def sort_date(res: Resource) -> str | None:
    """The instant `_sort=date` orders by (a Task's: its due date)."""
    if res.get("resourceType") == "Task":
        return tasks.due(res)
    return date_key(res.get("authored") or res.get("effectiveDateTime"))


TASK_STATUS_SYSTEM = tasks.STATUS_SYSTEM


def task_index(task: Resource) -> list[Row]:
    """Task: subject and patient (its `for`), status, code, questionnaire (the canonical of its
    input, without version), period (restriction.period: a start and an end row, open ends as
    the extremes), requester, owner, performer (performerType, else the one `owner` implies),
    based-on, authored-on, identifier, _id."""
    rows = reference_rows("subject", task.get("for"))
    rows += [("patient", v) for _, v in rows if v.startswith("Patient/")]
    rows += _status_rows(TASK_STATUS_SYSTEM, task.get("status"))
    rows += token_rows("code", task.get("code"))
    if (url := tasks.questionnaire_url(task)) is not None:
        rows.append(("questionnaire", url))
    start, end = tasks.period(task)
    rows.append(("period:start", date_key(start) or PERIOD_OPEN_START))
    rows.append(("period:end", date_end_key(end) or PERIOD_OPEN_END))
    rows += reference_rows("requester", task.get("requester"))
    rows += reference_rows("owner", task.get("owner"))
    for concept in tasks.performer_types(task):
        rows += token_rows("performer", concept)
    for ref in task.get("basedOn") or ():
        rows += reference_rows("based-on", ref)
    if (authored := date_key(task.get("authoredOn"))) is not None:
        rows.append(("authored-on", authored))
    rows += identifier_rows(task)
    rows.append(("_id", task["id"]))
    return rows


def plan_index(res: Resource) -> list[Row]:
    """MedicationRequest, CarePlan, CareTeam: subject, patient, identifier, status, codes, _id."""
    rows = _subject_rows(res) + identifier_rows(res)
    if res.get("status"):
        rows += [("status:code", res["status"])]
    if res.get("intent"):
        rows += [("intent:code", res["intent"])]
    rows += token_rows("code", res.get("medicationCodeableConcept"))
    for category in res.get("category", []):
        rows += token_rows("category", category)
    rows.append(("_id", res["id"]))
    return rows


def identifier_rows(res: Resource) -> list[Row]:
    """identifier token rows of a QuestionnaireResponse (0..1) or an Observation (0..*)."""
    found = res.get("identifier")
    items = [found] if isinstance(found, dict) else (found or [])
    rows: list[Row] = []
    for ident in items:
        if ident.get("value"):
            rows += token_rows("identifier", {"coding": [{"system": ident.get("system", ""),
                                                          "code": ident["value"]}]})
    return rows
