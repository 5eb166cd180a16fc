"""The Host header (attacker report F4, F9): development mode answers loopback names only, so a
DNS-rebinding page gets nothing; with MIT_FHIR_BASE_URL set only its host is answered, so no
link or redirect is built from another name; the probes answer a pod's IP either way."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from mit_fhir.security.hosts import is_loopback_host
from mit_fhir.usecases.demo import load_demo
from tests.conftest import FHIR_JSON, sample, stored_counts

LOOPBACK = ["localhost", "LocalHost:5000", "127.0.0.1", "127.0.0.1:18310", "127.5.6.7:80",
            "[::1]", "[::1]:8080"]
FOREIGN = ["attacker.example", "attacker.example:18310", "localhost.attacker.example",
           "127.0.0.1.nip.io", "10.0.0.5", "[::ffff:127.0.0.1]", "127.1", "[::1]x", ""]
DEMO = "demo-mit-1"


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_names(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", FOREIGN)
def test_other_names(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.fixture
def demo(app: Flask) -> FlaskClient:
    load_demo(app.extensions["mit_fhir"])
    return app.test_client()


def _requests(client: FlaskClient, host: str) -> dict[str, int]:
    """The status of what a rebinding page would try: read, write, the pages."""
    qr = {**sample("phq-9"), "subject": {"reference": f"Patient/{DEMO}"}}
    headers = {"Host": host}
    return {
        "read": client.get(f"/app/api/patients/{DEMO}/outcomes", headers=headers).status_code,
        "search": client.get(f"/fhir/Observation?patient=Patient/{DEMO}",
                             headers=headers).status_code,
        "write": client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                             content_type=FHIR_JSON, headers=headers).status_code,
        "landing": client.get("/", headers=headers).status_code,
        "metadata": client.get("/fhir/metadata", headers=headers).status_code,
    }


@pytest.mark.parametrize("host", ["attacker.example:18310", "127.0.0.1.nip.io",
                                  "[::ffff:127.0.0.1]"])
def test_development_mode_refuses_other_host_names(app: Flask, demo: FlaskClient,
                                                   host: str) -> None:
    before = stored_counts(app)
    assert set(_requests(demo, host).values()) == {400}
    assert stored_counts(app) == before, "a refused request stored something"
    body = demo.get("/fhir/metadata", headers={"Host": host}).get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "loopback host names" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:18310", "[::1]:8080"])
def test_development_mode_answers_loopback_names(demo: FlaskClient, host: str) -> None:
    statuses = _requests(demo, host)
    assert statuses.pop("write") == 201
    assert statuses.pop("landing") != 400  # 404 until the landing page is merged
    assert set(statuses.values()) == {200}


def test_the_slash_merge_redirect_is_refused_before_it_names_the_host(demo: FlaskClient) -> None:
    resp = demo.get("/app/api/patients/pat-2%2F/outcomes", headers={"Host": "evil.example"})
    assert resp.status_code == 400 and "Location" not in resp.headers


@pytest.fixture
def based(database_url: str) -> Iterator[FlaskClient]:
    app = create_app({"DATABASE_URL": database_url,
                      "BASE_URL": "https://ehr.example.org/mit/fhir"})
    load_demo(app.extensions["mit_fhir"])
    yield app.test_client()
    app.extensions["mit_fhir"].store.dispose()


def test_with_a_base_url_only_its_host_is_answered(based: FlaskClient) -> None:
    assert set(_requests(based, "evil.example").values()) == {400}
    assert set(_requests(based, "localhost").values()) == {400}
    good = _requests(based, "ehr.example.org:443")
    assert good.pop("write") == 201 and good.pop("landing") != 400
    assert set(good.values()) == {200}
    resp = based.get("/app/api/patients/pat-2%2F/outcomes", headers={"Host": "evil.example"})
    assert resp.status_code == 400 and "Location" not in resp.headers
    body = resp.get_json()
    assert "MIT_FHIR_BASE_URL" in body["issue"][0]["diagnostics"]


def test_with_a_base_url_the_probes_answer_a_pod_ip(based: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert based.get(path, headers={"Host": "10.1.2.3:8080"}).status_code != 400, path
