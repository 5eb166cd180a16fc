"""A test EHR for the SMART pages: an Authlib authorization server with SMART launch context,
and a FHIR endpoint that checks its access tokens and forwards to a real FHIR server (Medplum).

- `{url}/fhir` is the EHR's FHIR base (the `iss`): `/.well-known/smart-configuration`, and
  every other path is forwarded to the backing FHIR server, only with a valid access token;
- `/authorize`: the authorization code grant with PKCE S256 *required* (a request without a
  challenge is refused, for confidential clients too); it shows the signed-in test user an
  "Approve" button (or approves at once with `auto_approve`);
- `/token`: authorization_code and refresh_token grants (refresh tokens rotate); the token
  response carries the launch context (`patient`, `encounter`) and, with `openid fhirUser`, an
  id_token (RS256, from /jwks) naming the user's `fhirUser`;
- `/ehr/chart?patient=ID`: the EHR's chart page, whose "MIT forms" link is an EHR launch
  (`{app}/app/launch?iss=...&launch=...`), the launch id standing for the patient;
  `/ehr/frame?patient=ID` runs the same launch inside an iframe of the chart;
- a patient user (`sign_in_patient`): fhirUser `Patient/<id>`, and a standalone launch with
  `launch/patient` gets that patient as its context; `/portal?patient=ID&app=...` is the
  patient portal's "My forms" link (a portal launch of `view=patient`);
- every authorization request's `prompt` is recorded (`prompts`), as `prompt=login` must
  reach the EHR after a hand-over of the device; `prompt=login` or `max_age` (0, or shorter
  than the time since the last sign-in) makes the user sign in again, and the id_token's
  `auth_time` is the time the user last signed in (`signed_in_at`; single sign-on otherwise).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

import jwt as pyjwt
import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request

from tests.loopback import LoopbackServer
from tests.security.issuer import ALG, _rsa_jwk


@dataclass
class App:
    """A registered SMART app: redirect URIs, scopes it may get, optional secret."""

    client_id: str
    redirect_uris: list[str]
    scope: str
    secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("client_secret_basic" if self.secret else "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class _AppMixin(App, ClientMixin):
    pass


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    challenge_method: str | None
    user: str
    context: dict[str, str]
    auth_time: float = 0.0

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Grant:
    """A refresh token's record: who, which app, what scope and launch context."""

    client_id: str
    user: str
    scope: str
    context: dict[str, str]
    revoked: bool = False
    auth_time: float = 0.0

    def check_client(self, client: App) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return self.revoked


class PkceRequired(CodeChallenge):
    """PKCE for every client, S256 only (SMART App Launch 2.x)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - Authlib's attribute

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: Code) -> str | None:
        return authorization_code.challenge

    def get_authorization_code_challenge_method(self, authorization_code: Code) -> str | None:
        return authorization_code.challenge_method


@dataclass
class SmartEhr:
    """The EHR: authorization server, launch contexts, token-checking FHIR front."""

    fhir_backend: str
    user: str = "dr-rossi"
    fhir_user: str = "Practitioner/dr-rossi"
    expires_in: int = 3600
    auto_approve: bool = False
    picked_patient: str | None = None  # whom the user picks in a standalone launch
    patient_user: str | None = None  # the signed-in user is this Patient (sign_in_patient)
    prompts: list[str | None] = field(default_factory=list)
    signed_in_at: float = field(default_factory=time.time)  # the user's last sign-in (SSO)
    apps: dict[str, App] = field(default_factory=dict)
    launches: dict[str, dict[str, str]] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[str] = field(default_factory=list)
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides, for bad tokens
    fhir_requests: list[tuple[str, str]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self.kid = "ehr-key-1"
        self.private, self.public = _rsa_jwk(self.kid)
        self.app = self._make_app()
        self._serving = LoopbackServer(self.app, "smart-ehr", self.host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def iss(self) -> str:
        return f"{self.url}/fhir"

    def register(self, client_id: str, redirect_uri: str, scope: str,
                 secret: str | None = None) -> App:
        app = _AppMixin(client_id, [redirect_uri], scope, secret)
        self.apps[client_id] = app
        return app

    def sign_in_patient(self, patient: str) -> None:
        """The person at the EHR's login is now the patient `patient` (a portal account)."""
        self.user, self.fhir_user, self.patient_user = patient, f"Patient/{patient}", patient
        self.signed_in_at = time.time()

    def sign_in_clinician(self, user: str = "dr-rossi") -> None:
        self.user, self.fhir_user, self.patient_user = user, f"Practitioner/{user}", None
        self.signed_in_at = time.time()

    def launch(self, patient: str, encounter: str | None = None) -> str:
        """A launch id standing for this context (what an EHR puts in the launch URL)."""
        launch = uuid.uuid4().hex
        self.launches[launch] = {"patient": patient, **({"encounter": encounter}
                                                        if encounter else {})}
        return launch

    def launch_url(self, app_base: str, patient: str, **extra: str) -> str:
        return f"{app_base}/app/launch?" + urlencode(
            {"iss": self.iss, "launch": self.launch(patient), **extra})

    # ------------------------------------------------------------------ the Flask app

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        ehr = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]  # noqa: RUF012

            def save_authorization_code(self, code: str, req: Any) -> Code:
                data = req.payload.data
                launch = data.get("launch")
                # SMART binds an EHR launch's context only under the `launch` scope.
                scopes = (req.payload.scope or "").split()
                context = dict(ehr.launches.get(launch, {})) \
                    if launch and "launch" in scopes else {}
                if not launch and "launch/patient" in (req.payload.scope or "").split() \
                        and (ehr.patient_user or ehr.picked_patient):
                    # A patient's own record, else the user's pick (standalone).
                    context = {"patient": ehr.patient_user or ehr.picked_patient or ""}
                item = Code(code, req.client.client_id, req.payload.redirect_uri,
                            req.payload.scope or "", data.get("code_challenge"),
                            data.get("code_challenge_method"), req.user, context,
                            ehr.signed_in_at)
                ehr.codes[code] = item
                return item

            def query_authorization_code(self, code: str, client: App) -> Code | None:
                item = ehr.codes.get(code)
                return item if item and item.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                ehr.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> str:
                self.request.launch_context = authorization_code.context
                self.request.auth_time = authorization_code.auth_time
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]  # noqa: RUF012
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Grant | None:
                found = ehr.refresh.get(refresh_token)
                return found if found and not found.revoked else None

            def authenticate_user(self, refresh_token: Grant) -> str:
                self.request.launch_context = refresh_token.context
                self.request.auth_time = refresh_token.auth_time
                return refresh_token.user

            def revoke_old_credential(self, refresh_token: Grant) -> None:
                refresh_token.revoked = True

        def add_context(grant: Any, response: Any) -> None:
            _, token, _ = response
            req = grant.request
            context = getattr(req, "launch_context", {}) or {}
            token.update(context)
            scope = token.get("scope", "").split()
            auth_time = getattr(req, "auth_time", ehr.signed_in_at)
            ehr.access[token["access_token"]] = {"expires_at": time.time() + ehr.expires_in,
                                                 "scope": scope, **context}
            if token.get("refresh_token"):
                ehr.refresh[token["refresh_token"]] = Grant(req.client.client_id, req.user,
                                                            token.get("scope", ""), context,
                                                            auth_time=auth_time)
            if "openid" in scope and "fhirUser" in scope:
                now = int(time.time())
                token["id_token"] = pyjwt.encode(
                    {"iss": ehr.iss, "sub": req.user, "aud": req.client.client_id,
                     "iat": now, "exp": now + 300, "auth_time": auth_time,
                     "fhirUser": f"{ehr.iss}/{ehr.fhir_user}",
                     **ehr.id_token_claims},
                    ehr.private, algorithm=ALG, headers={"kid": ehr.kid})
            ehr.token_requests.append(req.payload.grant_type)

        def with_context(grant: Any) -> None:
            grant.register_hook("after_create_token_response", add_context)

        server = AuthorizationServer(app, query_client=self.apps.get,
                                     save_token=lambda token, req: None)
        server.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda *a, **k: secrets.token_urlsafe(32),
            refresh_token_generator=lambda *a, **k: secrets.token_urlsafe(32),
            expires_generator=lambda client, grant_type: ehr.expires_in))
        server.register_grant(CodeGrant, [PkceRequired(required=True), with_context])
        server.register_grant(RefreshGrant, [with_context])

        @app.get("/fhir/.well-known/smart-configuration")
        def smart_configuration() -> Response:
            return jsonify({
                "issuer": ehr.iss, "jwks_uri": f"{ehr.url}/jwks",
                "authorization_endpoint": f"{ehr.url}/authorize",
                "token_endpoint": f"{ehr.url}/token",
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
                "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient",
                                     "offline_access", "patient/*.rs", "user/*.rs"],
                "capabilities": ["launch-ehr", "launch-standalone", "client-public",
                                 "client-confidential-symmetric", "context-ehr-patient",
                                 "sso-openid-connect", "permission-offline", "permission-v2"],
            })

        @app.get("/jwks")
        def jwks() -> Response:
            return jsonify({"keys": [ehr.public]})

        @app.get("/authorize")
        def authorize_page() -> Any:
            ehr.prompts.append(request.args.get("prompt"))
            max_age = request.args.get("max_age", "")
            if request.args.get("prompt") == "login" or (
                    max_age.isdigit() and time.time() - ehr.signed_in_at >= int(max_age)):
                ehr.signed_in_at = time.time()  # the user typed the credentials again
            try:
                grant = server.get_consent_grant(end_user=ehr.user)
            except OAuth2Error as exc:  # an invalid request: shown, as an EHR would
                return Response(f"<p id='error'>{escape(exc.description or exc.error)}</p>",
                                400, content_type="text/html")
            if ehr.auto_approve:
                return server.create_authorization_response(grant=grant, grant_user=ehr.user)
            hidden = "".join(f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>"
                             for k, v in request.args.items())
            return Response(
                "<!doctype html><html lang='en'><title>EHR sign-in</title>"
                "<link rel='icon' href='data:,'><body>"
                f"<h1>Allow {escape(grant.client.client_id)}?</h1>"
                f"<p>Signed in as {escape(ehr.user)}; scopes: "
                f"{escape(grant.request.payload.scope or '')}</p>"
                f"<form method='post' action='/authorize'>{hidden}"
                "<button type='submit' name='confirm' value='yes'>Approve</button></form>"
                "</body></html>", content_type="text/html")

        @app.post("/authorize")
        def authorize_confirm() -> Any:
            user = ehr.user if request.form.get("confirm") == "yes" else None
            grant = server.get_consent_grant(end_user=ehr.user)
            return server.create_authorization_response(grant=grant, grant_user=user)

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        @app.get("/ehr/chart")
        def chart() -> Response:
            patient = request.args["patient"]
            app_base = request.args["app"]
            view = request.args.get("view", "forms")
            url = ehr.launch_url(app_base, patient, view=view)
            return Response(
                "<!doctype html><html lang='en'><title>EHR chart</title>"
                "<link rel='icon' href='data:,'><body>"
                f"<h1>Chart of patient {escape(patient)}</h1>"
                f"<a id='launch' href='{escape(url)}'>Open MIT {escape(view)}</a>"
                "</body></html>", content_type="text/html")

        @app.get("/portal")
        def portal() -> Response:
            """The patient portal's page: its "My forms" link is a portal launch."""
            url = ehr.launch_url(request.args["app"], request.args["patient"], view="patient")
            return Response(
                "<!doctype html><html lang='en'><title>Patient portal</title>"
                "<link rel='icon' href='data:,'><body><h1>Your portal</h1>"
                f"<a id='launch' href='{escape(url)}'>My forms</a></body></html>",
                content_type="text/html")

        @app.get("/ehr/frame")
        def frame() -> Response:
            """The chart with the app embedded, as EHRs show SMART apps in an iframe."""
            url = ehr.launch_url(request.args["app"], request.args["patient"])
            return Response(
                "<!doctype html><html lang='en'><title>EHR chart</title><link rel='icon' "
                "href='data:,'><body><h1>Chart</h1>"
                f"<iframe id='app' title='MIT forms' src='{escape(url)}' width='1200' "
                "height='800'></iframe></body></html>", content_type="text/html")

        @app.route("/fhir/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
        def fhir(path: str) -> Response:
            header = request.headers.get("Authorization", "")
            granted = ehr.access.get(header.removeprefix("Bearer ").strip())
            if not header.startswith("Bearer ") or granted is None \
                    or granted["expires_at"] < time.time():
                return Response('{"resourceType":"OperationOutcome","issue":[{"severity":'
                                '"error","code":"login"}]}', 401,
                                content_type="application/fhir+json")
            ehr.fhir_requests.append((request.method, path))
            resp = requests.request(
                request.method, f"{ehr.fhir_backend}/{path}", params=request.args,
                data=request.get_data(), timeout=10,
                headers={"Content-Type": request.headers.get("Content-Type",
                                                             "application/fhir+json"),
                         "Accept": "application/fhir+json"})
            return Response(resp.content, resp.status_code,
                            content_type=resp.headers.get("Content-Type"))

        return app

    def start(self) -> SmartEhr:
        self.port = self._serving.start()
        return self

    def stop(self) -> None:
        self._serving.stop()
