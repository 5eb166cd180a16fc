"""The patient's own pages: /app/my (open Tasks), filling one, and the locked hand-over mode."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, jsonify, redirect, request, url_for
from markupsafe import Markup, escape
from werkzeug.wrappers import Response as BaseResponse

from mit_fhir.errors import FhirError
from mit_fhir.fhir import task as fhir_task
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.references import resource_patient
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize
from mit_fhir.store import repository
from mit_fhir.ui import i18n, sessions
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.forms import patient_of
from mit_fhir.ui.launch import mark_handed_over
from mit_fhir.ui.web import (
    PageError,
    check_csrf,
    cookie,
    page,
    require_patient_session,
    require_session,
    set_cookie,
)
from mit_fhir.usecases import tasks
from mit_fhir.web.context import ctx

Resource = dict[str, Any]
MAX_HANDOVER = 20  # Tasks one hand-over may carry: a session of forms, not a worklist


# The crisis numbers the safety message names ("112", "02 2327 2327", "116 123").
_PHONE = re.compile(r"(?<![\w+])(\d{2,3}(?: \d{3,4}){0,2})(?![\w])")


def tel_links(text: str) -> Markup:
    """The message with each phone number a `tel:` link (one tap to call on a phone)."""
    parts = _PHONE.split(text)  # text, number, text, number, ..., text
    return Markup("").join(
        Markup('<a href="tel:{}">{}</a>').format(p.replace(" ", ""), p) if i % 2 else escape(p)
        for i, p in enumerate(parts))


def owner_reference(patient: str) -> str:
    return f"Patient/{patient}"


def _open_own(task: Resource | None, patient: str) -> bool:
    """An open questionnaire Task of this patient that the patient is to fill."""
    return bool(task and fhir_task.is_questionnaire_task(task) and fhir_task.is_open(task)
                and resource_patient(task) == patient
                and (task.get("owner") or {}).get("reference") == owner_reference(patient))


@bp.post("/api/handover")
def handover() -> BaseResponse:
    """A clinician hands the device to the launched patient for chosen open Tasks: a NEW
    session (new cookie; the clinician's row deleted) with role `handover`, those Tasks only."""
    data = require_session()
    check_csrf()
    patient = patient_of(data)
    body = request.get_json(silent=True)
    chosen = body.get("tasks") if isinstance(body, dict) else None
    if not (isinstance(chosen, list) and chosen and len(chosen) <= MAX_HANDOVER
            and all(isinstance(t, str) and 0 < len(t) <= 64 for t in chosen)):
        raise PageError(f'send {{"tasks": [task ids]}}: 1 to {MAX_HANDOVER} Task ids', 400)
    ids = list(dict.fromkeys(chosen))
    authorize("Task", "r", patient)
    audit.note("read", "Task")
    audit.add_patient(patient)
    seconds = current_app.config["SMART_SESSION_SECONDS"]
    with ctx().store.transaction() as conn:
        found = {t["id"]: t for t in repository.read_many(conn, [("Task", i) for i in ids])}
        refused = sum(1 for i in ids if not _open_own(found.get(i), patient))
        if refused:
            raise PageError(f"{refused} of the chosen Tasks are not open forms of this "
                            "patient to fill", 422)
        locked = {"role": "handover", "patient": patient, "tasks": ids,
                  "csrf": secrets.token_urlsafe(32), "handed_over_by": data.get("fhirUser"),
                  "iss": (data.get("endpoints") or {}).get("iss")}
        token = sessions.create(conn, locked, seconds)
        sessions.drop(conn, cookie())
    resp = jsonify({"url": url_for("ui.my")})
    set_cookie(resp, token, seconds)
    mark_handed_over(resp)
    return resp


def _tasks(data: Resource) -> list[Resource]:
    """What the page lists: the patient's own open Tasks (hand-over: only those handed)."""
    patient = str(data["patient"])
    authorize("Task", "r", patient)
    with ctx().store.transaction() as conn:
        if data.get("role") == "handover":
            found = repository.read_many(conn, [("Task", i) for i in data.get("tasks", [])])
            by_id = {t["id"]: t for t in found}
            listed = [by_id[i] for i in data.get("tasks", []) if i in by_id]
        else:
            listed = tasks.open_tasks(conn, patient, owner=owner_reference(patient))
    return [t for t in listed if _open_own(t, patient)]


def task_of(data: Resource, tid: str) -> Resource:
    """One Task the session may fill, or PageError 404 (also for another patient's Task)."""
    if data.get("role") == "handover" and tid not in data.get("tasks", []):
        raise PageError("This form is not one to fill here.", 404)
    patient = str(data["patient"])
    with ctx().store.transaction() as conn:
        found = repository.read(conn, "Task", tid)
    if found is None or resource_patient(found) != patient \
            or (found.get("owner") or {}).get("reference") != owner_reference(patient):
        raise PageError("This form is not one to fill here.", 404)
    authorize("Task", "r", patient)
    return found


def _resolved(task: Resource) -> Resource | None:
    """The Task's form: the version it names, else the catalogue's current one of its URL."""
    catalogue = ctx().catalogue
    return catalogue.resolve(fhir_task.questionnaire_of(task) or "") or \
        catalogue.resolve(fhir_task.questionnaire_url(task) or "")


def form_of(task: Resource) -> Resource:
    found = _resolved(task)
    if found is None:
        raise PageError("This form is not available.", 404)
    return found


def lang_of(questionnaire: Resource | None = None) -> str:
    asked = request.args.get("lang") or request.accept_languages.best_match(
        list(i18n.WORDS)) or "en"
    if asked not in i18n.WORDS:
        asked = "en"
    if questionnaire is not None and asked not in i18n.languages(questionnaire):
        return str(questionnaire.get("language", "en"))
    return asked


def listed(task: Resource, lang: str, now: datetime) -> Resource:
    """A Task as the patient's page shows it: the form's title, due date, overdue."""
    questionnaire = _resolved(task)
    title = (i18n.translated({k: questionnaire.get(k) for k in ("title", "_title", "language")},
                             lang if lang in i18n.languages(questionnaire) else
                             questionnaire.get("language", "en")).get("title")
             if questionnaire else None)
    due = fhir_task.due(task)
    return {"id": task["id"], "title": title or "", "due": due[:10] if due else None,
            "due_text": i18n.long_date(due, lang) if due else None,
            "overdue": fhir_task.overdue(task, now), "started": task.get("status") ==
            "in-progress"}


@bp.get("/my")
def my() -> Response:
    """The patient's open forms, due first; in hand-over mode only the handed ones, then the
    'give the device back' page."""
    data = require_patient_session()
    lang = lang_of()
    words = i18n.words(lang)
    now = datetime.now(UTC)
    items = [] if data.get("ended") else [listed(t, lang, now) for t in _tasks(data)]
    handover = data.get("role") == "handover"
    if handover and not items:
        return page("patient_end.html", title=words["give_back_title"], lang=lang,
                    words=words, mode="handover")
    scores = own_scores(str(data["patient"])) \
        if current_app.config["PATIENT_SCORES"] and not handover else []
    return page("patient.html", title=words["my_title"], lang=lang, words=words, items=items,
                mode=data.get("role"), languages=i18n.LANGUAGES, scores=scores)


SCORES_SHOWN = 10  # the latest scores only: a reminder, not the clinician's chart


def own_scores(patient: str) -> list[Resource]:
    """The patient's own latest scores, plainly: the score's name, the day, the number; none
    when the launch was not granted patient/Observation.rs (the page stays the forms list)."""
    try:
        authorize("Observation", "r", patient)
    except FhirError:
        return []
    audit.note("read", "Observation")
    audit.add_patient(patient)
    with ctx().store.transaction() as conn:
        found = repository.search(conn, "Observation", [
            Criterion("patient", "eq", (f"Patient/{patient}",))])
    shown = [o for o in found if "hasMember" not in o
             and isinstance((o.get("valueQuantity") or {}).get("value"), int | float)]
    shown.sort(key=lambda o: str(o.get("effectiveDateTime") or ""), reverse=True)
    return [{"title": o.get("code", {}).get("text") or ((o.get("code", {}).get("coding")
                                                         or [{}])[0].get("display") or ""),
             "date": str(o.get("effectiveDateTime") or "")[:10],
             "value": o["valueQuantity"]["value"]} for o in shown[:SCORES_SHOWN]]


@bp.post("/api/my/end")
def end_handover() -> Response:
    """The patient is done: the hand-over session shows only the give-back page from now."""
    data = require_patient_session()
    check_csrf()
    if data.get("role") == "handover":
        with ctx().store.transaction() as conn:
            sessions.save(conn, cookie() or "", {**data, "ended": True, "tasks": []})
    return jsonify({"url": url_for("ui.my")})


@bp.get("/my/tasks/<tid>")
def my_task(tid: str) -> BaseResponse:
    data = require_patient_session()
    task = task_of(data, tid)
    if not fhir_task.is_open(task):
        return redirect(url_for("ui.my"), 303)
    questionnaire = form_of(task)
    # The page's own words (menu, buttons, status, safety) stay in the language chosen; the
    # form is shown in it when it has that translation, else in its own, and the page says so.
    lang, form_lang = lang_of(), lang_of(questionnaire)
    words = i18n.words(lang)
    notice = None if form_lang == lang else words["no_translation"].format(
        shown=i18n.NAMES_IN.get(lang, i18n.LANGUAGES).get(form_lang, form_lang))
    head = i18n.translated({k: questionnaire.get(k) for k in (
        "title", "_title", "copyright", "_copyright", "language")}, form_lang)
    return page("form.html", title=head["title"] or words["my_title"],
                copyright=head.get("copyright"), lang=lang, form_lang=form_lang, words=words,
                mode="patient", patient=data["patient"], task=tid, qid=questionnaire["id"],
                notice=notice, notice_lang=lang, licensed=None, asked_words=words,
                safety=tel_links(words["safety"]),
                safety_contact=tel_links(words["safety_contact"]),
                languages=i18n.LANGUAGES)
