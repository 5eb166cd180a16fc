"""Assignment routes: the launched patient's Tasks and schedules, assigning, cancelling.

The clinician's page (/app/tasks) and its JSON API (/app/api/tasks...). Every write takes the
session's CSRF token and the launched patient only; the use cases (mit_fhir.usecases.tasks,
mit_fhir.usecases.schedules) store, index and queue for the EHR. Requester and author are the
session's fhirUser, as the relative reference the service stores.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from flask import Response, request

from mit_fhir.errors import Conflict, Forbidden
from mit_fhir.fhir import schedule
from mit_fhir.fhir import task as sdc
from mit_fhir.fhir.references import BadReference, parse, resource_patient
from mit_fhir.fhir.schedule import Activity
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize
from mit_fhir.store import repository
from mit_fhir.store.repository import now_instant
from mit_fhir.ui import assignments, i18n
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.forms import patient_of
from mit_fhir.ui.web import PageError, check_csrf, development_mode, page, require_session
from mit_fhir.usecases import schedules, tasks
from mit_fhir.usecases.demo_data import demo_data
from mit_fhir.web.context import ctx

REQUESTERS = ("Practitioner", "PractitionerRole")
CANCEL_REASON = "cancelled by the clinician"


def _may(resource_type: str, interaction: str, patient: str, lang: str) -> None:
    """guard.authorize, its refusal said plainly: the EHR decides what the app may write."""
    try:
        authorize(resource_type, interaction, patient)
    except Forbidden as exc:
        raise PageError(i18n.words(lang)["no_scope"].format(why=exc.message), 403) from None


def _lang() -> str:
    asked = request.args.get("lang", "en")
    return asked if asked in i18n.LANGUAGES else "en"


def _today() -> date:
    return datetime.now(UTC).date()


def _requester(data: dict[str, Any], lang: str) -> dict[str, str]:
    """The session's fhirUser as `Practitioner/<id>` (absolute on the EHR's base or relative)."""
    user = data.get("fhirUser")
    if not user and data.get("demo") and development_mode():
        # `make run` without an EHR: the demo's own (fictional) psychiatrist asks.

        return {"reference": str(demo_data()["clinician"]["reference"])}
    base = (data.get("endpoints") or {}).get("iss")
    try:
        ref = parse(user, REQUESTERS, base)
    except BadReference:
        raise PageError(i18n.words(lang)["no_requester"], 403) from None
    return {"reference": str(ref)}


def _forms(lang: str) -> list[dict[str, Any]]:
    catalogue = ctx().catalogue
    return [{"id": q["id"], "title": assignments.title(catalogue, q["url"], lang),
             "lang": assignments.title_lang(catalogue, q["url"], lang),
             "self": sdc.is_self_report(q)} for q in catalogue]


@bp.get("/tasks")
def assignments_page() -> Response:
    data = require_session()
    patient = patient_of(data)
    authorize("Task", "s", patient)
    lang = _lang()
    window = int(ctx().settings["TASK_WINDOW_DAYS"])
    today = _today()
    return page("tasks.html", title=i18n.words(lang)["tasks_nav"], lang=lang,
                words=i18n.words(lang), patient=patient, forms=_forms(lang), window=window,
                today=today.isoformat(), due=(today + timedelta(days=window)).isoformat(),
                languages=i18n.LANGUAGES)


@bp.get("/api/tasks")
def assignments_json() -> Response:
    data = require_session()
    patient = patient_of(data)
    audit.note("search-type", "Task")
    authorize("Task", "s", patient)
    authorize("CarePlan", "s", patient)
    audit.add_patient(patient)
    lang = _lang()
    with ctx().store.transaction() as conn:
        found = tasks.tasks_of(conn, patient)
        plans = schedules.schedules_of(conn, patient)
    audit.add([*found, *plans])
    catalogue = ctx().catalogue
    now = datetime.now(UTC)
    rows = assignments.task_rows(found, catalogue, lang, now)
    plan_rows = assignments.schedule_rows(plans, catalogue, lang, now)
    return _json({"tasks": rows, "schedules": plan_rows,
                  "synthetic": any(r["synthetic"] for r in [*rows, *plan_rows])})


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, content_type="application/json")


def _refused(exc: assignments.Refused, lang: str) -> Response:
    words = i18n.words(lang)
    issues = [words[key] for key, _ in exc.problems]
    # `items`: the page's fields the refusal names (app.js hands them on with the error).
    return _json({"error": issues[0] if issues else "refused", "issues": issues,
                  "items": sorted({f for _, f in exc.problems})}, 422)


def _names(forms: list[str], lang: str) -> str:
    catalogue = ctx().catalogue
    return ", ".join(assignments.title(catalogue, (catalogue.get(f) or {}).get("url"), lang)
                     for f in forms)


@bp.post("/api/tasks")
def assign_once() -> Response:
    data = require_session()
    check_csrf()
    patient = patient_of(data)
    audit.note("create", "Task")
    lang = _lang()
    _may("Task", "c", patient, lang)
    try:
        once = assignments.read_once(request.get_json(silent=True), ctx().catalogue, _today())
    except assignments.Refused as exc:
        return _refused(exc, lang)
    requester = _requester(data, lang)
    start = now_instant()
    # Due by the end of the chosen day: a Task due "on the 16th" is not overdue on the 16th.
    end = f"{once.due.isoformat()}T23:59:59Z"
    with ctx().store.transaction() as conn:
        stored = [tasks.assign(conn, ctx(), ctx().catalogue.get(f) or f, patient, requester,
                               start, end) for f in once.forms]
    audit.add(stored)
    message = i18n.words(lang)["assigned"].format(forms=_names(once.forms, lang),
                                                  date=once.due.isoformat())
    return _json({"tasks": [t["id"] for t in stored], "message": message}, 201)


@bp.post("/api/tasks/schedules")
def assign_schedule() -> Response:
    data = require_session()
    check_csrf()
    patient = patient_of(data)
    audit.note("create", "CarePlan")
    lang = _lang()
    _may("CarePlan", "c", patient, lang)
    try:
        plan = assignments.read_repeating(request.get_json(silent=True), ctx().catalogue)
    except assignments.Refused as exc:
        return _refused(exc, lang)
    author = _requester(data, lang)
    catalogue = ctx().catalogue
    activities = []
    for qid in plan.forms:
        questionnaire = catalogue.get(qid) or {}
        version = questionnaire.get("version")
        canonical = questionnaire["url"] + (f"|{version}" if version else "")
        activities.append(Activity(canonical, plan.every, plan.unit, plan.start, plan.end,
                                   plan.count))
    with ctx().store.transaction() as conn:
        stored = schedules.create(conn, ctx(), patient, author, activities)
    audit.add([stored])
    message = i18n.words(lang)["scheduled"].format(
        forms=_names(plan.forms, lang), cadence=assignments.cadence(plan.every, plan.unit, lang,
                                                   plan.count))
    return _json({"schedule": stored["id"], "message": message}, 201)


def _own(conn: Any, resource_type: str, rid: str, patient: str) -> dict[str, Any]:
    """The launched patient's Task or schedule, or 404 (another patient's, or a CarePlan that
    is no schedule, is not said to exist)."""
    found = repository.read(conn, resource_type, rid)
    if found is None or resource_patient(found) != patient or (
            resource_type == "CarePlan" and not schedule.is_schedule(found)):
        raise PageError("No such assignment.", 404)
    return found


def _close(resource_type: str, rid: str, close: Callable[[Any, str], dict[str, Any]],
           gone: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Close one of the launched patient's Tasks or schedules (CSRF, scope, audit checked):
    (it before, it after, the page's language); a 409 saying `gone` when it closed meanwhile
    (completed or cancelled by the patient, a schedule or a colleague; a schedule that ended)."""
    data = require_session()
    check_csrf()
    patient = patient_of(data)
    audit.note("update", resource_type)
    lang = _lang()
    _may(resource_type, "u", patient, lang)
    try:
        with ctx().store.transaction() as conn:
            found = _own(conn, resource_type, rid, patient)
            stored = close(conn, rid)
    except Conflict:
        raise PageError(i18n.words(lang)[gone], 409) from None
    audit.add([stored])
    return found, stored, lang


@bp.post("/api/tasks/<tid>/cancel")
def cancel_task(tid: str) -> Response:
    found, stored, lang = _close("Task", tid, lambda conn, rid: tasks.cancel(
        conn, ctx(), rid, now_instant(), CANCEL_REASON), "no_longer_open")
    form = assignments.title(ctx().catalogue, sdc.questionnaire_of(found), lang)
    return _json({"task": stored["id"], "status": stored["status"],
                  "message": i18n.words(lang)["cancelled"].format(form=form)})


@bp.post("/api/tasks/schedules/<cid>/cancel")
def cancel_schedule(cid: str) -> Response:
    _, stored, lang = _close("CarePlan", cid, lambda conn, rid: schedules.cancel(
        conn, ctx(), rid, now_instant()), "no_longer_running")
    rows = assignments.schedule_rows([stored], ctx().catalogue, lang, datetime.now(UTC))
    return _json({"schedule": stored["id"], "status": stored["status"],
                  "message": i18n.words(lang)["stopped"].format(
                      forms=rows[0]["forms"] if rows else "")})
