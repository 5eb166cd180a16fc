"""Request plumbing of the SMART pages: the session cookie, CSRF, page headers, the principal."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from flask import Response, current_app, g, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from mit_fhir.security.guard import is_loopback
from mit_fhir.security.scopes import Principal, parse_scopes
from mit_fhir.ui import i18n, sessions, smart
from mit_fhir.usecases.demo_data import demo_data
from mit_fhir.vocabulary import ACCEPTED_JSON
from mit_fhir.web.context import ctx

CSRF_HEADER = "X-CSRF-Token"


class PageError(Exception):
    """Shown to the person as a page (or JSON for the page's own API) with a status."""

    def __init__(self, message: str, status: int = 400,
                 link: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.link = link  # (href, text): where the person can go instead


def content_security_policy() -> str:
    """Self-hosted scripts and styles only; framing only by the configured EHR origins."""
    ancestors = current_app.config["FRAME_ANCESTORS"] or "'none'"
    # LHC-Forms (Angular + ng-zorro) sets style attributes at run time: styles need
    # 'unsafe-inline'; scripts never do.
    return ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            f"base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")


def page(template: str, status: int = 200, **values: Any) -> Response:
    values.setdefault("words", i18n.words(values.get("lang") or "en"))
    html = render_template(template, csrf=(g.get("ui_session") or {}).get("csrf", ""),
                           context=(g.get("ui_session") or {}), **values)
    resp = Response(html, status, content_type="text/html; charset=utf-8")
    resp.headers["Content-Security-Policy"] = content_security_policy()
    return resp


def set_cookie(resp: BaseResponse, token: str, max_age: int) -> None:
    framed = bool(current_app.config["FRAME_ANCESTORS"])
    # Inside an EHR's iframe the app is a third party: only SameSite=None cookies reach it,
    # and browsers that block third-party cookies still keep a Partitioned one (CHIPS), kept
    # apart per embedding EHR site.
    resp.set_cookie(sessions.COOKIE, token, max_age=max_age, path="/app", secure=True,
                    httponly=True, samesite="None" if framed else "Lax", partitioned=framed)


def cookie() -> str | None:
    return request.cookies.get(sessions.COOKIE)


def new_session(token_data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    data = {**token_data, "csrf": secrets.token_urlsafe(32)}
    with ctx().store.transaction() as conn:
        token = sessions.create(conn, data, current_app.config["SMART_SESSION_SECONDS"])
    return token, data


DEVELOPMENT_SESSION: dict[str, Any] = {"development": True, "csrf": "", "patient": None,
                                        "endpoints": None}
DEMO_SESSION_SECONDS = 8 * 3600  # a working day of trying the forms


def development_mode() -> bool:
    """MIT_FHIR_AUTH=none and a loopback caller (the guard's rule for the API too)."""
    return current_app.config["AUTH"] == "none" and is_loopback(request.remote_addr)


def demo_patient() -> str:
    """The demo patient `make run` loads (mit_fhir/data/demo.json)."""

    return str(demo_data()["patient"]["id"])


def _demo_launch(role: str = "clinician") -> dict[str, Any]:
    """A launch without an EHR for the demo patient: a real session (cookie, CSRF token) so
    that a newcomer can fill and submit the forms; set on the response by `set_demo_cookie`.
    `role` "patient" is the patient's own view of the same demo patient."""
    data = {**DEVELOPMENT_SESSION, "patient": demo_patient(), "demo": True,
            "csrf": secrets.token_urlsafe(32), **({"role": role} if role != "clinician" else {})}
    with ctx().store.transaction() as conn:
        g.demo_cookie = sessions.create(conn, data, DEMO_SESSION_SECONDS)
    g.ui_session = data
    return data


def set_demo_cookie(resp: BaseResponse) -> BaseResponse:
    if g.get("demo_cookie"):
        set_cookie(resp, g.demo_cookie, DEMO_SESSION_SECONDS)
    return resp


ROLES = ("clinician", "patient", "handover")
CLINICIANS_ONLY = ("This page is for clinicians. Patients: use the link to your forms that "
                   "your clinic or patient portal gave you.")
PATIENTS_ONLY = ("This page is for patients, opened from the patient portal. Clinicians start "
                 "from the patient's chart in the EHR.")
# What a hand-over session may do: the patient's own Tasks and responses, nothing else.
HANDOVER_SCOPE = "patient/Task.rus patient/QuestionnaireResponse.crus"


def role_of(data: dict[str, Any] | None) -> str:
    """The session's role, decided once at the callback (older sessions: clinician)."""
    return str((data or {}).get("role") or "clinician")


def require_session() -> dict[str, Any]:
    """The clinician's launched session (tokens refreshed when due), or PageError 401; a
    patient or hand-over session gets 403 on every clinician page and API."""
    data: dict[str, Any] | None = g.get("ui_session")
    if data and role_of(data) == "handover":
        # The patient pressed Back (or typed a clinician URL) on the handed-over device.
        words = i18n.words(request.accept_languages.best_match(list(i18n.WORDS)) or "en")
        raise PageError(f"{words['handover_here']} {words['handover_leave']}", 403,
                        link=("/app/my", words["handover_link"]))
    if data and role_of(data) == "patient" and data.get("demo") and development_mode() \
            and _demo_page():
        # `make run`: from the demo patient's view back to a clinician's page.
        data = None
    if data and role_of(data) != "clinician":
        raise PageError(CLINICIANS_ONLY, 403)
    if data and data.get("development"):
        # A demo session is only ever honoured where it was made: AUTH=none, on loopback.
        if not development_mode():
            raise PageError("No session: open this app from the patient's chart in the EHR.",
                            401)
        g.principal = Principal.development_user()
        return data
    if (not data or "access_token" not in data) and development_mode():
        g.principal = Principal.development_user()
        if _demo_page():
            # `make run` without an EHR: opening a page is the demo launch.
            return _demo_launch()
        # The page's own API without a demo launch: stored data of any patient to loopback
        # callers only, as the API does in this mode; no CSRF token, so no writes.
        g.ui_session = DEVELOPMENT_SESSION
        return DEVELOPMENT_SESSION
    if not data or "access_token" not in data:
        raise PageError("No session: open this app from the patient's chart in the EHR.", 401)
    data = _refreshed(data)
    g.principal = principal(data)
    return data


def _demo_page() -> bool:
    """A page (not the pages' API) opened with GET: where development mode may launch."""
    return request.method == "GET" and not request.path.startswith("/app/api/")


# The demo patient's own view (`make run`): what a patient launch grants, on loopback only.
DEMO_PATIENT_SCOPE = ("patient/Task.rus patient/QuestionnaireResponse.crus "
                      "patient/Observation.rs")


def require_patient_session() -> dict[str, Any]:
    """A patient's session (patient launch) or a hand-over one, or PageError: 403 for a
    clinician's session, 401 for none. In development mode a page opened without one (or
    with the demo clinician's) starts the demo patient's own session."""
    data: dict[str, Any] | None = g.get("ui_session")
    if development_mode() and (not data or "access_token" not in data) \
            and (not data or data.get("demo")) and role_of(data) != "handover":
        if role_of(data) != "patient" and _demo_page():
            data = _demo_launch("patient")
        if data and role_of(data) == "patient" and data.get("demo"):
            g.principal = Principal(
                subject="demo-patient", client_id=None, grants=parse_scopes(DEMO_PATIENT_SCOPE),
                patient=str(data["patient"]), fhir_user=f"Patient/{data['patient']}",
                scope_text=DEMO_PATIENT_SCOPE)
            return data
    elif data and data.get("development"):
        # A demo session is only ever honoured where it was made: AUTH=none, on loopback.
        raise PageError("No session: open your forms from the patient portal again.", 401)
    role = role_of(data)
    if not data or role not in ("patient", "handover") or not data.get("patient"):
        if data and ("access_token" in data or data.get("development")):
            raise PageError(PATIENTS_ONLY, 403)
        raise PageError("No session: open your forms from the patient portal again.", 401)
    if role == "patient":
        data = _refreshed(data)
        g.principal = principal(data)
    else:
        g.principal = Principal(
            subject="handover", client_id=current_app.config["SMART_CLIENT_ID"],
            grants=parse_scopes(HANDOVER_SCOPE), patient=str(data["patient"]),
            fhir_user=f"Patient/{data['patient']}", scope_text=HANDOVER_SCOPE)
    return data


def _refreshed(data: dict[str, Any]) -> dict[str, Any]:
    """The session with its access token renewed when it is about to expire."""
    if smart.needs_refresh(data):
        client = smart.Client.from_settings(current_app.config)
        if client is None:
            raise PageError("The app is not configured (MIT_FHIR_SMART_CLIENT_ID).", 503)
        try:
            data = smart.refresh(client, smart.Endpoints(**data["endpoints"]), data)
        except smart.SmartError:
            # A parallel request of the same session may have used the (rotating) refresh
            # token a moment ago: its fresh token is in the table then.
            with ctx().store.transaction() as conn:
                stored = sessions.load(conn, cookie())
            if stored is None or smart.needs_refresh(stored):
                raise PageError("The session expired: open the app from the EHR again.",
                                401) from None
            data = stored
        else:
            with ctx().store.transaction() as conn:
                sessions.save(conn, cookie() or "", data)
        g.ui_session = data
    return data


def principal(data: dict[str, Any]) -> Principal:
    """Who acts: the EHR user, with the scopes the EHR granted and its patient context."""
    return Principal(
        subject=data.get("sub") or data.get("fhirUser"),
        client_id=current_app.config["SMART_CLIENT_ID"],
        grants=parse_scopes(data.get("scope", "")), patient=data.get("patient"),
        fhir_user=data.get("fhirUser"), scope_text=data.get("scope", ""))


def check_csrf() -> None:
    """Writes carry the session's CSRF token in a header, and JSON bodies only."""
    data = g.get("ui_session") or {}
    sent = request.headers.get(CSRF_HEADER, "")
    if not data.get("csrf") or not hmac.compare_digest(sent.encode(), data["csrf"].encode()):
        raise PageError("missing or wrong CSRF token", 403)
    if request.mimetype not in ACCEPTED_JSON:
        raise PageError("send JSON", 415)


def load_session() -> None:
    with ctx().store.transaction() as conn:
        g.ui_session = sessions.load(conn, cookie(), time.time())
