"""Who may call: bearer JWTs checked before every request, SMART scopes checked by the views.

Public without a token: the health endpoints, GET /fhir/metadata, the OpenAPI document and CORS
preflights. /metrics takes the static token of MIT_FHIR_METRICS_TOKEN_FILE (Prometheus'
`bearer_token_file`) or a JWT with a system/ scope. Blueprints that authenticate by their own
means (the SMART-launched pages keep their token in a server-side session) are exempted by
`exempt()` and set `g.principal` themselves.

Development mode (MIT_FHIR_AUTH=none) treats every caller as allowed everything, and so
answers only callers on the loopback interface; `mit-fhir serve` also refuses to bind elsewhere.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, request

from mit_fhir.errors import Forbidden, ServiceUnavailable, Unauthorized
from mit_fhir.security.scopes import PATIENT_DATA, Denied, Principal, patient_id
from mit_fhir.security.tokens import KeySource, KeysUnavailable, TokenError, TokenVerifier

PUBLIC = {"health.healthz", "health.readyz", "metadata.metadata", "openapi.document",
          "static"}
_EXEMPT = "mit_fhir.auth_exempt"
_VERIFIER = "mit_fhir.token_verifier"


def init_app(app: Flask) -> None:
    """Authenticate every request (before the view runs)."""
    settings = app.config
    if settings["AUTH"] == "jwt":
        keys = KeySource(settings["AUTH_ISSUER"], settings["AUTH_JWKS_URL"],
                         settings["AUTH_JWKS_FILE"], settings["AUTH_JWKS_CACHE_SECONDS"])
        app.extensions[_VERIFIER] = TokenVerifier(
            keys, settings["AUTH_AUDIENCE"], settings["AUTH_ALGORITHMS"].split(","),
            settings["AUTH_LEEWAY_SECONDS"], settings["AUTH_PATIENT_CLAIM"])
    app.extensions.setdefault(_EXEMPT, set())
    app.before_request(authenticate)


def exempt(app: Flask, blueprint_names: Iterable[str]) -> None:
    """Blueprints that authenticate their requests themselves (and set g.principal)."""
    app.extensions.setdefault(_EXEMPT, set()).update(blueprint_names)


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def authenticate() -> None:
    """Set g.principal from the request, or raise 401 (403 for development mode off-host)."""
    endpoint = request.endpoint or ""
    if request.method == "OPTIONS" or endpoint in PUBLIC or request.url_rule is None:
        return
    if request.blueprint in current_app.extensions[_EXEMPT]:
        return
    if current_app.config["AUTH"] == "none":
        if not is_loopback(request.remote_addr):
            raise Forbidden("development mode (MIT_FHIR_AUTH=none) answers loopback callers only")
        g.principal = Principal.development_user()
        return
    token = _bearer()
    if endpoint == "metrics" and _metrics_token_matches(token):
        g.principal = Principal("metrics", None, ())
        return
    verifier: TokenVerifier = current_app.extensions[_VERIFIER]
    try:
        g.principal = verifier.verify(token)
    except TokenError as exc:
        raise Unauthorized(str(exc)) from None
    except KeysUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    if endpoint == "metrics" and not any(gr.level == "system" for gr in g.principal.grants):
        raise Forbidden("/metrics needs the metrics token or a system/ scope")


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("a bearer token is required", error=None)
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'",
                           error="invalid_request")
    return token.strip()


def _metrics_token_matches(token: str) -> bool:
    path = current_app.config.get("METRICS_TOKEN_FILE")
    if not path:
        return False
    expected = Path(path).read_text(encoding="utf-8").strip()
    return bool(expected) and hmac.compare_digest(expected.encode(), token.encode())


def principal() -> Principal:
    """The caller of this request (authenticate() ran before the view)."""
    found: Principal | None = g.get("principal")
    if found is None:  # a view reached without authentication is a wiring bug: fail closed
        raise Unauthorized("a bearer token is required", error=None)
    return found


def authorize(resource_type: str, interaction: str, patient: str | None = None) -> Principal:
    """The caller, if it may do `interaction` (c r u d s) on `resource_type` of `patient`."""
    who = principal()
    try:
        who.check(resource_type, interaction, patient)
    except Denied as exc:
        raise Forbidden(str(exc)) from None
    return who


def authorize_type(resource_type: str, interaction: str) -> Principal:
    """The caller, if some scope of it grants `interaction` on `resource_type` at all."""
    who = principal()
    try:
        who.check_type(resource_type, interaction)
    except Denied as exc:
        raise Forbidden(str(exc)) from None
    return who


def subject_patient(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a stored or submitted resource belongs to (its subject)."""
    subject = resource.get("subject")
    return patient_id(subject.get("reference")) if isinstance(subject, dict) else None


def authorize_resource(resource: dict[str, Any], interaction: str) -> Principal:
    """authorize() for one resource, its patient taken from its subject."""
    rtype = str(resource.get("resourceType"))
    return authorize(rtype, interaction,
                     subject_patient(resource) if rtype in PATIENT_DATA else None)


def restrict_search(resource_type: str, args: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Search arguments limited to what the caller may see; 403 if it asks for more.

    A token with patient context searching patient data gets `patient=<its patient>` added when
    the search names no patient; naming another patient is refused rather than emptied, so
    that a misconfigured app learns why it sees nothing.
    """
    who = principal()
    if resource_type not in PATIENT_DATA or who.patient is None:
        authorize(resource_type, "s")
        return args
    named = [v for k, value in args if k.partition(":")[0] in ("patient", "subject")
             for v in value.split(",") if v]
    if not named:
        args = [*args, ("patient", f"Patient/{who.patient}")]
    elif any((patient_id(v) or v) != who.patient for v in named):
        raise Forbidden(f"the token's patient context does not cover this {resource_type} search")
    authorize(resource_type, "s", who.patient)
    return args

