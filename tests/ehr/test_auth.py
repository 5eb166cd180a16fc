"""Authentication to the EHR against a real OAuth 2.0 token endpoint (Authlib, on loopback)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mit_fhir.config import ConfigError, load_settings
from mit_fhir.ehr.auth import BearerAuth, SmartBackendAuth, load_signing_key
from mit_fhir.ehr.client import EhrClient
from mit_fhir.ehr.errors import EhrRejected, EhrRetryable
from mit_fhir.ehr.factory import build_client
from tests.ehr import token_server as ts
from tests.ehr.token_server import CLIENT_ID, ClientKeys, TokenServer

client_keys = ts.client_keys
token_server = ts.token_server

SCOPE = "system/Observation.cruds system/QuestionnaireResponse.cruds"


class FakeClock:
    """A clock the test moves by hand, starting at the real time (the server checks exp)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def smart_auth(server: TokenServer, keys: ClientKeys, form: str = "jwks", alg: str = "RS384",
               **kwargs: Any) -> SmartBackendAuth:
    kid = ClientKeys.RSA_KID if alg == "RS384" else ClientKeys.EC_KID
    path = keys.jwks_file() if form == "jwks" else keys.pem_file("rsa" if alg == "RS384" else "ec")
    key, key_id = load_signing_key(path, kid)
    return SmartBackendAuth(server.token_url, CLIENT_ID, key, alg, key_id, SCOPE, **kwargs)


def last_token(server: TokenServer) -> str | None:
    return server.fhir_requests[-1][2]


# The token endpoint accepts well-formed assertions -----------------------------------------------
@pytest.mark.parametrize("alg", ["RS384", "ES384"])
@pytest.mark.parametrize("form", ["pem", "jwks"])
def test_token_from_signed_assertion(token_server: TokenServer, client_keys: ClientKeys,
                                     alg: str, form: str) -> None:
    auth = smart_auth(token_server, client_keys, form, alg)
    header = jwt.get_unverified_header(auth.assertion())
    assert header["alg"] == alg
    assert header["kid"] == (ClientKeys.RSA_KID if alg == "RS384" else ClientKeys.EC_KID)

    caps = EhrClient(token_server.fhir_base, auth).capabilities()

    assert caps.transaction
    assert token_server.issued == 1
    assert last_token(token_server) in token_server.tokens


def test_jwks_file_without_kid_setting_uses_the_files_kid(client_keys: ClientKeys) -> None:
    _key, kid = load_signing_key(client_keys.jwks_file(), None)
    assert kid == ClientKeys.RSA_KID  # the first private key in the file


def test_signing_key_needs_a_kid(client_keys: ClientKeys) -> None:
    # SMART requires `kid` in the assertion header; a PEM file does not carry one.
    with pytest.raises(ValueError, match="MIT_FHIR_EHR_KEY_ID"):
        load_signing_key(client_keys.pem_file("rsa"), None)
    with pytest.raises(ValueError, match="no private key with that kid"):
        load_signing_key(client_keys.jwks_file(), "not-registered")


# ... and rejects bad ones, which the client reports without secrets ----------------------------
class ReplayingAuth(SmartBackendAuth):
    """A (broken) client that signs one assertion and sends it every time."""

    _fixed: str | None = None

    def assertion(self) -> str:
        if self._fixed is None:
            self._fixed = super().assertion()
        return self._fixed


def _wrong_key(server: TokenServer, keys: ClientKeys) -> SmartBackendAuth:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SmartBackendAuth(server.token_url, CLIENT_ID, other, "RS384", ClientKeys.RSA_KID, SCOPE)


def _wrong_aud(server: TokenServer, keys: ClientKeys) -> SmartBackendAuth:
    server.audience_override = "https://ehr.example.org/oauth/token"
    return smart_auth(server, keys)


def _expired(server: TokenServer, keys: ClientKeys) -> SmartBackendAuth:
    return smart_auth(server, keys, clock=lambda: time.time() - 3600)


def _unknown_client(server: TokenServer, keys: ClientKeys) -> SmartBackendAuth:
    auth = smart_auth(server, keys)
    auth.client_id = "someone-else"
    return auth


def _replayed(server: TokenServer, keys: ClientKeys) -> SmartBackendAuth:
    key, kid = load_signing_key(keys.jwks_file(), ClientKeys.EC_KID)
    auth = ReplayingAuth(server.token_url, CLIENT_ID, key, "ES384", kid, SCOPE)
    auth.token()  # the first use of the assertion is accepted
    auth.invalidate()
    return auth


@pytest.mark.parametrize("make_auth", [_wrong_key, _wrong_aud, _expired, _unknown_client,
                                       _replayed])
def test_token_endpoint_rejects_bad_assertions(token_server: TokenServer, client_keys: ClientKeys,
                                               make_auth: Any) -> None:
    auth = make_auth(token_server, client_keys)
    issued_before = token_server.issued
    client = EhrClient(token_server.fhir_base, auth)

    with pytest.raises(EhrRejected) as err:
        client.capabilities()

    assert err.value.status in (400, 401)
    assert str(err.value) == "token request refused: invalid_client"
    assert token_server.issued == issued_before
    assert token_server.fhir_requests == []  # nothing reached the FHIR endpoint


def test_rejection_message_holds_no_secret(token_server: TokenServer,
                                           client_keys: ClientKeys) -> None:
    auth = _replayed(token_server, client_keys)
    assertion = auth.assertion()
    with pytest.raises(EhrRejected) as err:
        auth.token()
    text = f"{err.value} {err.value.args} {err.value.outcome}"
    assert assertion not in text
    assert assertion.split(".")[2] not in text  # not even the signature
    assert "PRIVATE KEY" not in text
    assert err.value.__cause__ is None and err.value.__context__ is None  # no form attached


def test_token_endpoint_down_is_retryable(client_keys: ClientKeys) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key, kid = load_signing_key(client_keys.jwks_file(), ClientKeys.RSA_KID)
    auth = SmartBackendAuth(f"http://127.0.0.1:{port}/oauth/token", CLIENT_ID, key, "RS384",
                            kid, SCOPE, timeout=2)
    with pytest.raises(EhrRetryable, match="token endpoint unreachable"):
        auth.token()


# Caching, renewal, and the 401 path -------------------------------------------------------------
def test_token_is_cached_across_requests(token_server: TokenServer,
                                         client_keys: ClientKeys) -> None:
    client = EhrClient(token_server.fhir_base, smart_auth(token_server, client_keys))
    for _ in range(10):
        client.request("GET", "metadata")
    assert token_server.issued == 1
    assert len({t for _m, _p, t in token_server.fhir_requests}) == 1
    assert len(token_server.fhir_requests) == 10


def test_token_is_renewed_shortly_before_expiry(token_server: TokenServer,
                                                client_keys: ClientKeys) -> None:
    token_server.expires_in = 60
    clock = FakeClock()
    client = EhrClient(token_server.fhir_base, smart_auth(token_server, client_keys, clock=clock))

    client.request("GET", "metadata")
    first = last_token(token_server)
    clock.advance(29)  # 31 s left: still good
    client.request("GET", "metadata")
    assert last_token(token_server) == first
    assert token_server.issued == 1

    clock.advance(2)  # 29 s left: inside the 30 s margin, renew before the EHR refuses it
    client.request("GET", "metadata")
    assert last_token(token_server) != first
    assert token_server.issued == 2


def test_short_lived_tokens_are_not_cached_past_their_life(token_server: TokenServer,
                                                           client_keys: ClientKeys) -> None:
    token_server.expires_in = 20  # shorter than the margin: fetch one per request
    client = EhrClient(token_server.fhir_base, smart_auth(token_server, client_keys))
    client.request("GET", "metadata")
    client.request("GET", "metadata")
    assert token_server.issued == 2


def test_401_invalidates_and_renews_once(token_server: TokenServer,
                                         client_keys: ClientKeys) -> None:
    client = EhrClient(token_server.fhir_base, smart_auth(token_server, client_keys))
    client.request("GET", "metadata")
    first = last_token(token_server)

    token_server.revoke_all()  # the EHR forgot our token before it expired
    resp = client.request("POST", "", {"resourceType": "Bundle", "type": "transaction",
                                       "entry": [{"request": {"method": "POST",
                                                              "url": "Observation"}}]})

    assert resp.status_code == 200
    assert token_server.issued == 2
    assert last_token(token_server) != first
    assert token_server.fhir_requests[-1][:2] == ("POST", "/fhir")


def test_401_after_a_fresh_token_is_rejected_not_looped(token_server: TokenServer,
                                                        client_keys: ClientKeys) -> None:
    token_server.honour_tokens = False
    client = EhrClient(token_server.fhir_base, smart_auth(token_server, client_keys))
    with pytest.raises(EhrRejected) as err:
        client.request("GET", "metadata")
    assert err.value.status == 401
    assert token_server.issued == 2  # the first token and exactly one renewal


# Discovery, bearer tokens, configuration --------------------------------------------------------
def _settings(**raw: Any) -> dict[str, Any]:
    return load_settings({"AUTH": "none", **{k: v for k, v in raw.items() if v is not None}})


def test_token_endpoint_is_discovered(token_server: TokenServer,
                                      client_keys: ClientKeys) -> None:
    settings = _settings(EHR_BASE_URL=token_server.fhir_base, EHR_AUTH="smart-backend",
                         EHR_CLIENT_ID=CLIENT_ID, EHR_PRIVATE_KEY_FILE=str(client_keys.jwks_file()),
                         EHR_KEY_ID=ClientKeys.EC_KID, EHR_SIGNING_ALG="ES384")
    assert settings["EHR_TOKEN_URL"] is None

    client = build_client(settings)

    assert isinstance(client.auth, SmartBackendAuth)
    assert client.auth.token_url == token_server.token_url
    assert client.capabilities().transaction
    assert token_server.issued == 1


def test_configured_token_url_wins_over_discovery(token_server: TokenServer,
                                                  client_keys: ClientKeys) -> None:
    settings = _settings(EHR_BASE_URL="http://127.0.0.1:9/nowhere", EHR_AUTH="smart-backend",
                         EHR_CLIENT_ID=CLIENT_ID, EHR_TOKEN_URL=token_server.token_url,
                         EHR_PRIVATE_KEY_FILE=str(client_keys.pem_file("rsa")),
                         EHR_KEY_ID=ClientKeys.RSA_KID)
    client = build_client(settings)  # no request to the (unreachable) base
    assert isinstance(client.auth, SmartBackendAuth)
    assert client.auth.token() in token_server.tokens


def test_no_discovery_document_is_a_clear_error(token_server: TokenServer,
                                                client_keys: ClientKeys) -> None:
    settings = _settings(EHR_BASE_URL=f"{token_server.url}/elsewhere", EHR_AUTH="smart-backend",
                         EHR_CLIENT_ID=CLIENT_ID, EHR_PRIVATE_KEY_FILE=str(client_keys.jwks_file()))
    with pytest.raises(EhrRejected, match="MIT_FHIR_EHR_TOKEN_URL"):
        build_client(settings)


def test_bearer_auth_sends_its_token(token_server: TokenServer, client_keys: ClientKeys,
                                     tmp_path: Path) -> None:
    issued = smart_auth(token_server, client_keys).token()
    secret = tmp_path / "ehr-token"
    secret.write_text(issued + "\n", encoding="utf-8")

    client = build_client(_settings(EHR_BASE_URL=token_server.fhir_base, EHR_AUTH="bearer",
                                    EHR_BEARER_TOKEN_FILE=str(secret)))

    assert isinstance(client.auth, BearerAuth)
    client.request("GET", "metadata")
    assert last_token(token_server) == issued


def test_bearer_auth_with_a_bad_token_is_rejected(token_server: TokenServer) -> None:
    client = EhrClient(token_server.fhir_base, BearerAuth("not-a-token-it-issued"))
    with pytest.raises(EhrRejected) as err:
        client.request("GET", "metadata")
    assert err.value.status == 401
    assert "not-a-token-it-issued" not in str(err.value)


@pytest.mark.parametrize(("raw", "missing"), [
    ({}, "MIT_FHIR_EHR_CLIENT_ID: required"),
    ({"EHR_CLIENT_ID": CLIENT_ID}, "MIT_FHIR_EHR_PRIVATE_KEY_FILE: required"),
    ({"EHR_CLIENT_ID": CLIENT_ID, "EHR_PRIVATE_KEY_FILE": "/nonexistent/key.pem"},
     "MIT_FHIR_EHR_PRIVATE_KEY_FILE: no such file"),
    ({"EHR_CLIENT_ID": CLIENT_ID, "EHR_SIGNING_ALG": "RS256"}, "MIT_FHIR_EHR_SIGNING_ALG"),
])
def test_smart_backend_configuration_is_validated(raw: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        load_settings({"AUTH": "none", "EHR_BASE_URL": "http://ehr.test/fhir",
                       "EHR_AUTH": "smart-backend",
                       **raw})


def test_smart_backend_configuration_complete(client_keys: ClientKeys) -> None:
    settings = load_settings({"AUTH": "none", "EHR_BASE_URL": "http://ehr.test/fhir",
                       "EHR_AUTH": "smart-backend",
                              "EHR_CLIENT_ID": CLIENT_ID,
                              "EHR_PRIVATE_KEY_FILE": str(client_keys.jwks_file())})
    assert settings["EHR_SIGNING_ALG"] == "RS384"


def test_bearer_configuration_needs_the_token_file() -> None:
    with pytest.raises(ConfigError, match="MIT_FHIR_EHR_BEARER_TOKEN_FILE: required"):
        load_settings({"AUTH": "none", "EHR_BASE_URL": "http://ehr.test/fhir",
                       "EHR_AUTH": "bearer"})
