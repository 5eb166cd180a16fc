"""Fixtures: a real identity provider (tests/security/issuer.py) and an app that trusts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from tests.security.issuer import Issuer

AUDIENCE = "https://mit.example.org/fhir"
PATIENT = "pat-1"
OTHER = "pat-2"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    idp = Issuer(AUDIENCE).start()
    idp.register("clinic-app", "user/*.cruds", fhir_user="Practitioner/dr-1")
    idp.register("reader-v1", "user/Observation.read user/QuestionnaireResponse.read "
                              "user/Questionnaire.read")
    idp.register("patient-app", "patient/*.cruds launch/patient", patient=PATIENT)
    idp.register("patient-reader", "patient/Observation.rs patient/QuestionnaireResponse.rs "
                                   "patient/Questionnaire.rs", patient=PATIENT)
    idp.register("patient-scopes-no-context", "patient/*.cruds")
    idp.register("backend", "system/*.rs system/QuestionnaireResponse.c")
    idp.register("narrowed", "user/Observation.rs?category=survey")
    try:
        yield idp
    finally:
        idp.stop()


def secured_settings(issuer: Issuer, **extra: Any) -> dict[str, Any]:
    return {"AUTH": "jwt", "AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": AUDIENCE, **extra}


@pytest.fixture
def secured_app(issuer: Issuer, database_url: str) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": database_url, **secured_settings(issuer)})
    yield app
    app.extensions["mit_fhir"].store.dispose()


@pytest.fixture
def api(secured_app: Flask) -> FlaskClient:
    return secured_app.test_client()


class Tokens:
    """Access tokens from the issuer's token endpoint, cached per client for the module."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self._cache: dict[tuple[str, str | None], str] = {}

    def __call__(self, client_id: str, scope: str | None = None) -> dict[str, str]:
        key = (client_id, scope)
        if key not in self._cache:
            self._cache[key] = self.issuer.token(client_id, scope)
        return {"Authorization": f"Bearer {self._cache[key]}"}


@pytest.fixture(scope="module")
def tokens(issuer: Issuer) -> Tokens:
    return Tokens(issuer)


@pytest.fixture
def secured_demo(issuer: Issuer, database_url: str) -> Iterator[Flask]:
    """A token-secured app holding the demo patient (tests of the outcomes and CDS routes)."""
    from mit_fhir.usecases.demo import load_demo

    app = create_app({"DATABASE_URL": database_url, **secured_settings(issuer)})
    load_demo(app.extensions["mit_fhir"])
    yield app
    app.extensions["mit_fhir"].store.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Patients A and B with data of every patient-data type (tests/security/attack.py)."""
    from tests.conftest import drop_database, fresh_database_url
    from tests.security.attack import build_world

    url = fresh_database_url(tmp_path_factory.mktemp("attack"))
    built = build_world(issuer, url)
    yield built
    built.app.extensions["mit_fhir"].store.dispose()
    drop_database(url)
