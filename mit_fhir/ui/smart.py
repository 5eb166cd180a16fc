"""SMART App Launch 2.x client: discovery, authorization code with PKCE S256, token refresh.

The OAuth work is Authlib's (OAuth2Session); this module only decides what to ask for and
checks what comes back. Nothing here touches Flask or the database.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error

REFRESH_MARGIN = 30.0  # seconds before expiry at which the access token is renewed


class SmartError(Exception):
    """The launch cannot go on; the message names the step (never a token or patient data)."""


@dataclass(frozen=True)
class Client:
    """This app's registration with the EHR (MIT_FHIR_SMART_* settings)."""

    client_id: str
    secret: str | None
    scope: str
    timeout: float

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Client | None:
        if not settings.get("SMART_CLIENT_ID"):
            return None
        secret_file = settings.get("SMART_CLIENT_SECRET_FILE")
        secret = Path(secret_file).read_text(encoding="utf-8").strip() if secret_file else None
        return cls(settings["SMART_CLIENT_ID"], secret or None, settings["SMART_SCOPE"],
                   settings["SMART_TIMEOUT"])

    def session(self, redirect_uri: str | None = None, scope: str | None = None,
                **kwargs: Any) -> OAuth2Session:
        # Confidential clients authenticate with HTTP Basic (SMART's client-confidential-
        # symmetric); public clients send only their id.
        return OAuth2Session(
            self.client_id, self.secret, scope=scope or self.scope, redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if self.secret else "none",
            timeout=self.timeout, **kwargs)


@dataclass(frozen=True)
class Endpoints:
    """What {iss}/.well-known/smart-configuration says about the EHR's authorization server."""

    iss: str
    authorize: str
    token: str
    issuer: str | None = None
    jwks_uri: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def discover(iss: str, timeout: float) -> Endpoints:
    """The authorize and token endpoints of a FHIR server (SMART discovery)."""
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    try:
        resp = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        body = resp.json() if resp.ok else None
    except (requests.RequestException, ValueError):
        body = None
    if not isinstance(body, dict):
        raise SmartError("the EHR's .well-known/smart-configuration could not be read")
    missing = [k for k in ("authorization_endpoint", "token_endpoint")
               if not isinstance(body.get(k), str)]
    if missing:
        raise SmartError(f"the EHR's smart-configuration lacks {', '.join(missing)}")
    methods = body.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise SmartError("the EHR's authorization server does not support PKCE S256")
    return Endpoints(iss.rstrip("/"), body["authorization_endpoint"], body["token_endpoint"],
                     body.get("issuer"), body.get("jwks_uri"))


def launch_scope(asked: str, ehr_launch: bool) -> str:
    """The scopes for this kind of launch: an EHR (or portal) launch binds its `launch`
    parameter's context with `launch`; a standalone one asks for a patient to be picked
    with `launch/patient` instead."""
    if ehr_launch:
        return " ".join(dict.fromkeys("launch" if s == "launch/patient" and "launch" not in
                                      asked.split() else s for s in asked.split()))
    return " ".join(dict.fromkeys(
        "launch/patient" if s == "launch" else s for s in asked.split()))


def authorization_url(client: Client, endpoints: Endpoints, redirect_uri: str,
                      launch: str | None, scope: str | None = None,
                      prompt: str | None = None,
                      max_age: int | None = None) -> tuple[str, dict[str, str]]:
    """Where to send the browser, and what the callback must find again (state, verifier).
    `scope` replaces the client's (the patient launch); `prompt=login` and `max_age=0` make
    the EHR ask for the user's credentials again (OpenID Connect), as after a hand-over of the
    device (the callback then checks the id_token's auth_time)."""
    verifier = generate_token(64)
    extra = {"aud": endpoints.iss}
    if launch:
        extra["launch"] = launch
    if prompt:
        extra["prompt"] = prompt
    if max_age is not None:
        extra["max_age"] = str(max_age)
    scope = launch_scope(scope or client.scope, bool(launch))
    with client.session(redirect_uri, scope=scope) as oauth:
        url, state = oauth.create_authorization_url(
            endpoints.authorize, code_verifier=verifier, **extra)
    return url, {"state": state, "verifier": verifier, "redirect_uri": redirect_uri}


def exchange(client: Client, endpoints: Endpoints, pending: dict[str, str],
             code: str) -> dict[str, Any]:
    """Trade the authorization code (and PKCE verifier) for tokens."""
    with client.session(pending["redirect_uri"]) as oauth:
        try:
            token = oauth.fetch_token(endpoints.token, code=code,
                                      code_verifier=pending["verifier"])
        except (OAuthError, OAuth2Error, requests.RequestException, ValueError) as exc:
            raise SmartError(f"the token request failed ({_reason(exc)})") from None
    return _normalised(dict(token))


def refresh(client: Client, endpoints: Endpoints, token: dict[str, Any]) -> dict[str, Any]:
    """A new access token from the refresh token; the launch context is kept."""
    if not token.get("refresh_token"):
        raise SmartError("the access token expired and no refresh token was granted")
    with client.session() as oauth:
        try:
            fresh = oauth.refresh_token(endpoints.token, refresh_token=token["refresh_token"])
        except (OAuthError, OAuth2Error, requests.RequestException, ValueError) as exc:
            raise SmartError(f"the token refresh failed ({_reason(exc)})") from None
    merged = {**token, **_normalised(dict(fresh))}
    for key in ("patient", "encounter", "fhirUser"):  # context is fixed at launch
        merged[key] = token.get(key)
    return merged


def needs_refresh(token: dict[str, Any], now: float | None = None) -> bool:
    expires_at = token.get("expires_at")
    if not expires_at:
        return False
    return float(expires_at) - REFRESH_MARGIN <= (now or time.time())


def id_token_claims(client: Client, endpoints: Endpoints, id_token: str) -> dict[str, Any]:
    """The verified claims of an OpenID Connect id_token (signature from the EHR's JWKS)."""
    if not endpoints.jwks_uri:
        raise SmartError("an id_token came back but the EHR publishes no jwks_uri")
    try:
        key = jwt.PyJWKClient(endpoints.jwks_uri, timeout=int(client.timeout) or 1) \
            .get_signing_key_from_jwt(id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token, key.key, algorithms=["RS256", "RS384", "ES256", "ES384"],
            audience=client.client_id, issuer=endpoints.issuer or None,
            options={"require": ["exp", "iat", "sub"], "verify_iss": bool(endpoints.issuer)},
            leeway=30)
    except jwt.PyJWTError as exc:
        raise SmartError(f"the id_token is not valid ({type(exc).__name__})") from None
    return claims


def _normalised(token: dict[str, Any]) -> dict[str, Any]:
    if "expires_at" not in token and token.get("expires_in"):
        token["expires_at"] = time.time() + float(token["expires_in"])
    return token


def _reason(exc: Exception) -> str:
    return getattr(exc, "error", None) or type(exc).__name__
