"""Task create, read, search and versioned update (/fhir/Task): SDC Tasks asking a patient to
complete a form.

A token whose fhirUser is a Patient (the patient's own app) creates no Task; it may only start
(-> in-progress) or complete (with its own response) a Task it owns, and never out of on-hold
(a hold is the clinician's). A clinician-rated form's Task is never owned by the patient. Every
other caller with Task scopes may create, start, pause, cancel and complete, within its patient
context.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.task import Task
from flask import Blueprint, Response
from sqlalchemy import Connection

from mit_fhir import vocabulary
from mit_fhir.api.resources import add_read_and_search
from mit_fhir.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    Issue,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from mit_fhir.fhir import task as shape
from mit_fhir.fhir import task_checks
from mit_fhir.fhir.references import BadReference, parse, resource_patient
from mit_fhir.fhir.structure import check_structure
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize_resource, authorize_type, principal
from mit_fhir.store import repository
from mit_fhir.store.repository import new_id, now_instant, serialize
from mit_fhir.usecases import tasks
from mit_fhir.usecases.context import Context
from mit_fhir.web.context import ctx
from mit_fhir.web.http import base_url, fhir_response, if_match_version, read_resource

Resource = dict[str, Any]
bp = Blueprint("tasks", __name__, url_prefix="/fhir/Task")
# The statuses from which the patient's own app may start or complete a Task it owns.
PATIENT_MAY_MOVE = frozenset({"requested", "received", "accepted", "ready", "in-progress"})
add_read_and_search(bp, "Task")


def caller_reference() -> str | None:
    """The caller's fhirUser as a relative reference (`Practitioner/<id>`), or None."""
    text = principal().fhir_user
    if not text:
        return None
    parts = text.rstrip("/").split("/")
    try:
        return str(parse("/".join(parts[-2:]))) if len(parts) >= 2 else None
    except BadReference:
        return None


def patient_user() -> str | None:
    """`Patient/<id>` when the caller's fhirUser is a Patient (the patient's own app)."""
    ref = caller_reference()
    return ref if ref is not None and ref.startswith("Patient/") else None


def _unprocessable(issues: list[Issue]) -> Unprocessable:
    return Unprocessable("the Task cannot be accepted", issues)


def new_task(task: Resource, context: Context) -> Resource:
    """The Task to store for a create: checked, with the service's id, identifier and profile,
    and the defaults (requester: the caller; owner: by the form; performerType: by the owner;
    period: now + the window)."""
    check_structure(task, Task)
    if issues := task_checks.create_issues(task, context.catalogue.resolve):
        raise _unprocessable(issues)
    form = task_checks.form_of(task, context.catalogue.resolve)
    assert form is not None  # create_issues checked it
    requester = task.get("requester") or (
        {"reference": ref} if (ref := caller_reference()) else None)
    if requester is None:
        raise _unprocessable([Issue("requester is required when the token names no fhirUser",
                                    code="required", expression=("Task.requester",))])
    tid = new_id()
    ours = [i for i in task.get("identifier") or () if i.get("system") != shape.IDENTIFIER_SYSTEM]
    start, end = shape.period(task)
    start = start or now_instant()
    end = end or tasks.window_end(start, int(context.settings.get("TASK_WINDOW_DAYS", 14)))
    canonical = vocabulary.canonical(form)
    out = {k: v for k, v in task.items() if k not in ("id", "meta")}
    out.update({
        "id": tid, "meta": {"profile": [shape.PROFILE]},
        "identifier": [*ours, {"system": shape.IDENTIFIER_SYSTEM, "value": tid}],
        "requester": requester, "authoredOn": task.get("authoredOn") or now_instant(),
        "restriction": {**(task.get("restriction") or {}), "period": {"start": start, "end": end}},
        "input": [{**i, "valueCanonical": canonical} if i in task_checks.questionnaire_inputs(task)
                  else i for i in task["input"]],
    })
    out.setdefault("owner", requester if not shape.is_self_report(form)
                   else {"reference": out["for"]["reference"]})
    if not shape.is_self_report(form) and \
            str(out["owner"].get("reference", "")).startswith("Patient/"):
        raise _unprocessable([Issue("a clinician-rated form's Task is owned by a clinician, "
                                    "not a patient", code="business-rule",
                                    expression=("Task.owner",))])
    out.setdefault("performerType", [shape.performer_concept(out)])
    if issues := task_checks.period_issues(out):
        raise _unprocessable(issues)
    return out


@bp.post("")
def create() -> Response:
    """Create a Task (SDC Task Questionnaire: one served form for one Patient)."""
    audit.note("create", "Task")
    authorize_type("Task", "c")
    task = read_resource("Task")
    authorize_resource(task, "c")
    if patient_user() is not None:
        raise Forbidden("a patient's own app does not create Tasks")
    c = ctx()
    task = new_task(task, c)
    with c.store.transaction() as conn:
        stored = tasks.store_new(conn, c, task)
        audit.store(conn, [stored], 201)
    audit.stored()
    location = f"{base_url()}/Task/{stored['id']}/_history/1"
    return fhir_response(stored, 201, {"Location": location, "ETag": 'W/"1"'})


def _patient_may(patient_ref: str, stored: Resource, proposed: Resource) -> None:
    if (stored.get("owner") or {}).get("reference") != patient_ref:
        raise Forbidden("a patient's own app changes only the Tasks the patient owns")
    if proposed.get("status") not in ("in-progress", "completed"):
        raise Forbidden("a patient's own app only starts or completes a Task")
    if stored.get("status") not in PATIENT_MAY_MOVE:
        # A hold (or a draft) is the clinician's: the patient's app lifts none.
        raise Forbidden(f"a patient's own app does not move a Task out of "
                        f"{stored.get('status')}")


def _completion(conn: Connection, c: Context, stored: Resource, proposed: Resource) -> Resource:
    reference = shape.response_of(proposed) or ""
    kind, _, rid = reference.partition("/")
    response = repository.read(conn, "QuestionnaireResponse", rid) \
        if kind == "QuestionnaireResponse" and rid else None
    if response is None or resource_patient(response) != resource_patient(stored):
        # Another patient's response is answered as one that does not exist.
        raise _unprocessable([Issue("the output names no stored QuestionnaireResponse of the "
                                    "Task's patient",
                                    code="not-found", expression=("Task.output",))])
    return tasks.complete_with(conn, c, stored["id"], response, now_instant())


def updated(conn: Connection, c: Context, rid: str, proposed: Resource, version: int) -> Resource:
    """The Task after a status move (the stored one when nothing changes), under its lock."""
    serialize(conn, f"Task/{rid}")
    stored = repository.read(conn, "Task", rid)
    if stored is None:
        raise NotFound(f"Task/{rid[:64]} not found")
    authorize_resource(stored, "u")
    authorize_resource(proposed, "u")
    if int(stored["meta"]["versionId"]) != version:
        raise PreconditionFailed(f"the Task is no longer at version {version}")
    if changed := task_checks.changed_elements(stored, proposed):
        raise _unprocessable([Issue("only the status of a Task changes; this element is "
                                    "immutable", code="business-rule", expression=(f"Task.{n}",))
                              for n in changed])
    if (patient := patient_user()) is not None:
        _patient_may(patient, stored, proposed)
    if proposed.get("status") == stored.get("status"):
        return stored  # nothing to move: no new version
    if not shape.is_open(stored) and stored.get("status") != "draft":
        raise Conflict(f"the Task is {stored.get('status')}, no longer open")
    if (issue := task_checks.move_issue(stored, proposed)) is not None:
        raise _unprocessable([issue])
    if proposed["status"] == "completed":
        return _completion(conn, c, stored, proposed)
    reason = (proposed.get("statusReason") or {}).get("text")
    moved = shape.with_status(stored, proposed["status"], now_instant(), reason)
    return tasks.store_version(conn, c, moved, version)


@bp.put("/<rid>")
def update(rid: str) -> Response:
    """Move a Task's status (If-Match required; every other element is immutable)."""
    audit.note("update", "Task")
    authorize_type("Task", "u")
    proposed = read_resource("Task")
    if proposed.get("id") != rid:
        raise InvalidRequest("the Task's id must be the id in the URL")
    check_structure(proposed, Task)
    version = if_match_version("a Task")
    c = ctx()
    with c.store.transaction() as conn:
        stored = updated(conn, c, rid, proposed, version)
        audit.store(conn, [stored], 200)
    audit.stored()
    current = stored["meta"]["versionId"]
    return fhir_response(stored, 200, {
        "ETag": f'W/"{current}"',
        "Content-Location": f"{base_url()}/Task/{rid}/_history/{current}"})
