"""The production server: `mit-fhir serve` under gunicorn, exercised over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import FHIR_JSON, ROOT, fresh_database_url, sample, service_env, service_log
from tests.loopback import wait_healthy
from tests.servers.fixtures import free_port

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 30




@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = service_env(DATABASE_URL=fresh_database_url(tmp, "serve"))
    log_path = service_log("serve")
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(BIN / "mit-fhir"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(proc, base, log_path, STARTUP_SECONDS)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def test_health_and_readiness(server: str) -> None:
    assert requests.get(f"{server}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{server}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


def test_served_by_gunicorn(server: str) -> None:
    resp = requests.get(f"{server}/fhir/metadata", timeout=5)
    assert resp.headers["Server"].lower().startswith("gunicorn")


def test_metadata_over_http(server: str) -> None:
    resp = requests.get(f"{server}/fhir/metadata", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    body = resp.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["implementation"]["url"] == f"{server}/fhir"


def test_questionnaire_read_over_http(server: str) -> None:
    resp = requests.get(f"{server}/fhir/Questionnaire/phq-9", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["url"] == "https://mit-fhir.org/fhir/Questionnaire/phq-9"


def test_submission_over_http(server: str) -> None:
    qr = sample("gad-7")
    qr["subject"] = {"reference": "Patient/serve-test"}
    resp = requests.post(
        f"{server}/fhir/QuestionnaireResponse", json=qr,
        headers={"Content-Type": FHIR_JSON}, timeout=10,
    )
    assert resp.status_code == 201, resp.text
    location = resp.headers["Location"]
    new_id = resp.json()["id"]
    assert location == f"{server}/fhir/QuestionnaireResponse/{new_id}/_history/1"

    # Any worker can read it back and find it.
    for _ in range(4):
        read = requests.get(f"{server}/fhir/QuestionnaireResponse/{new_id}", timeout=5)
        assert read.status_code == 200
        assert read.json()["item"] == qr["item"]
    found = requests.get(
        f"{server}/fhir/QuestionnaireResponse", params={"subject": "Patient/serve-test"},
        timeout=5,
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [new_id]


def test_errors_over_http_are_outcomes(server: str) -> None:
    resp = requests.post(
        f"{server}/fhir/QuestionnaireResponse", data=b"{nope",
        headers={"Content-Type": FHIR_JSON}, timeout=5,
    )
    assert resp.status_code == 400
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_python_m_mit_fhir_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mit_fhir", "--help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "wording" in result.stdout


def test_serve_refuses_a_bad_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIT_FHIR_")}
    env["MIT_FHIR_AUTH"] = "none"  # development mode: the tests serve on loopback
    env["MIT_FHIR_MAX_BODY_BYTES"] = "nope"
    result = subprocess.run(
        [str(BIN / "mit-fhir"), "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )
    assert result.returncode == 1
    assert "MIT_FHIR_MAX_BODY_BYTES" in result.stderr
