"""A real OAuth 2.0 authorization server (Authlib) issuing RFC 9068 JWT access tokens, on loopback.

It plays the hospital's identity provider for the service's inbound security: clients get
tokens with `client_credentials` (client_secret_post), carrying the SMART scopes they asked for
(within what they are registered for) and, for clients registered with one, a `patient` claim
(the launch context a SMART EHR puts in tokens it issues). It publishes its signing keys at
/jwks and names them in /.well-known/smart-configuration and /.well-known/openid-configuration;
`rotate()` replaces the signing key the way an identity provider rotates keys. `mint()` signs
arbitrary claims with the current key (or a stranger's) for the cases no honest server issues:
expired, wrong audience, wrong issuer, forged signature.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify
from joserfc.jwk import KeySet
from jwt.algorithms import RSAAlgorithm

from tests.loopback import LoopbackServer

ALG = "RS256"


@dataclass
class Client(ClientMixin):
    """A registered app: secret, the scopes it may get, and an optional patient context."""

    client_id: str
    secret: str
    scope: str
    patient: str | None = None
    fhir_user: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or self.scope).split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_post"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post"]  # noqa: RUF012 - Authlib's attribute


def _rsa_jwk(kid: str) -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public: dict[str, Any] = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public.update(kid=kid, alg=ALG, use="sig")
    return private, public


@dataclass
class Issuer:
    """The identity provider: token endpoint, JWKS and discovery, served from a thread."""

    audience: str
    clients: dict[str, Client] = field(default_factory=dict)
    expires_in: int = 300
    jwks_requests: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.kid = "key-1"
        self.private, public = _rsa_jwk(self.kid)
        self.published: list[dict[str, Any]] = [public]
        self.app = self._make_app()
        self._serving = LoopbackServer(self.app, "issuer", self.host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def register(self, client_id: str, scope: str, patient: str | None = None,
                 fhir_user: str | None = None) -> Client:
        client = Client(client_id, f"secret-{client_id}", scope, patient, fhir_user)
        self.clients[client_id] = client
        return client

    def rotate(self, keep_old: bool = False) -> None:
        """Sign with a new key from now on; publish only it unless keep_old."""
        with self._lock:
            number = int(self.kid.split("-")[1]) + 1
            self.kid = f"key-{number}"
            self.private, public = _rsa_jwk(self.kid)
            self.published = [*self.published, public] if keep_old else [public]

    def mint(self, claims: dict[str, Any], private: Any = None, kid: str | None = "current",
             alg: str = ALG) -> str:
        """Sign claims directly (defaults: this issuer, the audience, five minutes)."""
        now = int(time.time())
        body = {"iss": self.url, "aud": self.audience, "iat": now, "exp": now + 300,
                "jti": uuid.uuid4().hex, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"kid": self.kid if kid == "current" else kid} if kid else {}
        return pyjwt.encode(body, private or self.private, algorithm=alg, headers=headers)

    def token(self, client_id: str, scope: str | None = None) -> str:
        """An access token from the token endpoint, over HTTP, as a client would get it."""
        import requests

        client = self.clients[client_id]
        data = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": client.secret}
        if scope:
            data["scope"] = scope
        resp = requests.post(f"{self.url}/oauth/token", data=data, timeout=10)
        resp.raise_for_status()
        token: str = resp.json()["access_token"]
        return token

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        issuer = self

        class Generator(JWTBearerTokenGenerator):  # type: ignore[misc]
            def get_jwks(self) -> KeySet:
                private = RSAAlgorithm.to_jwk(issuer.private, as_dict=True)
                return KeySet.import_key_set({"keys": [{**private, "kid": issuer.kid,
                                                         "alg": ALG}]})

            def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
                return issuer.audience

            def get_extra_claims(self, client: Client, grant_type: str, user: Any,
                                 scope: Any) -> dict[str, Any]:
                extra: dict[str, Any] = {}
                if client.patient:
                    extra["patient"] = client.patient
                if client.fhir_user:
                    extra["fhirUser"] = client.fhir_user
                return extra

        server = AuthorizationServer(
            app, query_client=self.clients.get, save_token=lambda token, request: None)
        server.register_token_generator("default", Generator(
            issuer=f"http://{self.host}:{{port}}", alg=ALG))
        server.register_grant(_ClientCredentials)
        self._auth_server = server

        @app.post("/oauth/token")
        def token() -> Response:
            # The issuer's URL is only known once the port is bound.
            server._token_generators["default"].issuer = self.url
            resp: Response = server.create_token_response()
            return resp

        @app.get("/jwks")
        def jwks() -> Response:
            with self._lock:
                self.jwks_requests += 1
                return jsonify({"keys": self.published})

        def discovery() -> Response:
            return jsonify({"issuer": self.url, "jwks_uri": f"{self.url}/jwks",
                            "token_endpoint": f"{self.url}/oauth/token",
                            "grant_types_supported": ["client_credentials"],
                            "scopes_supported": ["system/*.rs", "user/*.cruds",
                                                 "patient/*.cruds"]})

        app.add_url_rule("/.well-known/smart-configuration", "smart", discovery)
        app.add_url_rule("/.well-known/openid-configuration", "oidc", discovery)
        return app

    def start(self) -> Issuer:
        self.port = self._serving.start()
        return self

    def stop(self) -> None:
        self._serving.stop()
