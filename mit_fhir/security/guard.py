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

import dataclasses
import hmac
import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, request

from mit_fhir.errors import Forbidden, InvalidRequest, ServiceUnavailable, Unauthorized
from mit_fhir.fhir.references import BadReference, parse, resource_patient
from mit_fhir.fhir.search import PARAMETERS, TARGETS
from mit_fhir.security.scopes import Denied, Principal
from mit_fhir.security.tokens import KeySource, KeysUnavailable, TokenError, TokenVerifier
from mit_fhir.vocabulary import FHIR_ID, PATIENT_DATA
from mit_fhir.web.http import base_url

PUBLIC = {"health.healthz", "health.readyz", "metadata.metadata", "openapi.document",
          "static"}
_EXEMPT = "mit_fhir.auth_exempt"
_VERIFIER = "mit_fhir.token_verifier"
# Search parameters naming the patient whose data is searched: a patient-context token's
# patient replaces them (fhir/search.py TARGETS gives both the Patient type).
PATIENT_CRITERIA = frozenset({"patient", "subject"})
# A fhirUser naming a Patient: the last two segments of its reference (relative or absolute).
_PATIENT_USER = re.compile(rf"(?:^|/)Patient/({FHIR_ID.pattern})$")


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
        g.principal = patient_user_confined(verifier.verify(token))
    except TokenError as exc:
        raise Unauthorized(str(exc)) from None
    except KeysUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    if endpoint == "metrics" and not _system(g.principal):
        raise Forbidden("/metrics needs the metrics token or a system/ scope")


def patient_user_confined(who: Principal) -> Principal:
    """A token whose fhirUser is Patient/X (relative, or absolute on any base) and that carries
    no patient context is the patient X's own: it gets X as its patient context, so its user/
    scopes reach nothing beyond X's compartment (a patient user is never a clinician)."""
    if who.patient is not None or not who.fhir_user:
        return who
    found = _PATIENT_USER.search(who.fhir_user.rstrip("/"))
    if found is None:
        return who
    return dataclasses.replace(who, patient=found.group(1))


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


def _system(who: Principal) -> bool:
    return any(grant.level == "system" for grant in who.grants)


def require_system(what: str) -> Principal:
    """The caller, if some scope of it is a system/ scope (operators' endpoints)."""
    who = principal()
    if not _system(who):
        raise Forbidden(f"{what} needs a system/ scope")
    return who


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
    """The id of the Patient a stored or submitted resource belongs to (its subject, a Task's
    `for`), or None when that is not a relative Patient reference of the one grammar."""
    return resource_patient(resource)


def authorize_resource(resource: dict[str, Any], interaction: str) -> Principal:
    """authorize() for one resource, its patient taken from its subject (a Task's `for`)."""
    rtype = str(resource.get("resourceType"))
    return authorize(rtype, interaction,
                     subject_patient(resource) if rtype in PATIENT_DATA else None)


def restrict_search(resource_type: str, args: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Search arguments limited to what the caller may see, their references made canonical.

    Every reference value is parsed once here (with the service's base URL) and passed on
    as its canonical Type/id, so the search looks up exactly what this check saw; one outside
    the grammar is a 400. With a patient-context token the patient criterion comes from the
    token: `patient`/`subject` values are checked (another patient is a 403, so that a
    misconfigured app learns why it sees nothing) and then replaced by the token's patient,
    which is added to every search, whatever else it names (`_id`, `derived-from`...).
    """
    who = principal()
    scoped = resource_type in PATIENT_DATA and who.patient is not None
    authorize(resource_type, "s", who.patient if scoped else None)
    references = {name for name, (kind, _) in PARAMETERS.get(resource_type, {}).items()
                  if kind == "reference"}
    base = base_url()
    out: list[tuple[str, str]] = []
    for key, value in args:
        name, colon, _ = key.partition(":")
        if name not in references:
            out.append((key, value))
            continue
        if colon:  # the search refuses modifiers too; refused here before a value is dropped
            raise InvalidRequest(f"search parameter '{key[:64]}' is not supported")
        refs = [parse(v, TARGETS.get(name), base) for v in value.split(",")]
        if scoped and name in PATIENT_CRITERIA:
            if any(ref.id != who.patient for ref in refs):
                raise Forbidden("the token's patient context does not cover this "
                                f"{resource_type} search")
            continue  # replaced by the token's patient below
        out.append((key, ",".join(str(ref) for ref in refs)))
    if scoped:
        out.append(("patient", f"Patient/{who.patient}"))
    return out


def visible(resource_type: str, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search matches a patient-context token may see: an AuditEvent of a clinician's request
    names every patient whose data it touched, and is another patient's data as much as ours,
    so one naming any other patient is left out (the search found it by our patient)."""
    who = principal()
    if resource_type != "AuditEvent" or who.patient is None:
        return found
    return [event for event in found if _event_patients(event) <= {who.patient}]


def _event_patients(event: dict[str, Any]) -> set[str | None]:
    # None stands for an entity outside the grammar: unknown, so never shown to a patient.
    named: set[str | None] = set()
    for entity in event.get("entity", ()):
        what = entity.get("what") if isinstance(entity, dict) else None
        if isinstance(what, dict) and "reference" not in what:
            continue  # a query or a resource type (display only) names no patient
        try:
            ref = parse((what or {}).get("reference"))
        except BadReference:
            named.add(None)
            continue
        if ref.type == "Patient":
            named.add(ref.id)
    return named
