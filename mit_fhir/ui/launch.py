"""SMART App Launch routes: /app/launch, /app/callback, /app/logout."""

from __future__ import annotations

import hmac

from flask import Response, current_app, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from mit_fhir.context import ctx
from mit_fhir.ui import sessions, smart
from mit_fhir.ui.blueprint import bp
from mit_fhir.ui.web import PageError, check_csrf, cookie, new_session, set_cookie

PENDING_SECONDS = 600  # a launch must come back from the EHR's login within ten minutes
VIEWS = {"forms": "ui.forms", "outcomes": "ui.my_outcomes"}


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
    url, pending = smart.authorization_url(client, endpoints, redirect_uri,
                                           request.args.get("launch"))
    with ctx().store.transaction() as conn:
        token = sessions.create(conn, {"pending": pending, "endpoints": endpoints.as_dict(),
                                       "view": view}, PENDING_SECONDS)
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
    session_data = {
        "endpoints": endpoints.as_dict(),
        "access_token": token["access_token"], "refresh_token": token.get("refresh_token"),
        "expires_at": token.get("expires_at"), "scope": token.get("scope", client.scope),
        "patient": token.get("patient"), "encounter": token.get("encounter"),
        "fhirUser": claims.get("fhirUser"), "sub": claims.get("sub"),
    }
    cookie_value, _ = new_session(session_data)
    resp = redirect(url_for(VIEWS[pending.get("view", "forms")]), 302)
    set_cookie(resp, cookie_value, current_app.config["SMART_SESSION_SECONDS"])
    return resp


@bp.post("/logout")
def logout() -> Response:
    check_csrf()
    with ctx().store.transaction() as conn:
        sessions.drop(conn, cookie())
    resp = jsonify({"ok": True})
    resp.delete_cookie(sessions.COOKIE, path="/app")
    return resp
