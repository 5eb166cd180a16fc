"""Bearer JWT verification against the configured issuer's JWKS (cached, rotated keys).

    TokenError              401: missing, malformed, expired, wrong issuer/audience, bad signature
    KeysUnavailable         503: the issuer's keys cannot be fetched (not the caller's fault)

The JWKS comes from MIT_FHIR_AUTH_JWKS_URL, a file (MIT_FHIR_AUTH_JWKS_FILE, re-read when it
changes), or the issuer's discovery document (`jwks_uri` of
{issuer}/.well-known/smart-configuration, else of .well-known/openid-configuration). Keys are
cached for MIT_FHIR_AUTH_JWKS_CACHE_SECONDS; a token signed with an unknown `kid` makes one early
refresh (key rotation), at most once per REFRESH_INTERVAL so that forged kids cannot make the
service hammer the issuer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import requests
from jwt import PyJWK, PyJWKSet

from mit_fhir.fhir.references import is_fhir_id
from mit_fhir.security.scopes import Principal, parse_scopes

log = logging.getLogger("mit_fhir.security")

REFRESH_INTERVAL = 10.0  # seconds between two fetches forced by unknown key ids
FETCH_TIMEOUT = 5.0


class TokenError(Exception):
    """The bearer token is not acceptable (401); the message names the check, not the token."""


class KeysUnavailable(Exception):
    """The issuer's signing keys could not be fetched (503)."""


class KeySource:
    """The issuer's signing keys by kid: fetched, cached, refreshed on rotation."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        jwks_file: str | None = None,
        cache_seconds: float = 300.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.jwks_url = jwks_url
        self.jwks_file = Path(jwks_file) if jwks_file else None
        self.cache_seconds = cache_seconds
        self.session = session or requests.Session()
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at: float | None = None
        self._file_stamp: tuple[float, int] | None = None

    def key(self, kid: str | None) -> PyJWK:
        """The signing key for `kid` (None: the only key of the set)."""
        with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.cache_seconds
            if stale or self._file_changed():
                self._load()
            found = self._pick(kid)
            if found is None and self._fetched_at is not None \
                    and now - self._fetched_at >= REFRESH_INTERVAL:
                self._load()  # rotation: the issuer may have published a new key
                found = self._pick(kid)
        if found is None:
            raise TokenError("the token's signing key is not among the issuer's keys")
        return found

    def _pick(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _file_changed(self) -> bool:
        if self.jwks_file is None:
            return False
        try:
            st = self.jwks_file.stat()
        except OSError:
            return True
        return (st.st_mtime, st.st_size) != self._file_stamp

    def _load(self) -> None:
        try:
            if self.jwks_file is not None:
                st = self.jwks_file.stat()
                document = self.jwks_file.read_text(encoding="utf-8")
                self._file_stamp = (st.st_mtime, st.st_size)
                keyset = PyJWKSet.from_json(document)
            else:
                keyset = PyJWKSet.from_dict(self._get(self.jwks_url or self._discover()))
        except (OSError, ValueError, requests.RequestException, jwt.PyJWTError) as exc:
            log.warning("auth: the issuer's keys could not be loaded: %s", type(exc).__name__)
            if not self._keys:
                raise KeysUnavailable("the token issuer's signing keys are unavailable") from None
            return  # keep serving with the keys we have; try again after REFRESH_INTERVAL
        finally:
            self._fetched_at = self.clock()
        self._keys = {k.key_id: k for k in keyset.keys
                      if getattr(k, "public_key_use", None) in (None, "sig")}
        log.info("auth: loaded %d signing key(s) of the issuer", len(self._keys))

    def _discover(self) -> str:
        for path in ("/.well-known/smart-configuration", "/.well-known/openid-configuration"):
            try:
                uri = self._get(self.issuer + path).get("jwks_uri")
            except (requests.RequestException, ValueError):
                continue
            if isinstance(uri, str) and uri:
                self.jwks_url = uri
                return uri
        raise ValueError("the issuer publishes no jwks_uri")

    def _get(self, url: str) -> dict[str, Any]:
        resp = self.session.get(url, timeout=FETCH_TIMEOUT, headers={"Accept": "application/json"})
        resp.raise_for_status()
        doc = resp.json()
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc


class TokenVerifier:
    """Turns a bearer JWT into a Principal, or raises TokenError / KeysUnavailable."""

    def __init__(
        self,
        keys: KeySource,
        audience: str,
        algorithms: list[str],
        leeway: float = 30.0,
        patient_claim: str = "patient",
    ) -> None:
        self.keys = keys
        self.audience = audience
        self.algorithms = algorithms
        self.leeway = leeway
        self.patient_claim = patient_claim

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("the bearer token is not a JWT") from None
        if header.get("alg") not in self.algorithms:
            raise TokenError(f"token algorithm '{str(header.get('alg'))[:16]}' is not accepted")
        key = self.keys.key(header.get("kid"))
        try:
            claims = jwt.decode(
                token, key=key, algorithms=self.algorithms, audience=self.audience,
                issuer=self.keys.issuer, leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is not meant for this service (audience)") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token comes from another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token lacks the '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"the token is invalid ({type(exc).__name__})") from None
        scopes = _scopes(claims)
        return Principal(
            subject=_text(claims.get("sub")),
            client_id=_text(claims.get("client_id") or claims.get("azp")),
            grants=parse_scopes(scopes),
            patient=_patient(claims, self.patient_claim),
            fhir_user=_text(claims.get("fhirUser")),
            scope_text=" ".join(scopes) if isinstance(scopes, list) else str(scopes or ""),
        )


def _patient(claims: dict[str, Any], name: str) -> str | None:
    """The patient context: absent (or null) is none; anything but a FHIR id is a 401, never
    "no patient context", which would widen the token to what its user/ scopes allow."""
    value = claims.get(name)
    if value is None:
        return None
    if not is_fhir_id(value):
        raise TokenError(f"the token's '{name[:32]}' claim is not a FHIR id")
    return str(value)


def _scopes(claims: dict[str, Any]) -> str | list[str] | None:
    """`scope` (a space-separated string) or `scp` (a list of strings); other shapes are a 401."""
    name = "scope" if "scope" in claims else "scp"
    value = claims.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise TokenError(f"the token's '{name}' claim is neither a string nor a list of strings")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
