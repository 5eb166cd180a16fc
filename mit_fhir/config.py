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


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


class SettingsSchema(Schema):
    """Every MIT_FHIR_* setting; README.md documents each of them."""

    DATABASE_URL = fields.String(load_default=None, allow_none=True)
    MAX_BODY_BYTES = fields.Integer(
        load_default=1_048_576, validate=validate.Range(min=1024, max=64 * 1_048_576)
    )
    BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False)
    QUESTIONNAIRE_DIR = fields.String(load_default=str(PROJECT_ROOT / "questionnaires"))
    PROFILE_DIR = fields.String(load_default=str(PROJECT_ROOT / "profiles"))
    PSYCHOMETRICS_FILE = fields.String(load_default=None, allow_none=True)
    # None: each score's default method from the psychometric data file.
    RCI_METHOD = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(RCI_METHODS)
    )
    LOG_LEVEL = fields.String(
        load_default="INFO",
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
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
            raise ConfigError(f"invalid configuration: MIT_FHIR_{name}: not a directory")
    psy = settings["PSYCHOMETRICS_FILE"]
    if psy and not Path(psy).is_file():
        raise ConfigError("invalid configuration: MIT_FHIR_PSYCHOMETRICS_FILE: no such file")
    return settings
