"""Authentication to the EHR: none, a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the
client signs a JWT (iss = sub = client_id, aud = token URL, exp <= 5 min, unique jti) with its
private key (RS384 or ES384), posts it as a `client_assertion` with
`grant_type=client_credentials`, and receives an access token that is cached until shortly
before it expires.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import requests
from requests.auth import AuthBase

from mit_fhir import metrics
from mit_fhir.ehr.errors import EhrRejected, EhrRetryable

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REFRESH_MARGIN = 30.0  # seconds before expiry at which a cached token is renewed


class NoAuth(AuthBase):
    """No Authorization header (an EHR on a trusted network, or tests)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r

    def invalidate(self) -> None:
        """Nothing cached."""


class BearerAuth(AuthBase):
    """A static bearer token read from a secret file."""

    def __init__(self, token: str) -> None:
        self.token = token.strip()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r

    def invalidate(self) -> None:
        """A static token cannot be renewed."""


def load_signing_key(path: str | Path, key_id: str | None) -> tuple[Any, str]:
    """A private key from a PEM file or a JWKS/JWK JSON file, and its kid (required)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        keys = data.get("keys", [data])
        private = [k for k in keys if "d" in k and (key_id is None or k.get("kid") == key_id)]
        if not private:
            raise ValueError("the JWKS file holds no private key with that kid")
        jwk = jwt.PyJWK(private[0])
        key, kid = jwk.key, private[0].get("kid", key_id)
    else:
        key, kid = text, key_id
    if not kid:
        # SMART requires the kid header: the EHR picks the verification key by it.
        raise ValueError("no kid for the signing key: set MIT_FHIR_EHR_KEY_ID")
    return key, kid


class SmartBackendAuth(AuthBase):
    """client_credentials with a private_key_jwt assertion; the token is cached."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        key: Any,
        algorithm: str,
        key_id: str | None,
        scope: str,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.key = key
        self.algorithm = algorithm
        self.key_id = key_id
        self.scope = scope
        self.session = session or requests.Session()
        self.clock = clock
        self.timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0

    def assertion(self) -> str:
        """A freshly signed client assertion."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)

    def token(self) -> str:
        """The cached access token, fetching a new one when it is about to expire."""
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at - REFRESH_MARGIN:
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        try:
            resp = self.session.post(self.token_url, data=form, timeout=self.timeout,
                                     headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise EhrRetryable(f"token endpoint unreachable: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise EhrRetryable(f"token endpoint answered {resp.status_code}", resp.status_code)
        if resp.status_code != 200:
            # The OAuth error code (e.g. invalid_client) is safe to report; no secrets in it.
            error = _json(resp).get("error", "unknown")
            raise EhrRejected(f"token request refused: {error}", resp.status_code)
        body = _json(resp)
        if not body.get("access_token"):
            raise EhrRejected("token response without access_token", resp.status_code)
        self._token = str(body["access_token"])
        self._expires_at = self.clock() + float(body.get("expires_in", 300))
        self.refreshes += 1
        metrics.TOKEN_REFRESHES.inc()

    def invalidate(self) -> None:
        """Forget the token (after a 401) so the next request fetches a new one."""
        with self._lock:
            self._token = None

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
