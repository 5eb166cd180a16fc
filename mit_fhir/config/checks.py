"""Checks across settings, one function per settings group: files, credentials, origins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mit_fhir.store.engine import UnsupportedDatabase, engine_url


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


def refuse(name: str, why: str) -> ConfigError:
    """The error for one setting, in the one wording every check uses."""
    return ConfigError(f"invalid configuration: MIT_FHIR_{name}: {why}")


def _files(settings: dict[str, Any], *names: str) -> None:
    for name in names:
        if settings[name] and not Path(settings[name]).is_file():
            raise refuse(name, "no such file")


def check_database(settings: dict[str, Any]) -> None:
    """A URL the installed drivers can open, in the spelling the store uses."""
    if settings["DATABASE_URL"]:
        try:
            settings["DATABASE_URL"] = engine_url(settings["DATABASE_URL"])
        except UnsupportedDatabase as exc:
            raise refuse("DATABASE_URL", str(exc)) from None


def check_content(settings: dict[str, Any]) -> None:
    """The catalogue and profile folders exist; a site's parameter file exists."""
    for name in ("QUESTIONNAIRE_DIR", "PROFILE_DIR"):
        if not Path(settings[name]).is_dir():
            raise refuse(name, f"not a directory: {settings[name]}")
    _files(settings, "PSYCHOMETRICS_FILE")


def check_sync(settings: dict[str, Any]) -> None:
    """The EHR credentials the chosen EHR_AUTH needs are given and readable."""
    _files(settings, "EHR_BEARER_TOKEN_FILE", "EHR_PRIVATE_KEY_FILE")
    needs = {"bearer": ("EHR_BEARER_TOKEN_FILE",),
             "smart-backend": ("EHR_CLIENT_ID", "EHR_PRIVATE_KEY_FILE")}
    for name in needs.get(settings["EHR_AUTH"], ()):
        if not settings[name]:
            raise refuse(name, f"required when MIT_FHIR_EHR_AUTH={settings['EHR_AUTH']}")


ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}


def check_http(settings: dict[str, Any]) -> None:
    """Inbound auth needs an issuer and an audience; algorithms are asymmetric only."""
    _files(settings, "AUTH_JWKS_FILE", "METRICS_TOKEN_FILE", "SMART_CLIENT_SECRET_FILE")
    if settings["SEARCH_DEFAULT_COUNT"] > settings["SEARCH_MAX_COUNT"]:
        raise refuse("SEARCH_DEFAULT_COUNT", "must not exceed MIT_FHIR_SEARCH_MAX_COUNT")
    algorithms = [a.strip() for a in settings["AUTH_ALGORITHMS"].split(",") if a.strip()]
    bad = [a for a in algorithms if a not in ALGORITHMS]
    if bad or not algorithms:
        raise refuse("AUTH_ALGORITHMS", f"use asymmetric JWS algorithms "
                     f"({', '.join(sorted(ALGORITHMS))}), not {', '.join(bad) or 'nothing'}")
    settings["AUTH_ALGORITHMS"] = ",".join(algorithms)
    settings["AUTH_AUDIENCE"] = settings["AUTH_AUDIENCE"] or settings["BASE_URL"]
    settings["CORS_ORIGINS"] = ",".join(_origins(settings["CORS_ORIGINS"], "CORS_ORIGINS"))
    settings["FRAME_ANCESTORS"] = " ".join(
        _origins(settings["FRAME_ANCESTORS"], "FRAME_ANCESTORS"))
    settings["SMART_ISSUERS"] = " ".join(_issuers(settings["SMART_ISSUERS"]))
    # The patient launch identifies its patient by the ID token's fhirUser (ui/launch.py).
    asked = settings["SMART_PATIENT_SCOPE"].split()
    missing = [s for s in ("openid", "fhirUser") if s not in asked]
    if missing:
        raise refuse("SMART_PATIENT_SCOPE", f"must include {' and '.join(missing)} (the patient "
                     "launch knows its patient by the ID token's fhirUser)")
    if settings["AUTH"] != "jwt":
        return
    for name, why in (("AUTH_ISSUER", "the issuer whose tokens are accepted"),
                      ("AUTH_AUDIENCE", "the audience tokens name (or MIT_FHIR_BASE_URL)")):
        if not settings[name]:
            raise refuse(name, f"required when MIT_FHIR_AUTH=jwt ({why}); "
                               "MIT_FHIR_AUTH=none is development mode, on loopback only")
    if settings["AUTH_JWKS_URL"] and settings["AUTH_JWKS_FILE"]:
        raise refuse("AUTH_JWKS_FILE", "set it or MIT_FHIR_AUTH_JWKS_URL, not both")


def _origins(text: str, name: str) -> list[str]:
    """Origins (scheme://host[:port]) separated by commas or spaces; '*' is refused."""
    out = []
    for origin in text.replace(",", " ").split():
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest.rstrip("/"):
            raise refuse(name, f"'{origin[:80]}' is not an origin (scheme://host[:port]); "
                               "'*' is not allowed")
        out.append(origin.rstrip("/"))
    return out


def _issuers(text: str) -> list[str]:
    """FHIR base URLs (http or https) the SMART pages may be launched from; no wildcard."""
    out = []
    for url in text.replace(",", " ").split():
        scheme, sep, rest = url.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.strip("/"):
            raise refuse("SMART_ISSUERS", f"'{url[:80]}' is not a FHIR base URL "
                                          "(http(s)://host[:port][/path])")
        out.append(url.rstrip("/"))
    return out


# Run in this order, each only when its group is in use ("logging" and "outbox" need none).
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "database": check_database, "content": check_content, "sync": check_sync,
    "http": check_http,
}
