"""Service configuration: defaults, then MIT_FHIR_* environment variables, validated at start-up.

Each setting belongs to one group, named by what uses it; a command validates only the groups
it uses (`load_settings(raw, uses=...)`), so `db upgrade` or `import` need no HTTP security
settings and the worker needs what sync needs. Every setting's metadata carries its group, its
default as the docs print it, and its description: docs/ generate the settings table from it.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from mit_fhir import paths
from mit_fhir.config.checks import CHECKS, ConfigError

__all__ = ["GROUPS", "ConfigError", "SettingsSchema", "env_settings", "load_settings"]


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
    for t in ("QuestionnaireResponse", "Observation", "MedicationRequest", "CarePlan", "CareTeam",
              "Task")
)


# What the SMART app pages ask the EHR for (SMART App Launch 2.x scopes): filling forms, and
# assigning them to the launched patient (Tasks, schedule CarePlans: ui/assign.py).
DEFAULT_SMART_SCOPE = ("launch openid fhirUser patient/*.rs patient/QuestionnaireResponse.cu "
               "patient/Task.cu patient/CarePlan.cu user/*.rs offline_access")
# What the patient launch asks for: the patient's own Tasks and responses (SMART v2 order).
DEFAULT_SMART_PATIENT_SCOPE = ("launch/patient openid fhirUser patient/Task.rus "
                               "patient/QuestionnaireResponse.crus offline_access")

# The groups, by what uses them; each command of cli.py names the groups it needs.
GROUPS = {
    "database": "the store: every command that reads or writes it",
    "content": "the catalogue, profiles and psychometric parameters; the largest resource",
    "logging": "the log level of every command",
    "outbox": "whether writes are queued for the host EHR (every command that stores)",
    "sync": "delivery to the host EHR: `mit-fhir worker` and `serve`",
    "http": "the HTTP service: `serve` only (limits, inbound security, pages, search)",
}
ALL_GROUPS = tuple(GROUPS)
# What a Context (store, catalogue, scorer: app.create_context) is built from.
CONTEXT_GROUPS = ("database", "content", "logging")


def about(group: str, default: str, description: str) -> dict[str, str]:
    """A setting's metadata: its group, its default as documented, and what it does."""
    assert group in GROUPS, group
    return {"group": group, "default": default, "description": description}


class SettingsSchema(Schema):
    """Every MIT_FHIR_* setting, with its group and description (the docs' settings table)."""

    DATABASE_URL = fields.String(
        load_default=None, allow_none=True,
        metadata=about("database", "`sqlite:///instance/mit-fhir.sqlite3`",
                       "URL of the store: `postgresql://USER@HOST:PORT/DATABASE` (also "
                       "`postgres://`; both use the installed psycopg 3) or `sqlite:///PATH`; "
                       "other drivers are refused, and so is a raw `@` in the password "
                       "(write `%40`)"))
    MAX_BODY_BYTES = fields.Integer(
        load_default=1_048_576, validate=validate.Range(min=1024, max=64 * 1_048_576),
        metadata=about("content", "`1048576`",
                       "largest accepted request body (1 KiB to 64 MiB); larger bodies get 413 "
                       "(under `serve`, before a thread takes the request); also the longest "
                       "line `mit-fhir import` reads"))
    # The window of a Task (fhir/task.py): a one-off Task and each occurrence of a schedule are
    # to be done within this many days of their start (restriction.period.end: the due date).
    TASK_WINDOW_DAYS = fields.Integer(
        load_default=14, validate=validate.Range(min=1, max=366),
        metadata=about("content", "`14`",
                       "days (1 to 366) a patient has to complete a form asked for with a Task "
                       "(one-off or scheduled) when no due date is given; then it is overdue"))
    # `mit-fhir serve` reads each request whole before a thread takes it (server_limits.py).
    HEADER_TIMEOUT = fields.Float(
        load_default=10.0, validate=validate.Range(min=0.5, max=300),
        metadata=about("http", "`10`",
                       "`serve`: seconds (0.5 to 300) for a request's headers to arrive, from its "
                       "first byte (or the connection); then 408 and the connection is closed"))
    BODY_TIMEOUT = fields.Float(
        load_default=30.0, validate=validate.Range(min=0.5, max=600),
        metadata=about("http", "`30`",
                       "`serve`: seconds (0.5 to 600) for the whole body to arrive after the "
                       "headers; then 408, closed"))
    SEND_TIMEOUT = fields.Float(
        load_default=60.0, validate=validate.Range(min=0.5, max=3600),
        metadata=about("http", "`60`",
                       "`serve`: seconds (0.5 to 3,600) a client has to take each part of an "
                       "answer (in practice, the whole answer); then the connection is closed"))
    MAX_PENDING_REQUESTS = fields.Integer(
        load_default=256, validate=validate.Range(min=1, max=10_000),
        metadata=about("http", "`256`",
                       "`serve`: requests (1 to 10,000) a worker reads or answers at once; beyond "
                       "it 503 with `Retry-After` (bounds the buffered bodies to this x "
                       "`MAX_BODY_BYTES`)"))
    BASE_URL = fields.Url(
        load_default=None, allow_none=True, require_tld=False,
        metadata=about("http", "derived from the request",
                       "public FHIR base used in `Location`, `fullUrl` and CDS links (e.g. "
                       "`https://ehr.example.org/mit/fhir`); when set, a request whose `Host` "
                       "names another host gets 400 (but the probes and `/metrics`); when unset, "
                       "any `Host` is answered (loopback names only under `MIT_FHIR_AUTH=none`) "
                       "and links are built from it, so a proxy in front must pass only its "
                       "own name"))
    QUESTIONNAIRE_DIR = fields.String(
        load_default=str(paths.QUESTIONNAIRE_DIR),
        metadata=about("content", "`mit_fhir/questionnaires/` of the package",
                       "where the catalogue is read from"))
    PROFILE_DIR = fields.String(
        load_default=str(paths.PROFILE_DIR),
        metadata=about("content", "`mit_fhir/profiles/` of the package",
                       "CodeSystems, profiles and `psychometrics.json`"))
    PSYCHOMETRICS_FILE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("content", "none",
                       "a site's override of the psychometric parameters (see below)"))
    # None: each score's default method from the psychometric data file.
    RCI_METHOD = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(RCI_METHODS),
        metadata=about("content", "none (each score's default, Jacobson-Truax)",
                       "force one method: `jacobson-truax`, `edwards-nunnally`, "
                       "`gulliksen-lord-novick`, `hsu-lin-lord`, `hageman-arrindell`"))
    LOG_LEVEL = fields.String(
        load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
        metadata=about("logging", "`INFO`",
                       "`DEBUG`, `INFO`, `WARNING` or `ERROR`"))
    # Sync to the host EHR (nothing is queued while EHR_BASE_URL is unset).
    EHR_BASE_URL = fields.Url(
        load_default=None, allow_none=True, require_tld=False,
        metadata=about("outbox", "none (no sync)",
                       "the host EHR's FHIR R4 base; when set, writes are queued for it"))
    EHR_AUTH = fields.String(
        load_default="none", validate=validate.OneOf(["none", "bearer", "smart-backend"]),
        metadata=about("sync", "`none`",
                       "`none`, `bearer` or `smart-backend` (SMART Backend Services)"))
    EHR_BEARER_TOKEN_FILE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("sync", "none",
                       "file holding the static token (`bearer`)"))
    EHR_CLIENT_ID = fields.String(
        load_default=None, allow_none=True,
        metadata=about("sync", "none",
                       "client id registered with the EHR (`smart-backend`)"))
    EHR_PRIVATE_KEY_FILE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("sync", "none",
                       "PEM private key or JWKS with the private key (`smart-backend`)"))
    EHR_KEY_ID = fields.String(
        load_default=None, allow_none=True,
        metadata=about("sync", "the JWK's `kid`",
                       "key id for the assertion header (required with a PEM key)"))
    EHR_SIGNING_ALG = fields.String(
        load_default="RS384", validate=validate.OneOf(["RS384", "ES384"]),
        metadata=about("sync", "`RS384`",
                       "`RS384` or `ES384`"))
    EHR_TOKEN_URL = fields.Url(
        load_default=None, allow_none=True, require_tld=False,
        metadata=about("sync", "discovered",
                       "token endpoint; default: `{base}/.well-known/smart-configuration`"))
    EHR_SCOPE = fields.String(
        load_default=DEFAULT_SCOPE,
        metadata=about("sync", "`system/<type>.cruds` for the six synced types "
                               "(QuestionnaireResponse, Observation, MedicationRequest, "
                               "CarePlan, CareTeam, Task)",
                       "scopes requested with the token"))
    EHR_TIMEOUT = fields.Float(
        load_default=10.0, validate=validate.Range(min=0.1, max=300),
        metadata=about("sync", "`10`",
                       "seconds per request to the EHR"))
    SYNC_WORKER = fields.Boolean(
        load_default=True,
        metadata=about("http", "`true`",
                       "whether `mit-fhir serve` starts the worker (run `mit-fhir worker` yourself"
                       " otherwise)"))
    SYNC_MAX_ATTEMPTS = fields.Integer(
        load_default=8, validate=validate.Range(min=1, max=100),
        metadata=about("sync", "`8`",
                       "attempts before a row is parked as failed"))
    SYNC_BATCH_SIZE = fields.Integer(
        load_default=500, validate=validate.Range(min=1, max=5000),
        metadata=about("sync", "`500`",
                       "outbox rows a worker claims per round"))
    SYNC_BUNDLE_SIZE = fields.Integer(
        load_default=200, validate=validate.Range(min=1, max=500),
        metadata=about("sync", "`200`",
                       "entries per transaction Bundle on a first delivery (within the two limits "
                       "below)"))
    SYNC_CONDITIONAL_BUNDLE_SIZE = fields.Integer(
        load_default=8, validate=validate.Range(min=1, max=500),
        metadata=about("sync", "`8`",
                       "entries per Bundle when creates are conditional (Medplum allows 8)"))
    SYNC_BUNDLE_MAX_UPDATES = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=500),
        metadata=about("sync", "`50`",
                       "updates (PUT) per transaction Bundle (Medplum refuses more than 50)"))
    SYNC_BUNDLE_MAX_BYTES = fields.Integer(
        load_default=768 * 1024, validate=validate.Range(min=1024, max=64 * 1024 * 1024),
        metadata=about("sync", "`786432` (768 KiB)",
                       "resource bytes per Bundle; a larger resource travels alone (Medplum's "
                       "default request limit, `maxJsonSize`, is 1 MB)"))
    SYNC_BACKOFF_BASE = fields.Float(
        load_default=1.0, validate=validate.Range(min=0.01, max=60),
        metadata=about("sync", "`1`",
                       "seconds; delay = base x 2^attempts, capped by `MIT_FHIR_SYNC_BACKOFF_MAX`,"
                       " jittered between half and full"))
    SYNC_BACKOFF_MAX = fields.Float(
        load_default=300.0, validate=validate.Range(min=0.1, max=86400),
        metadata=about("sync", "`300`",
                       "seconds; the longest delay between two attempts of one resource"))
    SYNC_POLL_INTERVAL = fields.Float(
        load_default=1.0, validate=validate.Range(min=0.01, max=60),
        metadata=about("sync", "`1`",
                       "seconds the worker sleeps when nothing is due"))
    # Assessment schedules (mit_fhir/usecases/schedules.py) become Tasks from the worker's loop.
    SCHEDULE_INTERVAL_SECONDS = fields.Float(
        load_default=300.0, validate=validate.Range(min=1, max=86400),
        metadata=about("sync", "`300`",
                       "seconds (1 to 86400) between two runs of the assessment schedules in "
                       "`mit-fhir worker` (which runs them even without an EHR): how late after "
                       "its day a scheduled form may be asked for"))
    SYNC_LEASE_SECONDS = fields.Float(
        load_default=120.0, validate=validate.Range(min=1, max=3600),
        metadata=about("sync", "`120`",
                       "how long a claim holds rows; a dead worker's rows return after it"))
    # Inbound security: bearer JWTs of one issuer (or, on loopback only, development mode).
    AUTH = fields.String(
        load_default="jwt", validate=validate.OneOf(["jwt", "none"]),
        metadata=about("http", "`jwt`",
                       "`jwt`: every API call needs a bearer JWT of the issuer below; `none`: "
                       "development mode, no authentication, loopback callers only (`serve` "
                       "refuses other binds)"))
    AUTH_ISSUER = fields.Url(
        load_default=None, allow_none=True, require_tld=False,
        metadata=about("http", "none (required with `jwt`)",
                       "the identity provider whose tokens are accepted (`iss`); its JWKS is found"
                       " at `{issuer}/.well-known/smart-configuration` or `openid-configuration` "
                       "(`jwks_uri`)"))
    AUTH_AUDIENCE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("http", "`MIT_FHIR_BASE_URL`",
                       "the `aud` tokens must carry (required with `jwt` when there is no base "
                       "URL)"))
    AUTH_JWKS_URL = fields.Url(
        load_default=None, allow_none=True, require_tld=False,
        metadata=about("http", "discovered",
                       "the issuer's JWKS, when discovery is not available"))
    AUTH_JWKS_FILE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("http", "none",
                       "the issuer's public JWKS as a mounted file (re-read when it changes), for "
                       "sites whose service cannot reach the issuer"))
    AUTH_ALGORITHMS = fields.String(
        load_default="RS256,RS384,ES256,ES384",
        metadata=about("http", "`RS256,RS384,ES256,ES384`",
                       "accepted JWS algorithms; asymmetric only (HS* and `none` are refused)"))
    AUTH_JWKS_CACHE_SECONDS = fields.Float(
        load_default=300.0, validate=validate.Range(min=1, max=86400),
        metadata=about("http", "`300`",
                       "how long fetched keys are used before fetching again (an unknown `kid` "
                       "refreshes early, at most every 10 s)"))
    AUTH_LEEWAY_SECONDS = fields.Float(
        load_default=30.0, validate=validate.Range(min=0, max=300),
        metadata=about("http", "`30`",
                       "clock skew allowed on `exp`/`nbf`/`iat`"))
    AUTH_PATIENT_CLAIM = fields.String(
        load_default="patient", validate=validate.Length(min=1),
        metadata=about("http", "`patient`",
                       "the claim that carries a token's patient context"))
    METRICS_TOKEN_FILE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("http", "none",
                       "a static bearer token for `/metrics` (Prometheus `bearer_token_file`); "
                       "without it `/metrics` needs a JWT with a `system/` scope"))
    CORS_ORIGINS = fields.String(
        load_default="",
        metadata=about("http", "none",
                       "browser origins allowed to call the API (comma-separated "
                       "`scheme://host[:port]`; `*` is refused); no CORS headers otherwise"))
    FRAME_ANCESTORS = fields.String(
        load_default="",
        metadata=about("http", "none (`'none'`)",
                       "origins allowed to frame the service's pages (the EHR, for SMART apps in "
                       "an iframe)"))
    UI_ASSETS_DIR = fields.String(
        load_default=None, allow_none=True,
        metadata=about("http", "the checkout's `mit_fhir/ui/static/vendor`",
                       "where the pages' browser libraries are served from (`/app/vendor/`); the "
                       "image sets `/srv/mit-fhir/static/vendor`"))
    # The SMART app pages (/app): the EHR's client registration, scopes and the session.
    SMART_CLIENT_ID = fields.String(
        load_default=None, allow_none=True,
        metadata=about("http", "none (the `/app` pages answer 503 \"not configured\")",
                       "the app's client id registered with the EHR"))
    SMART_CLIENT_SECRET_FILE = fields.String(
        load_default=None, allow_none=True,
        metadata=about("http", "none (public client)",
                       "file holding the client secret of a confidential client (HTTP Basic at the"
                       " token endpoint)"))
    SMART_ISSUERS = fields.String(
        load_default="",
        metadata=about("http", "`MIT_FHIR_EHR_BASE_URL`",
                       "FHIR base URLs (`iss`) the app may be launched from, comma or space "
                       "separated; the first is the standalone launch's EHR"))
    SMART_SCOPE = fields.String(
        load_default=DEFAULT_SMART_SCOPE,
        metadata=about("http", f"`{DEFAULT_SMART_SCOPE}`",
                       "scopes requested at launch"))
    SMART_PATIENT_SCOPE = fields.String(
        load_default=DEFAULT_SMART_PATIENT_SCOPE,
        metadata=about("http", f"`{DEFAULT_SMART_PATIENT_SCOPE}`",
                       "scopes requested by the patient launch (`/app/launch?view=patient`, or "
                       "a portal's launch of the same URL); must include `openid` and "
                       "`fhirUser` (the patient is known by the ID token's fhirUser); see "
                       "docs/operations/patient-launch.md"))
    PATIENT_SCORES = fields.Boolean(
        load_default=False,
        metadata=about("http", "`false`",
                       "whether a patient's own page (`/app/my`) also lists the patient's own "
                       "scores, plainly worded; off, it lists only the forms to fill"))
    SMART_REDIRECT_URL = fields.Url(
        load_default=None, allow_none=True, require_tld=False,
        metadata=about("http", "derived from the request (`.../app/callback`)",
                       "the registered redirect URI, when a proxy hides the public URL"))
    SMART_SESSION_SECONDS = fields.Integer(
        load_default=28800, validate=validate.Range(min=60, max=7 * 86400),
        metadata=about("http", "`28800` (8 h)",
                       "how long a launched session lasts (60 s to 7 days)"))
    SMART_TIMEOUT = fields.Float(
        load_default=10.0, validate=validate.Range(min=0.1, max=120),
        metadata=about("http", "`10`",
                       "seconds per request to the EHR's authorization server and FHIR API from "
                       "the pages"))
    # Search pages (`_count`): see README "Paging". 50 fills a clinician's screen of scores or
    # a year of weekly forms; 500 lets a sync or audit client page through quickly while one
    # page of QuestionnaireResponses stays a few MB.
    SEARCH_DEFAULT_COUNT = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=1000),
        metadata=about("http", "`50`",
                       "resources per search page when the request gives no `_count` (1 to 1000, "
                       "at most the maximum); see \"Paging\""))
    SEARCH_MAX_COUNT = fields.Integer(
        load_default=500, validate=validate.Range(min=1, max=1000),
        metadata=about("http", "`500`",
                       "the largest `_count` a search may ask (1 to 1000); larger is a 400"))
    # Operations: whether /readyz requires the EHR to answer, and the worker's /metrics port.
    READY_CHECK_EHR = fields.Boolean(
        load_default=True,
        metadata=about("http", "`true`",
                       "whether `/readyz` also requires the EHR (`GET {base}/metadata`) to answer;"
                       " see \"Deployment\""))
    WORKER_METRICS_PORT = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=65535),
        metadata=about("sync", "none",
                       "port on which `mit-fhir worker` serves its own `/metrics` (a separate "
                       "worker Deployment)"))
    # The budget of the FHIRPath a request brings (a site Questionnaire sent to $extract):
    # the largest collection one expression may build, and the wall-clock time of evaluating
    # them all (compiling them is bounded by their length, fhir/site_forms.py).
    EXPRESSION_MAX_ITEMS = fields.Integer(
        load_default=10_000, validate=validate.Range(min=100, max=1_000_000),
        metadata=about("http", "`10000`",
                       "largest collection (100 to 1,000,000) one FHIRPath expression of a "
                       "request-supplied Questionnaire (`$extract` with a `questionnaire` "
                       "parameter) may build; more is a 422 naming the item"))
    EXPRESSION_TIME_LIMIT_MS = fields.Integer(
        load_default=1000, validate=validate.Range(min=10, max=60_000),
        metadata=about("http", "`1000`",
                       "wall-clock milliseconds (10 to 60,000) evaluating all expressions of a "
                       "request-supplied Questionnaire may take; more is a 422 naming the item "
                       "(compiling them is bounded by their length instead: 4 KB each, 16 KB in "
                       "all, else 400)"))


# The test suite's own variables (tests/conftest.py); a developer exports them in the same shell.
TEST_PREFIX = "MIT_FHIR_TEST_"


def env_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The MIT_FHIR_* variables of an environment, without the prefix (MIT_FHIR_TEST_* are not)."""
    environ = dict(os.environ) if environ is None else environ
    return {k[len("MIT_FHIR_") :]: v for k, v in environ.items()
            if k.startswith("MIT_FHIR_") and not k.startswith(TEST_PREFIX)}


KNOWN: dict[str, fields.Field] = dict(SettingsSchema._declared_fields)


def names_of(uses: tuple[str, ...]) -> list[str]:
    """The settings of these groups, in the schema's order."""
    return [name for name, field in KNOWN.items() if field.metadata["group"] in uses]


def unknown_settings(raw: dict[str, Any]) -> list[str]:
    """One problem per unknown name, with the near known name when there is one (a typo)."""
    problems = []
    for name in sorted(set(raw) - set(KNOWN)):
        near = difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.8)
        hint = f" (did you mean MIT_FHIR_{near[0]}?)" if near else ""
        problems.append(f"MIT_FHIR_{name}: unknown setting{hint}")
    return problems


def load_settings(raw: dict[str, Any], uses: tuple[str, ...] = ALL_GROUPS) -> dict[str, Any]:
    """Validate the settings of the groups in `uses`; raise ConfigError naming each problem.

    An unknown MIT_FHIR_* name is refused whatever the groups (a misspelt setting would
    otherwise be ignored in silence); settings of other groups are neither read nor returned.
    """
    problems = unknown_settings(raw)
    names = names_of(uses)
    try:
        settings: dict[str, Any] = SettingsSchema(only=names).load(
            {k: v for k, v in raw.items() if k in names})
    except ValidationError as exc:
        settings = {}
        problems += [
            f"MIT_FHIR_{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for name, msgs in sorted(exc.normalized_messages().items())]
    if problems:
        raise ConfigError(f"invalid configuration: {'; '.join(sorted(problems))}")
    for group, check in CHECKS.items():
        if group in uses:
            check(settings)
    return settings

