"""The patient filling a Task's form: its Questionnaire, drafts per Task, the submission."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, jsonify, request
from sqlalchemy import Connection, delete, select

from mit_fhir.errors import FhirError
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize
from mit_fhir.store import repository
from mit_fhir.store.repository import now_instant
from mit_fhir.ui import presentation
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.forms import fill_identifier, recorded_alerts, refused, served_questionnaire
from mit_fhir.ui.patient import form_of, task_of
from mit_fhir.ui.tables import ui_draft
from mit_fhir.ui.web import PageError, check_csrf, require_patient_session
from mit_fhir.usecases import tasks
from mit_fhir.usecases.submissions import submit_once, validated
from mit_fhir.web.context import ctx

Resource = dict[str, Any]


def _draft_key(patient: str, qid: str, tid: str) -> tuple[Any, ...]:
    # One draft per Task: its author column names the Task, not a person.
    return (ui_draft.c.patient == patient, ui_draft.c.questionnaire_id == qid,
            ui_draft.c.author == f"Task/{tid}")


@bp.get("/api/my/tasks/<tid>/questionnaire")
def my_questionnaire(tid: str) -> Response:
    data = require_patient_session()
    return served_questionnaire(form_of(task_of(data, tid)), presentation.for_patient)


def _prepared(task: Resource, questionnaire: Resource, patient: str, status: str) -> Resource:
    """The posted answers as the patient's response: form from the Task, subject, author and
    source the Patient; whatever the page sent for those is ignored."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("resourceType") != "QuestionnaireResponse":
        raise PageError("send a QuestionnaireResponse", 400)
    kept = ("resourceType", "item", "language", "text")
    qr: Resource = {k: v for k, v in body.items() if k in kept}
    if (fill := fill_identifier(body.get("identifier"))) is not None:
        qr["identifier"] = fill
    version = questionnaire.get("version")
    qr["questionnaire"] = questionnaire["url"] + (f"|{version}" if version else "")
    me = {"reference": f"Patient/{patient}"}
    qr.update(subject=me, author=dict(me), source=dict(me), status=status,
              authored=now_instant())
    return qr


@bp.route("/api/my/tasks/<tid>/draft", methods=["GET", "PUT"])
def my_draft(tid: str) -> Response:
    data = require_patient_session()
    patient = str(data["patient"])
    task = task_of(data, tid)
    questionnaire = form_of(task)
    key = _draft_key(patient, questionnaire["id"], tid)
    audit.note("read" if request.method == "GET" else "update", "QuestionnaireResponse")
    audit.add_patient(patient)
    if request.method == "GET":
        authorize("QuestionnaireResponse", "r", patient)
        with ctx().store.transaction() as conn:
            row = conn.execute(select(ui_draft.c.content).where(*key)).first()
        return Response(row.content if row else b"null", 200, content_type="application/json")
    check_csrf()
    authorize("QuestionnaireResponse", "u", patient)
    authorize("Task", "u", patient)
    qr = _prepared(task, questionnaire, patient, "in-progress")
    try:
        validated(ctx().catalogue, qr)
    except FhirError as exc:
        if exc.status >= 500:
            raise
        return refused(exc, questionnaire["id"])
    with ctx().store.transaction() as conn:
        # The first draft moves the Task to in-progress, in the draft's transaction.
        tasks.start(conn, ctx(), tid, qr["authored"])
        conn.execute(delete(ui_draft).where(*key))
        conn.execute(ui_draft.insert().values(
            patient=patient, questionnaire_id=questionnaire["id"], author=f"Task/{tid}",
            content=orjson.dumps(qr).decode(), updated_at=qr["authored"]))
    return jsonify({"saved": qr["authored"]})


@bp.post("/api/my/tasks/<tid>/response")
def my_response(tid: str) -> Response:
    """Store the response and complete the Task in one transaction; a retry of the same fill
    answers with what was stored. The patient gets a thank-you, and a safety message when
    the answers raised a risk alert: never a score."""
    data = require_patient_session()
    check_csrf()
    patient = str(data["patient"])
    audit.note("create", "QuestionnaireResponse")
    authorize("QuestionnaireResponse", "c", patient)
    authorize("Task", "u", patient)
    task = task_of(data, tid)
    questionnaire = form_of(task)
    qr = _prepared(task, questionnaire, patient, "completed")

    def complete(conn: Connection, written: list[Resource]) -> None:
        response = next(r for r in written if r["resourceType"] == "QuestionnaireResponse")
        tasks.complete_with(conn, ctx(), tid, response, response["authored"])

    try:
        stored, _ = submit_once(ctx(), qr, on_stored=complete, set_per_attempt=("authored",))
    except FhirError as exc:
        if exc.status >= 500:
            raise
        return refused(exc, questionnaire["id"])
    audit.add([stored])
    with ctx().store.transaction() as conn:
        conn.execute(delete(ui_draft).where(*_draft_key(patient, questionnaire["id"], tid)))
        observations = repository.search(conn, "Observation", [Criterion(
            "derived-from", "eq", (f"QuestionnaireResponse/{stored['id']}",))])
    return jsonify({"response": stored["id"], "safety": bool(recorded_alerts(observations))})
