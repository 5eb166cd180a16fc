"""SMART App Launch routes: /app/launch, /app/callback, /app/logout."""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from flask import Response, current_app, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from mit_fhir.ui import sessions, smart
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.web import PageError, check_csrf, cookie, new_session, role_of, set_cookie
from mit_fhir.vocabulary import FHIR_ID
from mit_fhir.web.context import ctx

PENDING_SECONDS = 600  # a launch must come back from the EHR's login within ten minutes
VIEWS = {"forms": "ui.forms", "outcomes": "ui.my_outcomes", "patient": "ui.my"}
# Set on the device when a clinician hands it over: the next launch there re-authenticates.
HANDED_OVER = "mit_fhir_handed_over"
HANDED_OVER_SECONDS = 30 * 86400
_PATIENT_USER = re.compile(rf"Patient/({FHIR_ID.pattern})")
_CLINICIAN_USER = re.compile(rf"(?:Practitioner|PractitionerRole)/{FHIR_ID.pattern}")
NOT_A_CLINICIAN = ("This account is neither a clinician's nor a patient's: the app opens the "
                   "chart only for clinicians (Practitioner) and the forms only for patients.")
NOT_REAUTHENTICATED = ("This device was handed to a patient: the EHR did not sign you in again. "
                       "Sign in to the EHR again to open the app.")
NOT_A_PATIENT = ("This is the patients' sign-in: the account used is not a patient's. "
                 "Clinicians start the app from the patient's chart in the EHR.")


def _issuers() -> list[str]:
    listed = current_app.config["SMART_ISSUERS"].split()
    ehr = current_app.config.get("EHR_BASE_URL")
    return listed or ([ehr.rstrip("/")] if ehr else [])


@bp.get("/launch")
def launch() -> BaseResponse:
    """EHR launch (iss + launch) or standalone launch (iss, or the first configured issuer)."""
    client = smart.Client.from_settings(current_app.config)
    if client is None:
        raise PageError("The app is not configured: set MIT_FHIR_SMART_CLIENT_ID.", 503)
    allowed = _issuers()
    iss = (request.args.get("iss") or (allowed[0] if allowed else "")).rstrip("/")
    if not iss:
        raise PageError("No EHR given: launch from the EHR, or configure "
                        "MIT_FHIR_SMART_ISSUERS for a standalone launch.")
    if iss not in allowed:
        # Never hand our client credentials or a user to a server we were not told to trust.
        raise PageError("This EHR (iss) is not one the app is configured for.", 403)
    view = request.args.get("view", "forms")
    if view not in VIEWS:
        raise PageError("unknown view")
    endpoints = smart.discover(iss, client.timeout)
    redirect_uri = current_app.config["SMART_REDIRECT_URL"] or url_for("ui.callback",
                                                                        _external=True)
    scope = current_app.config["SMART_PATIENT_SCOPE"] if view == "patient" else None
    with ctx().store.transaction() as conn:
        current = sessions.load(conn, cookie())
        # After a hand-over on this device, only a fresh sign-in gives the chart back.
        handed_over = role_of(current) == "handover" or bool(request.cookies.get(HANDED_OVER))
        url, pending = smart.authorization_url(client, endpoints, redirect_uri,
                                               request.args.get("launch"), scope,
                                               "login" if handed_over else None,
                                               0 if handed_over else None)
        if role_of(current) == "handover":
            sessions.drop(conn, cookie())
        token = sessions.create(conn, {"pending": pending, "endpoints": endpoints.as_dict(),
                                       "view": view, "scope": scope or client.scope,
                                       "reauthenticated": handed_over,
                                       "launched_at": time.time()}, PENDING_SECONDS)
    resp = redirect(url, 302)
    set_cookie(resp, token, PENDING_SECONDS)
    return resp


@bp.get("/callback")
def callback() -> BaseResponse:
    """The EHR's answer: check state, use the pending launch once, trade the code, start the
    real session."""
    # Any site can send the browser here with its cookie (a top-level GET): until the state
    # names this browser's pending launch, nothing is touched, so neither a signed-in session
    # nor a launch under way can be ended from outside.
    with ctx().store.transaction() as conn:
        pending = sessions.load(conn, cookie())
    if pending is None or "pending" not in pending:
        raise PageError("This launch is unknown or expired: open the app from the EHR again.")
    state = request.args.get("state", "")
    if not hmac.compare_digest(state.encode(), str(pending["pending"]["state"]).encode()):
        raise PageError("The launch's state does not match: open the app from the EHR again.")
    with ctx().store.transaction() as conn:
        if sessions.take(conn, cookie()) is None:  # a concurrent callback used it first
            raise PageError("This launch is unknown or expired: open the app from the EHR "
                            "again.")
    if request.args.get("error"):
        raise PageError(f"The EHR refused the launch ({request.args['error'][:60]}).", 403)
    code = request.args.get("code")
    if not code:
        raise PageError("The EHR sent no authorization code.")
    client = smart.Client.from_settings(current_app.config)
    if client is None:
        raise PageError("The app is not configured: set MIT_FHIR_SMART_CLIENT_ID.", 503)
    endpoints = smart.Endpoints(**pending["endpoints"])
    token = smart.exchange(client, endpoints, pending["pending"], code)
    claims = smart.id_token_claims(client, endpoints, token["id_token"]) \
        if token.get("id_token") else {}
    if pending.get("reauthenticated") and not signed_in_since(claims, pending.get("launched_at")):
        raise PageError(NOT_REAUTHENTICATED, 403)
    # The role is decided here, once: a Patient as fhirUser is the patient's own session, a
    # Practitioner (or PractitionerRole) the clinician's; any other user gets no session.
    own = patient_user(claims.get("fhirUser"), endpoints.iss)
    if own is None and not clinician_user(claims.get("fhirUser"), endpoints.iss):
        raise PageError(NOT_A_CLINICIAN, 403)
    view = pending.get("view", "forms")
    if view == "patient" and own is None:
        raise PageError(NOT_A_PATIENT, 403)
    if own is not None and token.get("patient") not in (None, own):
        raise PageError("The portal launched the app for someone else than the signed-in "
                        "patient: it was refused.", 403)
    session_data = {
        "endpoints": endpoints.as_dict(),
        "access_token": token["access_token"], "refresh_token": token.get("refresh_token"),
        "expires_at": token.get("expires_at"),
        "scope": token.get("scope", pending.get("scope") or client.scope),
        "patient": own or token.get("patient"), "encounter": token.get("encounter"),
        "fhirUser": claims.get("fhirUser"), "sub": claims.get("sub"),
        "role": "patient" if own is not None else "clinician",
    }
    cookie_value, _ = new_session(session_data)
    resp = redirect(url_for("ui.my" if own is not None else VIEWS[view]), 302)
    set_cookie(resp, cookie_value, current_app.config["SMART_SESSION_SECONDS"])
    if pending.get("reauthenticated"):
        resp.delete_cookie(HANDED_OVER, path="/app")
    return resp


def patient_user(fhir_user: Any, iss: str) -> str | None:
    """The Patient id when the id_token's fhirUser is a Patient (relative, or absolute on the
    EHR's own base), else None; a Patient on another server is refused."""
    if not isinstance(fhir_user, str):
        return None
    relative = fhir_user.removeprefix(iss.rstrip("/") + "/")
    if (found := _PATIENT_USER.fullmatch(relative)) is not None:
        return found.group(1)
    if "Patient/" in fhir_user:
        raise PageError("The signed-in patient is not one of this EHR's.", 403)
    return None


def clinician_user(fhir_user: Any, iss: str) -> bool:
    """Whether the id_token's fhirUser is a Practitioner or PractitionerRole of this EHR (a
    RelatedPerson, a Device or no fhirUser at all is not a clinician)."""
    return isinstance(fhir_user, str) and _CLINICIAN_USER.fullmatch(
        fhir_user.removeprefix(iss.rstrip("/") + "/")) is not None


def signed_in_since(claims: dict[str, Any], launched_at: Any) -> bool:
    """Whether the id_token says (OIDC `auth_time`) the user signed in at or after the launch
    that asked for it (prompt=login, max_age=0): an EHR's single sign-on answering with the
    earlier sign-in does not count."""
    auth_time = claims.get("auth_time")
    return (isinstance(auth_time, int | float) and not isinstance(auth_time, bool)
            and isinstance(launched_at, int | float) and auth_time >= launched_at)


def mark_handed_over(resp: BaseResponse) -> None:
    """Remember on the device that it was handed over (see `launch`)."""
    resp.set_cookie(HANDED_OVER, "1", max_age=HANDED_OVER_SECONDS, path="/app", secure=True,
                    httponly=True, samesite="Lax")


@bp.post("/logout")
def logout() -> Response:
    check_csrf()
    with ctx().store.transaction() as conn:
        sessions.drop(conn, cookie())
    resp = jsonify({"ok": True})
    resp.delete_cookie(sessions.COOKIE, path="/app")
    return resp
