"""A real OAuth 2.0 token endpoint (Authlib) and a tiny protected FHIR endpoint, on loopback.

The token endpoint grants `client_credentials` to one registered client that authenticates with
`private_key_jwt` (RFC 7523 section 2.2, as SMART Backend Services profiles it): the assertion's
signature is checked against the client's registered public JWKS, and its claims must carry
iss = sub = client_id, aud = the token URL, an exp at most five minutes ahead, and a jti never
seen before. `GET /fhir/metadata` and `POST /fhir` answer only to bearer tokens it issued.

Authlib 1.9 verifies client assertions with joserfc's "recommended" algorithms only (RS256,
ES256, ...), while SMART requires RS384 and ES384; `_PrivateKeyJwt` therefore names the SMART
algorithms when it decodes the assertion, and nothing else.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, Response, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.loopback import LoopbackServer

CLIENT_ID = "mit-fhir-backend"
PRIVATE_KEY_JWT = "private_key_jwt"
SMART_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300  # SMART: exp no more than five minutes in the future


@dataclass
class RegisteredClient(ClientMixin):
    """A backend service known by its public JWKS; it may only use client_credentials."""

    client_id: str
    jwks: dict[str, Any]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # it has none: only a signed assertion authenticates it

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method == PRIVATE_KEY_JWT

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class IssuedToken(TokenMixin):
    """An access token this server handed out."""

    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT]  # noqa: RUF012 - Authlib's class attribute


class _PrivateKeyJwt(JWTBearerClientAssertion):
    """private_key_jwt against the registered JWKS, with the SMART algorithms and jti replay."""

    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, server: TokenServer) -> None:
        super().__init__(validate_jti=True)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.audience]

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(SMART_ALGORITHMS))
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        exp = token.claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + MAX_ASSERTION_LIFETIME + 60:
            raise InvalidClientError(description="the assertion lives longer than 5 minutes")
        return dict(token.claims)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        return self.server.remember_jti(f"{claims['sub']}:{jti}")


class _IssuedTokens(BearerTokenValidator):
    def __init__(self, server: TokenServer) -> None:
        super().__init__()
        self.server = server

    def authenticate_token(self, token_string: str) -> IssuedToken | None:
        if not self.server.honour_tokens:
            return None
        return self.server.tokens.get(token_string)


@dataclass
class TokenServer:
    """The token endpoint and its protected FHIR endpoint, served from a thread."""

    jwks: dict[str, Any]
    expires_in: int = 300
    issued: int = 0
    fhir_requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    audience_override: str | None = None
    honour_tokens: bool = True  # False: the FHIR endpoint answers 401 to every token
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self._seen_jti: set[str] = set()
        self._lock = threading.Lock()
        self.app = self._make_app()
        self._serving = LoopbackServer(self.app, "token-server", self.host)

    # Addresses ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"

    @property
    def fhir_base(self) -> str:
        return f"{self.url}/fhir"

    @property
    def audience(self) -> str:
        """The aud an assertion must carry: the token URL, unless a test says otherwise."""
        return self.audience_override or self.token_url

    # State --------------------------------------------------------------------------------------
    def remember_jti(self, key: str) -> bool:
        """True the first time a client's jti is seen; False on a replay."""
        with self._lock:
            if key in self._seen_jti:
                return False
            self._seen_jti.add(key)
            return True

    def revoke_all(self) -> None:
        """Revoke every token issued so far (an EHR restart, a key rotation)."""
        with self._lock:
            for token in self.tokens.values():
                token.revoked = True

    # The Flask application ----------------------------------------------------------------------
    def _make_app(self) -> Flask:
        app = Flask(__name__)
        client = RegisteredClient(CLIENT_ID, self.jwks)

        def query_client(client_id: str) -> RegisteredClient | None:
            return client if client_id == client.client_id else None

        def save_token(token: dict[str, Any], req: Any) -> None:
            with self._lock:
                self.tokens[token["access_token"]] = IssuedToken(
                    req.client.get_client_id(), token.get("scope", ""),
                    time.time() + token["expires_in"],
                )
                self.issued += 1

        auth_server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        auth_server.register_token_generator("default", BearerTokenGenerator(
            lambda **_: generate_token(42),
            expires_generator=lambda _client, _grant_type: self.expires_in,
        ))
        auth_server.register_client_auth_method(PRIVATE_KEY_JWT, _PrivateKeyJwt(self))
        auth_server.register_grant(_ClientCredentials)
        protect = ResourceProtector()
        protect.register_token_validator(_IssuedTokens(self))

        @app.post("/oauth/token")
        def token() -> Response:
            resp: Response = auth_server.create_token_response()
            return resp

        @app.get("/fhir/.well-known/smart-configuration")
        def smart_configuration() -> Response:
            return jsonify({
                "token_endpoint": self.token_url,
                "token_endpoint_auth_methods_supported": [PRIVATE_KEY_JWT],
                "token_endpoint_auth_signing_alg_values_supported": list(SMART_ALGORITHMS),
                "grant_types_supported": ["client_credentials"],
                "capabilities": ["client-confidential-asymmetric"],
            })

        @app.get("/fhir/metadata")
        @protect()
        def metadata() -> Response:
            self._record()
            return _fhir({"resourceType": "CapabilityStatement", "status": "active",
                          "kind": "instance", "fhirVersion": "4.0.1",
                          "format": ["application/fhir+json"],
                          "rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}]})

        @app.post("/fhir")
        @protect()
        def transaction() -> Response:
            self._record()
            bundle = request.get_json(force=True)
            entries = [{"response": {"status": "201 Created",
                                     "location": f"{e['request']['url']}/{n}/_history/1"}}
                       for n, e in enumerate(bundle.get("entry", []), start=1)]
            return _fhir({"resourceType": "Bundle", "type": "transaction-response",
                          "entry": entries})

        return app

    def _record(self) -> None:
        header = request.headers.get("Authorization", "")
        self.fhir_requests.append((request.method, request.path, header[len("Bearer "):] or None))

    # Serving ------------------------------------------------------------------------------------
    def start(self) -> None:
        self.port = self._serving.start()

    def stop(self) -> None:
        self._serving.stop()


def _fhir(body: dict[str, Any], status: int = 200) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    resp.content_type = "application/fhir+json"
    return resp


@dataclass(frozen=True)
class ClientKeys:
    """The backend client's key pairs (generated per test session, never committed)."""

    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    directory: Path

    RSA_KID: ClassVar[str] = "rsa-384"
    EC_KID: ClassVar[str] = "ec-384"

    @classmethod
    def generate(cls, directory: Path) -> ClientKeys:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                   ec.generate_private_key(ec.SECP384R1()), directory)

    def public_jwks(self) -> dict[str, Any]:
        """What the client registered with the EHR."""
        return {"keys": [_jwk(self.rsa.public_key(), self.RSA_KID, "RS384"),
                         _jwk(self.ec.public_key(), self.EC_KID, "ES384")]}

    def pem_file(self, which: str) -> Path:
        """The private key as PKCS#8 PEM."""
        key = self.rsa if which == "rsa" else self.ec
        path = self.directory / f"{which}.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
        return path

    def jwks_file(self) -> Path:
        """Both private keys as a JWKS, each with its kid."""
        path = self.directory / "private.jwks.json"
        path.write_text(json.dumps({"keys": [
            _jwk(self.rsa, self.RSA_KID, "RS384"), _jwk(self.ec, self.EC_KID, "ES384")]}),
            encoding="utf-8")
        path.chmod(0o600)
        return path


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="session")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> ClientKeys:
    return ClientKeys.generate(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def token_server(client_keys: ClientKeys) -> Iterator[TokenServer]:
    """A token endpoint knowing the client's public JWKS, on a free loopback port."""
    server = TokenServer(client_keys.public_jwks())
    server.start()
    yield server
    server.stop()
