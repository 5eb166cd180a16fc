"""Build the EHR client from the MIT_FHIR_EHR_* settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from mit_fhir.ehr.auth import BearerAuth, NoAuth, SmartBackendAuth, load_signing_key
from mit_fhir.ehr.client import EhrClient
from mit_fhir.ehr.errors import EhrRejected


def token_endpoint(base_url: str, timeout: float) -> str:
    """SMART discovery: the token endpoint from {base}/.well-known/smart-configuration."""
    url = base_url.rstrip("/") + "/.well-known/smart-configuration"
    try:
        resp = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        endpoint = resp.json().get("token_endpoint") if resp.ok else None
    except (requests.RequestException, ValueError):
        endpoint = None
    if not endpoint:
        raise EhrRejected("no token endpoint: set MIT_FHIR_EHR_TOKEN_URL or serve "
                          ".well-known/smart-configuration")
    return str(endpoint)


def build_client(settings: dict[str, Any]) -> EhrClient:
    """The configured client (MIT_FHIR_EHR_BASE_URL must be set)."""
    base = settings["EHR_BASE_URL"]
    timeout = settings["EHR_TIMEOUT"]
    auth: Any = NoAuth()
    if settings["EHR_AUTH"] == "bearer":
        auth = BearerAuth(Path(settings["EHR_BEARER_TOKEN_FILE"]).read_text(encoding="utf-8"))
    elif settings["EHR_AUTH"] == "smart-backend":
        key, kid = load_signing_key(settings["EHR_PRIVATE_KEY_FILE"], settings["EHR_KEY_ID"])
        auth = SmartBackendAuth(
            token_url=settings["EHR_TOKEN_URL"] or token_endpoint(base, timeout),
            client_id=settings["EHR_CLIENT_ID"], key=key, algorithm=settings["EHR_SIGNING_ALG"],
            key_id=kid, scope=settings["EHR_SCOPE"], timeout=timeout,
        )
    return EhrClient(base, auth, timeout)
