"""The issuer's keys: discovery, caching, rotation, a JWKS file, and an issuer that is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mit_fhir.security.tokens import KeySource, KeysUnavailable, TokenError, TokenVerifier
from tests.security.conftest import AUDIENCE
from tests.security.issuer import Issuer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifier(keys: KeySource) -> TokenVerifier:
    return TokenVerifier(keys, AUDIENCE, ["RS256"])


def test_keys_are_discovered_and_cached(issuer: Issuer) -> None:
    clock = Clock()
    keys = KeySource(issuer.url, cache_seconds=300, clock=clock)
    before = issuer.jwks_requests
    for _ in range(20):
        who = _verifier(keys).verify(issuer.mint({"scope": "user/*.rs", "sub": "u"}))
    assert who.subject == "u"
    assert keys.jwks_url == f"{issuer.url}/jwks"
    assert issuer.jwks_requests - before == 1
    clock.now += 301  # the cache expires: fetched again
    _verifier(keys).verify(issuer.mint({"sub": "u"}))
    assert issuer.jwks_requests - before == 2


def test_a_rotated_key_is_fetched_once_and_forged_kids_do_not_hammer_the_issuer() -> None:
    idp = Issuer(AUDIENCE).start()
    try:
        clock = Clock()
        keys = KeySource(idp.url, cache_seconds=300, clock=clock)
        verifier = _verifier(keys)
        verifier.verify(idp.mint({"sub": "u"}))
        idp.rotate()
        fetched = idp.jwks_requests
        clock.now += 11  # past the refresh interval, well within the cache lifetime
        assert verifier.verify(idp.mint({"sub": "u"})).subject == "u"
        assert idp.jwks_requests == fetched + 1
        for n in range(5):  # unknown kids within the interval: refused, no new fetches
            with pytest.raises(TokenError, match="signing key"):
                verifier.verify(idp.mint({"sub": "u"}, kid=f"forged-{n}"))
        assert idp.jwks_requests == fetched + 1
    finally:
        idp.stop()


def test_keys_from_a_file_are_reread_when_it_changes(tmp_path: Path) -> None:
    idp = Issuer(AUDIENCE)  # not started: a site that mounts its IdP's keys as a file
    idp.port = 1
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": idp.published}))
    verifier = _verifier(KeySource(idp.url, jwks_file=str(path)))
    verifier.verify(idp.mint({"sub": "u"}))
    idp.rotate()
    with pytest.raises(TokenError):
        verifier.verify(idp.mint({"sub": "u"}))
    path.write_text(json.dumps({"keys": idp.published}, indent=1))
    assert verifier.verify(idp.mint({"sub": "u"})).subject == "u"


def test_an_unreachable_issuer_is_unavailable_not_unauthorised() -> None:
    keys = KeySource("http://127.0.0.1:9", clock=Clock())
    with pytest.raises(KeysUnavailable):
        keys.key("any")


def test_claims_become_the_principal(issuer: Issuer) -> None:
    token = issuer.mint({"sub": "dr-1", "scp": ["user/Observation.rs"], "patient": "p9",
                         "fhirUser": "Practitioner/dr-1", "azp": "ehr-app"})
    who = _verifier(KeySource(issuer.url)).verify(token)
    assert (who.subject, who.client_id, who.patient, who.fhir_user) == (
        "dr-1", "ehr-app", "p9", "Practitioner/dr-1")
    assert who.scope_text == "user/Observation.rs"


@pytest.mark.parametrize("patient", [
    ["pat-1"], ["pat-1", "pat-2"], {"id": "pat-1"}, 7, 1.5, True, "", "pat 1", "pat-1\n",
    "Patient/pat-1", "x" * 65, "p\u0430t",  # Cyrillic a
])
def test_a_malformed_patient_claim_is_401_not_no_patient_context(
        issuer: Issuer, patient: object) -> None:
    # Read as "no patient context", such a token would see every patient its user/ scopes allow.
    token = issuer.mint({"sub": "u", "scope": "user/*.rs patient/*.rs", "patient": patient})
    with pytest.raises(TokenError, match="'patient' claim"):
        _verifier(KeySource(issuer.url)).verify(token)


@pytest.mark.parametrize(("claim", "value"), [
    ("scope", {"user/*.rs": True}), ("scope", 7), ("scope", True), ("scope", ["user/*.rs", 7]),
    ("scp", {"a": 1}), ("scp", ["user/*.rs", None]), ("scp", 3),
])
def test_a_malformed_scope_claim_is_401(issuer: Issuer, claim: str, value: object) -> None:
    token = issuer.mint({"sub": "u", claim: value})
    with pytest.raises(TokenError, match=f"'{claim}' claim"):
        _verifier(KeySource(issuer.url)).verify(token)


@pytest.mark.parametrize("claims", [
    {"patient": None}, {}, {"scope": None}, {"scope": "openid user/*.rs"},
    {"scp": ["user/*.rs", "openid"]}, {"scp": "user/*.rs"}, {"scope": ["user/*.rs"]},
])
def test_absent_or_null_claims_are_still_accepted(issuer: Issuer, claims: dict) -> None:
    who = _verifier(KeySource(issuer.url)).verify(issuer.mint({"sub": "u", **claims}))
    assert who.patient is None
