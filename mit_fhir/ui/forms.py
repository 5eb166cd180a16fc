"""Form routes: the list, one form in LHC-Forms, its drafts and its submission."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from flask import Response, jsonify, request
from sqlalchemy import delete, select

from mit_fhir.errors import FhirError
from mit_fhir.fhir import alerts
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.items import walk_items
from mit_fhir.security import audit
from mit_fhir.security.guard import authorize
from mit_fhir.store import repository
from mit_fhir.store.repository import now_instant
from mit_fhir.ui import i18n, messages, presentation
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.data import change_of
from mit_fhir.ui.tables import ui_draft
from mit_fhir.ui.web import PageError, check_csrf, page, require_session
from mit_fhir.usecases.catalogue import licensed_slots, with_wording
from mit_fhir.usecases.submissions import submit_once, validated
from mit_fhir.web.context import ctx


def patient_of(data: dict[str, Any]) -> str:
    """The launched patient (the EHR's context), or PageError for a launch without one."""
    if not data.get("patient"):
        raise PageError("The EHR launched the app without a patient in context.", 400)
    return str(data["patient"])


def _form(qid: str) -> dict[str, Any]:
    found = ctx().catalogue.get(qid)
    if found is None:
        raise PageError("No such form.", 404)
    return found


@bp.get("/")
def forms() -> Response:
    data = require_session()
    patient = patient_of(data)
    items = [{"id": q["id"], "title": q.get("title") or q["id"],
              "languages": i18n.languages(q)} for q in ctx().catalogue]
    return page("forms.html", title="Forms", forms=items, patient=patient,
                languages=i18n.LANGUAGES)


def _unworded(questionnaire: dict[str, Any], served: dict[str, Any], lang: str) -> int:
    """How many licensed-text slots still show the placeholder text in `lang`."""
    def texts(q: dict[str, Any]) -> dict[str, Any]:
        return {i["linkId"]: i.get("text") for i in walk_items(
            i18n.translated(q, lang).get("item", []))}

    before, after = texts(questionnaire), texts(served)
    return sum(1 for link in licensed_slots(questionnaire) if before[link] == after[link])


def _licensed(qid: str, questionnaire: dict[str, Any], lang: str) -> dict[str, Any] | None:
    """What the form page tells a clinician when the licensed wording is not loaded."""
    if not licensed_slots(questionnaire):
        return None
    with ctx().store.transaction() as conn:
        missing = _unworded(questionnaire, with_wording(conn, questionnaire), lang)
    if not missing:
        return None
    language = "" if lang == questionnaire.get("language", "en") else f" --language {lang}"
    return {"missing": missing, "template": f"mit-fhir wording template {qid} > {qid}.csv",
            "load": f"mit-fhir wording load {qid} {qid}.csv{language}"}


@bp.get("/forms/<qid>")
def form(qid: str) -> Response:
    data = require_session()
    patient = patient_of(data)
    questionnaire = _form(qid)
    own = questionnaire.get("language", "en")
    asked = request.args.get("lang", own)
    # A form without the language asked for is shown in its own, said in the language asked
    # for (English where the page has no words in it): never an error page in another language.
    lang = asked if asked in i18n.languages(questionnaire) else own
    notice = None if lang == asked else i18n.words(asked)["no_translation"].format(
        shown=i18n.NAMES_IN.get(asked, i18n.LANGUAGES).get(own, own))
    head = i18n.translated({k: questionnaire.get(k) for k in (
        "title", "_title", "copyright", "_copyright", "language")}, lang)
    return page("form.html", title=head["title"] or qid, copyright=head.get("copyright"),
                qid=qid, lang=lang, patient=patient, words=i18n.words(lang),
                notice=notice, notice_lang=asked if asked in i18n.WORDS else "en",
                asked_words=i18n.words(asked),
                licensed=_licensed(qid, questionnaire, lang),
                languages={k: v for k, v in i18n.LANGUAGES.items()
                           if k in i18n.languages(questionnaire)})


@bp.get("/api/forms/<qid>/questionnaire")
def questionnaire_json(qid: str) -> Response:
    require_session()
    return served_questionnaire(_form(qid), presentation.for_renderer)


def served_questionnaire(questionnaire: dict[str, Any],
                         shown: Callable[..., dict[str, Any]]) -> Response:
    """The form as LHC-Forms gets it: licensed wording loaded, in the asked language (404 for
    one it lacks), laid out by `shown` (presentation's clinician or patient copy)."""
    with ctx().store.transaction() as conn:
        served = with_wording(conn, questionnaire)
    lang = request.args.get("lang", served.get("language", "en"))
    if lang not in i18n.languages(questionnaire):
        raise PageError("no such translation", 404)
    # grid=0: the page asks for plain lists where a grid would not fit (a phone).
    grid = request.args.get("grid", "1") != "0"
    return jsonify(shown(i18n.translated(served, lang), grid=grid))


def refused(exc: FhirError, qid: str) -> Response:
    """A refusal of the posted form, each issue naming the question as the person sees it
    (also on the patient's pages, ui/patient_forms.py)."""
    lang = request.args.get("lang", "en")
    questionnaire = _form(qid)
    if lang not in i18n.languages(questionnaire):
        lang = questionnaire.get("language", "en")
    shown = i18n.translated(questionnaire, lang)
    plain = messages.plain(exc, shown, lang)
    detail = [i.diagnostics for i in exc.issues]
    return Response(orjson.dumps({"error": plain[0] if plain else exc.message, "issues": plain,
                                  "items": messages.items_named(exc, shown),
                                  "detail": detail}),
                    exc.status, content_type="application/json")


def _prepared(qid: str, data: dict[str, Any], status: str) -> dict[str, Any]:
    """The posted response, with what the session decides: form, subject, author, status."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("resourceType") != "QuestionnaireResponse":
        raise PageError("send a QuestionnaireResponse", 400)
    questionnaire = _form(qid)
    qr = {k: v for k, v in body.items() if k not in ("id", "meta", "identifier", "contained")}
    if (fill := fill_identifier(body.get("identifier"))) is not None:
        qr["identifier"] = fill
    version = questionnaire.get("version")
    qr["questionnaire"] = questionnaire["url"] + (f"|{version}" if version else "")
    qr["subject"] = {"reference": f"Patient/{patient_of(data)}"}
    if data.get("fhirUser"):
        qr["author"] = {"reference": data["fhirUser"]}
    else:
        qr.pop("author", None)
    if data.get("encounter"):
        qr["encounter"] = {"reference": f"Encounter/{data['encounter']}"}
    qr["status"] = status
    qr["authored"] = now_instant()
    return qr


# The page names each fill of a form with a fresh UUID (form.js), sent with every attempt to
# submit it: the service stores a fill once, and answers a retry with what it stored.
FILL_SYSTEM = "urn:ietf:rfc:3986"
_FILL_VALUE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                         r"[0-9a-f]{12}")


def fill_identifier(sent: Any) -> dict[str, str] | None:
    """The page's identifier of this fill, or None when the page sent none (an older page)."""
    if sent is None:
        return None
    if not (isinstance(sent, dict) and sent.get("system") == FILL_SYSTEM
            and isinstance(sent.get("value"), str) and _FILL_VALUE.fullmatch(sent["value"])):
        raise PageError("the identifier of the fill must be a urn:uuid (RFC 3986)", 400)
    return {"system": FILL_SYSTEM, "value": sent["value"]}


def _author(data: dict[str, Any]) -> str:
    return str(data.get("fhirUser") or data.get("sub") or "unknown")


@bp.post("/api/forms/<qid>/responses")
def submit_response(qid: str) -> Response:
    data = require_session()
    check_csrf()
    audit.note("create", "QuestionnaireResponse")
    patient = patient_of(data)
    authorize("QuestionnaireResponse", "c", patient)
    qr = _prepared(qid, data, "completed")
    try:
        # `authored` is the instant of each attempt: a retry of the same fill differs only there.
        stored, _ = submit_once(ctx(), qr, set_per_attempt=("authored",))
    except FhirError as exc:
        if exc.status >= 500:
            raise
        return refused(exc, qid)
    audit.add([stored])
    with ctx().store.transaction() as conn:
        conn.execute(delete(ui_draft).where(ui_draft.c.patient == patient,
                                            ui_draft.c.questionnaire_id == qid,
                                            ui_draft.c.author == _author(data)))
        observations = repository.search(conn, "Observation", [Criterion(
            "derived-from", "eq", (f"QuestionnaireResponse/{stored['id']}",))])
    return jsonify({"response": stored["id"], "scores": _scores(observations),
                    "alerts": recorded_alerts(observations)})


def recorded_alerts(observations: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The risk alerts the service recorded on the response's panel (fhir/alerts.py)."""
    return [a.as_json() for obs in observations if "hasMember" in obs
            for a in alerts.recorded(obs)]


def _scores(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scores of one response as the page shows them (the panel itself left out)."""
    out = []
    for obs in observations:
        if "hasMember" in obs:
            continue
        change = change_of(obs)
        value = obs.get("valueQuantity", {}).get("value")
        if value is None:
            value = (obs.get("valueCodeableConcept") or {}).get("text") or (
                (obs.get("valueCodeableConcept") or {}).get("coding") or [{}])[0].get("display")
        coding = (obs.get("code", {}).get("coding") or [{}])[0]
        interpretation = ((obs.get("interpretation") or [{}])[0].get("coding") or [{}])[0]
        out.append({"code": coding.get("code"),
                    "display": obs.get("code", {}).get("text") or coding.get("display"),
                    "value": value,
                    # A score with cutoff parameters but no change yet is the baseline.
                    "category": change["category"] or (
                        "baseline" if obs.get("referenceRange") else None),
                    "reliable": change["reliable"], "flag": interpretation.get("code")})
    return out


@bp.route("/api/forms/<qid>/draft", methods=["GET", "PUT"])
def draft(qid: str) -> Response:
    data = require_session()
    patient = patient_of(data)
    _form(qid)
    key = (ui_draft.c.patient == patient, ui_draft.c.questionnaire_id == qid,
           ui_draft.c.author == _author(data))
    # Drafts are patient data too: reads and saves are audited like the FHIR API's.
    audit.note("read" if request.method == "GET" else "update", "QuestionnaireResponse")
    audit.add_patient(patient)
    if request.method == "GET":
        authorize("QuestionnaireResponse", "r", patient)
        with ctx().store.transaction() as conn:
            row = conn.execute(select(ui_draft.c.content).where(*key)).first()
        if row is None:
            return Response(b"null", 200, content_type="application/json")
        return Response(row.content, 200, content_type="application/json")
    check_csrf()
    authorize("QuestionnaireResponse", "u", patient)
    qr = _prepared(qid, data, "in-progress")
    try:
        validated(ctx().catalogue, qr)
    except FhirError as exc:
        if exc.status >= 500:
            raise
        return refused(exc, qid)
    with ctx().store.transaction() as conn:
        conn.execute(delete(ui_draft).where(*key))
        conn.execute(ui_draft.insert().values(
            patient=patient, questionnaire_id=qid, author=_author(data),
            content=orjson.dumps(qr).decode(), updated_at=qr["authored"]))
    return jsonify({"saved": qr["authored"]})
