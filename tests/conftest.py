"""Shared fixtures: an app on a fresh SQLite file, its test client and CLI runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir import create_app

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLES = DATA / "samples"
FHIR_JSON = "application/fhir+json"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sample(questionnaire_id: str, name: str = "complete") -> dict[str, Any]:
    """A sample QuestionnaireResponse from tests/data/samples/<id>/<name>.json."""
    data: dict[str, Any] = load_json(SAMPLES / questionnaire_id / f"{name}.json")
    return data


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    application = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}"})
    yield application
    application.extensions["mit_fhir"].store.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class FhirActions:
    """Small helpers over the test client (flaskr's AuthActions pattern)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, path: str, resource: Any) -> Any:
        return self.client.post(path, data=json.dumps(resource), content_type=FHIR_JSON)

    def submit(self, qr: dict[str, Any]) -> Any:
        return self.post("/fhir/QuestionnaireResponse", qr)


@pytest.fixture
def fhir(client: FlaskClient) -> FhirActions:
    return FhirActions(client)
