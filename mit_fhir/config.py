"""Service configuration: defaults, then MIT_FHIR_* environment variables, validated at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from mit_fhir import paths

RCI_METHODS = (
    "jacobson-truax",
    "edwards-nunnally",
    "gulliksen-lord-novick",
    "hsu-lin-lord",
    "hageman-arrindell",
)


# SMART v2 scopes for what the worker writes and reads back.
DEFAULT_SCOPE = " ".join(
    f"system/{t}.cruds"
    for t in ("QuestionnaireResponse", "Observation", "MedicationRequest", "CarePlan", "CareTeam")
)


# What the SMART app pages ask the EHR for (SMART App Launch 2.x scopes).
DEFAULT_SMART_SCOPE = ("launch openid fhirUser patient/*.rs patient/QuestionnaireResponse.cu "
               "user/*.rs offline_access")


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


class SettingsSchema(Schema):
    """Every MIT_FHIR_* setting; README.md documents each of them."""

    DATABASE_URL = fields.String(load_default=None, allow_none=True)
    MAX_BODY_BYTES = fields.Integer(
        load_default=1_048_576, validate=validate.Range(min=1024, max=64 * 1_048_576)
    )
    # `mit-fhir serve` reads each request whole before a thread takes it (server_limits.py).
    HEADER_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(min=0.5, max=300))
    BODY_TIMEOUT = fields.Float(load_default=30.0, validate=validate.Range(min=0.5, max=600))
    SEND_TIMEOUT = fields.Float(load_default=60.0, validate=validate.Range(min=0.5, max=3600))
    MAX_PENDING_REQUESTS = fields.Integer(
        load_default=256, validate=validate.Range(min=1, max=10_000)
    )
    BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False)
    QUESTIONNAIRE_DIR = fields.String(load_default=str(paths.QUESTIONNAIRE_DIR))
    PROFILE_DIR = fields.String(load_default=str(paths.PROFILE_DIR))
    PSYCHOMETRICS_FILE = fields.String(load_default=None, allow_none=True)
    # None: each score's default method from the psychometric data file.
    RCI_METHOD = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(RCI_METHODS)
    )
    LOG_LEVEL = fields.String(
        load_default="INFO",
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
    )
    # Sync to the host EHR (nothing is queued while EHR_BASE_URL is unset).
    EHR_BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False)
    EHR_AUTH = fields.String(
        load_default="none", validate=validate.OneOf(["none", "bearer", "smart-backend"])
    )
    EHR_BEARER_TOKEN_FILE = fields.String(load_default=None, allow_none=True)
    EHR_CLIENT_ID = fields.String(load_default=None, allow_none=True)
    EHR_PRIVATE_KEY_FILE = fields.String(load_default=None, allow_none=True)
    EHR_KEY_ID = fields.String(load_default=None, allow_none=True)
    EHR_SIGNING_ALG = fields.String(
        load_default="RS384", validate=validate.OneOf(["RS384", "ES384"])
    )
    EHR_TOKEN_URL = fields.Url(load_default=None, allow_none=True, require_tld=False)
    EHR_SCOPE = fields.String(load_default=DEFAULT_SCOPE)
    EHR_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))
    SYNC_WORKER = fields.Boolean(load_default=True)
    SYNC_MAX_ATTEMPTS = fields.Integer(load_default=8, validate=validate.Range(min=1, max=100))
    SYNC_BATCH_SIZE = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))
    SYNC_BUNDLE_SIZE = fields.Integer(load_default=200, validate=validate.Range(min=1, max=500))
    SYNC_CONDITIONAL_BUNDLE_SIZE = fields.Integer(
        load_default=8, validate=validate.Range(min=1, max=500)
    )
    SYNC_BUNDLE_MAX_UPDATES = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=500)
    )
    SYNC_BUNDLE_MAX_BYTES = fields.Integer(
        load_default=768 * 1024, validate=validate.Range(min=1024, max=64 * 1024 * 1024)
    )
    SYNC_BACKOFF_BASE = fields.Float(load_default=1.0, validate=validate.Range(min=0.01, max=60))
    SYNC_BACKOFF_MAX = fields.Float(load_default=300.0, validate=validate.Range(min=0.1, max=86400))
    SYNC_POLL_INTERVAL = fields.Float(load_default=1.0, validate=validate.Range(min=0.01, max=60))
    SYNC_LEASE_SECONDS = fields.Float(load_default=120.0, validate=validate.Range(min=1, max=3600))
    # Inbound security: bearer JWTs of one issuer (or, on loopback only, development mode).
    AUTH = fields.String(load_default="jwt", validate=validate.OneOf(["jwt", "none"]))
    AUTH_ISSUER = fields.Url(load_default=None, allow_none=True, require_tld=False)
    AUTH_AUDIENCE = fields.String(load_default=None, allow_none=True)
    AUTH_JWKS_URL = fields.Url(load_default=None, allow_none=True, require_tld=False)
    AUTH_JWKS_FILE = fields.String(load_default=None, allow_none=True)
    AUTH_ALGORITHMS = fields.String(load_default="RS256,RS384,ES256,ES384")
    AUTH_JWKS_CACHE_SECONDS = fields.Float(
        load_default=300.0, validate=validate.Range(min=1, max=86400)
    )
    AUTH_LEEWAY_SECONDS = fields.Float(load_default=30.0, validate=validate.Range(min=0, max=300))
    AUTH_PATIENT_CLAIM = fields.String(load_default="patient", validate=validate.Length(min=1))
    METRICS_TOKEN_FILE = fields.String(load_default=None, allow_none=True)
    CORS_ORIGINS = fields.String(load_default="")
    FRAME_ANCESTORS = fields.String(load_default="")
    UI_ASSETS_DIR = fields.String(load_default=None, allow_none=True)
    # The SMART app pages (/app): the EHR's client registration, scopes and the session.
    SMART_CLIENT_ID = fields.String(load_default=None, allow_none=True)
    SMART_CLIENT_SECRET_FILE = fields.String(load_default=None, allow_none=True)
    SMART_ISSUERS = fields.String(load_default="")
    SMART_SCOPE = fields.String(load_default=DEFAULT_SMART_SCOPE)
    SMART_REDIRECT_URL = fields.Url(load_default=None, allow_none=True, require_tld=False)
    SMART_SESSION_SECONDS = fields.Integer(
        load_default=28800, validate=validate.Range(min=60, max=7 * 86400))
    SMART_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=120))
    # Search pages (`_count`): see README "Paging". 50 fills a clinician's screen of scores or
    # a year of weekly forms; 500 lets a sync or audit client page through quickly while one
    # page of QuestionnaireResponses stays a few MB.
    SEARCH_DEFAULT_COUNT = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=1000))
    SEARCH_MAX_COUNT = fields.Integer(load_default=500, validate=validate.Range(min=1, max=1000))
    # Operations: whether /readyz requires the EHR to answer, and the worker's /metrics port.
    READY_CHECK_EHR = fields.Boolean(load_default=True)
    WORKER_METRICS_PORT = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=65535)
    )
    # The budget of the FHIRPath a request brings (a site Questionnaire sent to $extract):
    # the largest collection one expression may build, and the wall-clock time of evaluating
    # them all (compiling them is bounded by their length, fhir/site_forms.py).
    EXPRESSION_MAX_ITEMS = fields.Integer(
        load_default=10_000, validate=validate.Range(min=100, max=1_000_000)
    )
    EXPRESSION_TIME_LIMIT_MS = fields.Integer(
        load_default=1000, validate=validate.Range(min=10, max=60_000)
    )


def env_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The MIT_FHIR_* variables of an environment, without the prefix."""
    environ = dict(os.environ) if environ is None else environ
    return {k[len("MIT_FHIR_") :]: v for k, v in environ.items() if k.startswith("MIT_FHIR_")}


def load_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate raw settings; raise ConfigError naming each bad or unknown variable."""
    try:
        settings: dict[str, Any] = SettingsSchema().load(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"MIT_FHIR_{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for name, msgs in sorted(exc.normalized_messages().items())
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    for name in ("QUESTIONNAIRE_DIR", "PROFILE_DIR"):
        if not Path(settings[name]).is_dir():
            raise ConfigError(f"invalid configuration: MIT_FHIR_{name}: not a directory: "
                              f"{settings[name]}")
    for name in ("PSYCHOMETRICS_FILE", "EHR_BEARER_TOKEN_FILE", "EHR_PRIVATE_KEY_FILE",
                 "AUTH_JWKS_FILE", "METRICS_TOKEN_FILE", "SMART_CLIENT_SECRET_FILE"):
        if settings[name] and not Path(settings[name]).is_file():
            raise ConfigError(f"invalid configuration: MIT_FHIR_{name}: no such file")
    needs = {"bearer": ("EHR_BEARER_TOKEN_FILE",),
             "smart-backend": ("EHR_CLIENT_ID", "EHR_PRIVATE_KEY_FILE")}
    for name in needs.get(settings["EHR_AUTH"], ()):
        if not settings[name]:
            raise ConfigError(
                f"invalid configuration: MIT_FHIR_{name}: required when "
                f"MIT_FHIR_EHR_AUTH={settings['EHR_AUTH']}"
            )
    if settings["SEARCH_DEFAULT_COUNT"] > settings["SEARCH_MAX_COUNT"]:
        raise ConfigError("invalid configuration: MIT_FHIR_SEARCH_DEFAULT_COUNT: must not "
                          "exceed MIT_FHIR_SEARCH_MAX_COUNT")
    _check_auth(settings)
    return settings


ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}


def _check_auth(settings: dict[str, Any]) -> None:
    """Inbound auth needs an issuer and an audience; algorithms are asymmetric only."""
    algorithms = [a.strip() for a in settings["AUTH_ALGORITHMS"].split(",") if a.strip()]
    bad = [a for a in algorithms if a not in ALGORITHMS]
    if bad or not algorithms:
        raise ConfigError(
            "invalid configuration: MIT_FHIR_AUTH_ALGORITHMS: use asymmetric JWS algorithms "
            f"({', '.join(sorted(ALGORITHMS))}), not {', '.join(bad) or 'nothing'}")
    settings["AUTH_ALGORITHMS"] = ",".join(algorithms)
    settings["AUTH_AUDIENCE"] = settings["AUTH_AUDIENCE"] or settings["BASE_URL"]
    settings["CORS_ORIGINS"] = ",".join(_origins(settings["CORS_ORIGINS"], "CORS_ORIGINS"))
    settings["FRAME_ANCESTORS"] = " ".join(
        _origins(settings["FRAME_ANCESTORS"], "FRAME_ANCESTORS"))
    settings["SMART_ISSUERS"] = " ".join(_issuers(settings["SMART_ISSUERS"]))
    if settings["AUTH"] != "jwt":
        return
    for name, why in (("AUTH_ISSUER", "the issuer whose tokens are accepted"),
                      ("AUTH_AUDIENCE", "the audience tokens name (or MIT_FHIR_BASE_URL)")):
        if not settings[name]:
            raise ConfigError(
                f"invalid configuration: MIT_FHIR_{name}: required when MIT_FHIR_AUTH=jwt "
                f"({why}); MIT_FHIR_AUTH=none is development mode, on loopback only")
    if settings["AUTH_JWKS_URL"] and settings["AUTH_JWKS_FILE"]:
        raise ConfigError("invalid configuration: MIT_FHIR_AUTH_JWKS_FILE: set it or "
                          "MIT_FHIR_AUTH_JWKS_URL, not both")


def _origins(text: str, name: str) -> list[str]:
    """Origins (scheme://host[:port]) separated by commas or spaces; '*' is refused."""
    out = []
    for origin in text.replace(",", " ").split():
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest.rstrip("/"):
            raise ConfigError(f"invalid configuration: MIT_FHIR_{name}: '{origin[:80]}' is not "
                              "an origin (scheme://host[:port]); '*' is not allowed")
        out.append(origin.rstrip("/"))
    return out


def _issuers(text: str) -> list[str]:
    """FHIR base URLs (http or https) the SMART pages may be launched from; no wildcard."""
    out = []
    for url in text.replace(",", " ").split():
        scheme, sep, rest = url.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.strip("/"):
            raise ConfigError(f"invalid configuration: MIT_FHIR_SMART_ISSUERS: '{url[:80]}' is "
                              "not a FHIR base URL (http(s)://host[:port][/path])")
        out.append(url.rstrip("/"))
    return out
