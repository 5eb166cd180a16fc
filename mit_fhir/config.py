"""Service configuration: defaults, then MIT_FHIR_* environment variables, validated at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

PACKAGE_ROOT = Path(__file__).resolve().parent
# In a checkout (and in the container, which copies the same tree) the content folders sit beside
# the package; MIT_FHIR_QUESTIONNAIRE_DIR / MIT_FHIR_PROFILE_DIR point elsewhere when needed.
PROJECT_ROOT = PACKAGE_ROOT.parent

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


def _doc(description: str, default: str | None = None) -> dict[str, str]:
    """Field metadata: the meaning, and the default as documented when the value cannot say it."""
    return {"description": description, **({"default": default} if default else {})}


class SettingsSchema(Schema):
    """Every MIT_FHIR_* setting, with its documentation (rendered by markdown_table)."""

    DATABASE_URL = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "SQLAlchemy URL of the store (`postgresql+psycopg://...` or `sqlite:///...`)",
        "`mit-fhir.sqlite3` in Flask's instance folder: `instance/` of a checkout, "
        "`<venv>/var/mit_fhir.app-instance/` of a non-editable install; the image sets "
        "`sqlite:////srv/mit-fhir/data/mit-fhir.sqlite3`"))
    MAX_BODY_BYTES = fields.Integer(
        load_default=1_048_576, validate=validate.Range(min=1024, max=64 * 1_048_576),
        metadata=_doc("largest accepted request body (1 KiB to 64 MiB); larger bodies get 413 "
                      "(under `serve`, before a thread takes the request)"))
    # `mit-fhir serve` reads each request whole before a thread takes it (server_limits.py).
    HEADER_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(min=0.5, max=300),
        metadata=_doc("`serve`: seconds (0.5 to 300) for a request's headers to arrive, from its "
                      "first byte (or the connection); then 408 and the connection is closed"))
    BODY_TIMEOUT = fields.Float(load_default=30.0, validate=validate.Range(min=0.5, max=600),
        metadata=_doc("`serve`: seconds (0.5 to 600) for the whole body to arrive after the "
                      "headers; then 408, closed"))
    SEND_TIMEOUT = fields.Float(load_default=60.0, validate=validate.Range(min=0.5, max=3600),
        metadata=_doc("`serve`: seconds (0.5 to 3,600) a client has to take each part of an "
                      "answer (in practice, the whole answer); then the connection is closed"))
    MAX_PENDING_REQUESTS = fields.Integer(
        load_default=256, validate=validate.Range(min=1, max=10_000),
        metadata=_doc("`serve`: requests (1 to 10,000) a worker reads or answers at once; beyond "
                      "it 503 with `Retry-After` (bounds the buffered bodies to this x "
                      "`MAX_BODY_BYTES`)"))
    BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False, metadata=_doc(
        "public FHIR base used in `Location` and `fullUrl` (e.g. "
        "`https://ehr.example.org/mit/fhir`)", "derived from the request"))
    QUESTIONNAIRE_DIR = fields.String(load_default=str(PROJECT_ROOT / "questionnaires"),
        metadata=_doc("where the catalogue is read from",
                      "`questionnaires/` beside the package (the checkout's); the image sets "
                      "`/srv/mit-fhir/questionnaires`"))
    PROFILE_DIR = fields.String(load_default=str(PROJECT_ROOT / "profiles"), metadata=_doc(
        "CodeSystems, profiles and `psychometrics.json`",
        "`profiles/` beside the package (the checkout's); the image sets "
        "`/srv/mit-fhir/profiles`"))
    PSYCHOMETRICS_FILE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "a site's override of the psychometric parameters "
        "([site parameters](../clinical/site-parameters.md))"))
    # None: each score's default method from the psychometric data file.
    RCI_METHOD = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(RCI_METHODS),
        metadata=_doc("force one method: `jacobson-truax`, `edwards-nunnally`, "
                      "`gulliksen-lord-novick`, `hsu-lin-lord`, `hageman-arrindell`",
                      "none (each score's default, Jacobson-Truax)"))
    LOG_LEVEL = fields.String(
        load_default="INFO",
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
        metadata=_doc("`DEBUG`, `INFO`, `WARNING` or `ERROR`"),
    )
    # Sync to the host EHR (nothing is queued while EHR_BASE_URL is unset).
    EHR_BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False,
        metadata=_doc("the host EHR's FHIR R4 base; when set, writes are queued for it",
                      "none (no sync)"))
    EHR_AUTH = fields.String(
        load_default="none", validate=validate.OneOf(["none", "bearer", "smart-backend"]),
        metadata=_doc("`none`, `bearer` or `smart-backend` (SMART Backend Services)"))
    EHR_BEARER_TOKEN_FILE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "file holding the static token (`bearer`)"))
    EHR_CLIENT_ID = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "client id registered with the EHR (`smart-backend`)"))
    EHR_PRIVATE_KEY_FILE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "PEM private key or JWKS with the private key (`smart-backend`)"))
    EHR_KEY_ID = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "key id for the assertion header (required with a PEM key)", "the JWK's `kid`"))
    EHR_SIGNING_ALG = fields.String(
        load_default="RS384", validate=validate.OneOf(["RS384", "ES384"]),
        metadata=_doc("`RS384` or `ES384`"))
    EHR_TOKEN_URL = fields.Url(load_default=None, allow_none=True, require_tld=False,
        metadata=_doc("token endpoint", "discovered from "
                      "`{base}/.well-known/smart-configuration`"))
    EHR_SCOPE = fields.String(load_default=DEFAULT_SCOPE, metadata=_doc(
        "scopes requested with the token", "`system/<type>.cruds` for the five synced types"))
    EHR_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300),
        metadata=_doc("seconds (0.1 to 300) per request to the EHR"))
    SYNC_WORKER = fields.Boolean(load_default=True, metadata=_doc(
        "whether `mit-fhir serve` starts the worker (run `mit-fhir worker` yourself otherwise)"))
    SYNC_MAX_ATTEMPTS = fields.Integer(load_default=8, validate=validate.Range(min=1, max=100),
        metadata=_doc("attempts (1 to 100) before a row is parked as failed"))
    SYNC_BATCH_SIZE = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000),
        metadata=_doc("outbox rows (1 to 5,000) a worker claims per round"))
    SYNC_BUNDLE_SIZE = fields.Integer(load_default=200, validate=validate.Range(min=1, max=500),
        metadata=_doc("entries (1 to 500) per transaction Bundle on a first delivery (within "
                      "the two limits below)"))
    SYNC_CONDITIONAL_BUNDLE_SIZE = fields.Integer(
        load_default=8, validate=validate.Range(min=1, max=500),
        metadata=_doc("entries per Bundle when creates are conditional (Medplum allows 8)"))
    SYNC_BUNDLE_MAX_UPDATES = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=500),
        metadata=_doc("updates (PUT) per transaction Bundle (Medplum refuses more than 50)"))
    SYNC_BUNDLE_MAX_BYTES = fields.Integer(
        load_default=768 * 1024, validate=validate.Range(min=1024, max=64 * 1024 * 1024),
        metadata=_doc("resource bytes per Bundle; a larger resource travels alone (Medplum's "
                      "default request limit, `maxJsonSize`, is 1 MB)", "`786432` (768 KiB)"))
    SYNC_BACKOFF_BASE = fields.Float(load_default=1.0, validate=validate.Range(min=0.01, max=60),
        metadata=_doc("seconds; delay = base x 2^attempts, capped by "
                      "`MIT_FHIR_SYNC_BACKOFF_MAX`, jittered between half and full"))
    SYNC_BACKOFF_MAX = fields.Float(load_default=300.0, validate=validate.Range(min=0.1, max=86400),
        metadata=_doc("seconds; the longest delay between two attempts of one resource"))
    SYNC_POLL_INTERVAL = fields.Float(load_default=1.0, validate=validate.Range(min=0.01, max=60),
        metadata=_doc("seconds the worker sleeps when nothing is due"))
    SYNC_LEASE_SECONDS = fields.Float(load_default=120.0, validate=validate.Range(min=1, max=3600),
        metadata=_doc("how long a claim holds rows; a dead worker's rows return after it"))
    # Inbound security: bearer JWTs of one issuer (or, on loopback only, development mode).
    AUTH = fields.String(load_default="jwt", validate=validate.OneOf(["jwt", "none"]),
        metadata=_doc("`jwt`: every API call needs a bearer JWT of the issuer below; `none`: "
                      "development mode, no authentication, loopback callers only (`serve` "
                      "refuses other binds)"))
    AUTH_ISSUER = fields.Url(load_default=None, allow_none=True, require_tld=False,
        metadata=_doc("the identity provider whose tokens are accepted (`iss`); its JWKS is "
                      "found at `{issuer}/.well-known/smart-configuration` or "
                      "`openid-configuration` (`jwks_uri`)", "none (required with `jwt`)"))
    AUTH_AUDIENCE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "the `aud` tokens must carry (required with `jwt` when there is no base URL)",
        "`MIT_FHIR_BASE_URL`"))
    AUTH_JWKS_URL = fields.Url(load_default=None, allow_none=True, require_tld=False,
        metadata=_doc("the issuer's JWKS, when discovery is not available", "discovered"))
    AUTH_JWKS_FILE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "the issuer's public JWKS as a mounted file (re-read when it changes), for sites whose "
        "service cannot reach the issuer; not together with `MIT_FHIR_AUTH_JWKS_URL`"))
    AUTH_ALGORITHMS = fields.String(load_default="RS256,RS384,ES256,ES384", metadata=_doc(
        "accepted JWS algorithms; asymmetric only (HS* and `none` are refused)"))
    AUTH_JWKS_CACHE_SECONDS = fields.Float(
        load_default=300.0, validate=validate.Range(min=1, max=86400),
        metadata=_doc("how long fetched keys are used before fetching again (an unknown `kid` "
                      "refreshes early, at most every 10 s)"))
    AUTH_LEEWAY_SECONDS = fields.Float(load_default=30.0, validate=validate.Range(min=0, max=300),
        metadata=_doc("clock skew (0 to 300 s) allowed on `exp`/`nbf`/`iat`"))
    AUTH_PATIENT_CLAIM = fields.String(load_default="patient", validate=validate.Length(min=1),
        metadata=_doc("the claim that carries a token's patient context"))
    METRICS_TOKEN_FILE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "a static bearer token for `/metrics` (Prometheus `credentials_file`); without it "
        "`/metrics` needs a JWT with a `system/` scope"))
    CORS_ORIGINS = fields.String(load_default="", metadata=_doc(
        "browser origins allowed to call the API (comma-separated `scheme://host[:port]`; `*` "
        "is refused); no CORS headers otherwise", "none"))
    FRAME_ANCESTORS = fields.String(load_default="", metadata=_doc(
        "origins allowed to frame the service's pages (the EHR, for SMART apps in an iframe)",
        "none (`'none'`)"))
    UI_ASSETS_DIR = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "where the pages' browser libraries are served from (`/app/vendor/`)",
        "`mit_fhir/ui/static/vendor` of the package; the image sets "
        "`/srv/mit-fhir/static/vendor`"))
    # The SMART app pages (/app): the EHR's client registration, scopes and the session.
    SMART_CLIENT_ID = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "the app's client id registered with the EHR",
        "none (the `/app` pages answer 503 \"not configured\")"))
    SMART_CLIENT_SECRET_FILE = fields.String(load_default=None, allow_none=True, metadata=_doc(
        "file holding the client secret of a confidential client (HTTP Basic at the token "
        "endpoint)", "none (public client)"))
    SMART_ISSUERS = fields.String(load_default="", metadata=_doc(
        "FHIR base URLs (`iss`) the app may be launched from, comma or space separated; the "
        "first is the standalone launch's EHR", "`MIT_FHIR_EHR_BASE_URL`"))
    SMART_SCOPE = fields.String(load_default=DEFAULT_SMART_SCOPE, metadata=_doc(
        "scopes requested at launch"))
    SMART_REDIRECT_URL = fields.Url(load_default=None, allow_none=True, require_tld=False,
        metadata=_doc("the registered redirect URI, when a proxy hides the public URL",
                      "derived from the request (`.../app/callback`)"))
    SMART_SESSION_SECONDS = fields.Integer(
        load_default=28800, validate=validate.Range(min=60, max=7 * 86400),
        metadata=_doc("how long a launched session lasts (60 s to 7 days)", "`28800` (8 h)"))
    SMART_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=120),
        metadata=_doc("seconds per request to the EHR's authorization server and FHIR API from "
                      "the pages"))
    # Search pages (`_count`): see docs/api.md "Paging". 50 fills a clinician's screen of scores
    # or a year of weekly forms; 500 lets a sync or audit client page through quickly while one
    # page of QuestionnaireResponses stays a few MB.
    SEARCH_DEFAULT_COUNT = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=1000), metadata=_doc(
            "resources per search page when the request gives no `_count` (1 to 1000, at most "
            "the maximum); see [paging](../api.md#paging)"))
    SEARCH_MAX_COUNT = fields.Integer(load_default=500, validate=validate.Range(min=1, max=1000),
        metadata=_doc("the largest `_count` a search may ask (1 to 1000); larger is a 400"))
    # Operations: whether /readyz requires the EHR to answer, and the worker's /metrics port.
    READY_CHECK_EHR = fields.Boolean(load_default=True, metadata=_doc(
        "whether `/readyz` also requires the EHR (`GET {base}/metadata`) to answer"))
    WORKER_METRICS_PORT = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=65535),
        metadata=_doc("port on which `mit-fhir worker` serves its own `/metrics` (a separate "
                      "worker Deployment)"))
    # The budget of the FHIRPath a request brings (a site Questionnaire sent to $extract):
    # the largest collection one expression may build, and the wall-clock time of evaluating
    # them all (compiling them is bounded by their length, fhir/site_forms.py).
    EXPRESSION_MAX_ITEMS = fields.Integer(
        load_default=10_000, validate=validate.Range(min=100, max=1_000_000),
        metadata=_doc("largest collection (100 to 1,000,000) one FHIRPath expression of a "
                      "request-supplied Questionnaire (`$extract` with a `questionnaire` "
                      "parameter) may build; more is a 422 naming the item"))
    EXPRESSION_TIME_LIMIT_MS = fields.Integer(
        load_default=1000, validate=validate.Range(min=10, max=60_000),
        metadata=_doc("wall-clock milliseconds (10 to 60,000) evaluating all expressions of a "
                      "request-supplied Questionnaire may take; more is a 422 naming the item "
                      "(compiling them is bounded by their length instead: 4 KB each, 16 KB in "
                      "all, else 400)"))


def markdown_table() -> str:
    """The settings table of docs/operations/configuration.md, from the schema above."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in SettingsSchema().fields.items():
        default = field.metadata.get("default") or _shown(field.load_default)
        rows.append(f"| `MIT_FHIR_{name}` | {default} | {field.metadata['description']} |")
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    """A default value as the table shows it."""
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


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
            raise ConfigError(f"invalid configuration: MIT_FHIR_{name}: not a directory")
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


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m mit_fhir.config --markdown")
    sys.stdout.write(markdown_table())
