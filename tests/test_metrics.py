"""Prometheus metrics: request counts by route, latency, extraction, outbox gauges, counters.

In-process tests read GET /metrics of a test app (prometheus_client's single-process mode: the
counters are process-wide, so each test compares before and after). The last test runs
`mit-fhir serve` with two gunicorn workers and checks that a scrape adds up every worker's
requests (multiprocess mode).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import EnvironBuilder

from mit_fhir import metrics
from mit_fhir.app import create_app
from mit_fhir.ehr.auth import NoAuth, SmartBackendAuth
from mit_fhir.ehr.client import EhrClient
from mit_fhir.sync import outbox
from mit_fhir.sync.worker import SyncSettings, Worker
from mit_fhir.web import metrics as web_metrics
from tests.conftest import FHIR_JSON, ROOT, sample, service_env, service_log
from tests.servers.fixtures import free_port

EHR = "http://ehr.test/fhir"


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics as {(sample name, labels): value}."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain; version=")
    return parse(resp.get_data(as_text=True))


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def submit(client: FlaskClient, form: str = "phq-9") -> Any:
    resp = client.post("/fhir/QuestionnaireResponse", data=json.dumps(sample(form)),
                       content_type=FHIR_JSON)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def sync_app(database_url: str) -> Iterator[Flask]:
    """Writes are queued for an EHR (no worker runs in-process)."""
    app = create_app({"DATABASE_URL": database_url, "EHR_BASE_URL": EHR})
    yield app
    app.extensions["mit_fhir"].store.dispose()


# Requests ------------------------------------------------------------------------------------
def test_a_request_moves_the_counter_of_its_route(client: FlaskClient) -> None:
    route = "/fhir/Questionnaire/<qid>"
    before = scrape(client)
    assert client.get("/fhir/Questionnaire/phq-9").status_code == 200
    assert client.get("/fhir/Questionnaire/gad-7").status_code == 200
    after = scrape(client)
    counted = "mit_fhir_http_requests_total"
    assert value(after, counted, method="GET", route=route, status="200") - value(
        before, counted, method="GET", route=route, status="200") == 2
    timed = "mit_fhir_http_request_duration_seconds_count"
    assert value(after, timed, method="GET", route=route) - value(
        before, timed, method="GET", route=route) == 2


def test_labels_carry_the_url_rule_never_the_path(client: FlaskClient) -> None:
    qr = submit(client)
    assert client.get(f"/fhir/QuestionnaireResponse/{qr['id']}").status_code == 200
    assert client.get("/no/such/path/patient-123").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    assert qr["id"] not in text
    assert "patient-123" not in text and "phq-9" not in text
    samples = parse(text)
    assert value(samples, "mit_fhir_http_requests_total", method="GET",
                 route=web_metrics.UNMATCHED, status="404") >= 1
    routes = {dict(labels).get("route") for (_, labels) in samples}
    assert "/fhir/QuestionnaireResponse/<rid>" in routes or any(
        r and r.startswith("/fhir/QuestionnaireResponse/<") for r in routes)


def _random_methods(count: int, seed: int = 12) -> list[str]:
    """Method names a client might invent (RFC 9110 tokens; Werkzeug upper-cases them)."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
    names = ["FOO", "Post", "PROPFIND", "BREW", "TRACE"]
    while len(names) < count:
        names.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))))
    return names


def test_unknown_methods_share_one_label(client: FlaskClient) -> None:
    methods = _random_methods(50)
    before = scrape(client)
    for method in methods:
        environ = EnvironBuilder("/fhir/metadata").get_environ()
        environ["REQUEST_METHOD"] = method  # as sent: Werkzeug's builder would upper-case it
        assert client.open(environ).status_code == 405
    after = scrape(client)
    labels = {dict(labels)["method"] for (name, labels) in after
              if name == "mit_fhir_http_requests_total"}
    known = web_metrics.KNOWN_METHODS
    assert labels <= known | {web_metrics.OTHER_METHOD}, labels - known
    unknown = [m for m in methods if m.upper() not in known]
    assert len(unknown) == 49  # "Post" is POST
    other = {"method": "OTHER", "route": web_metrics.UNMATCHED, "status": "405"}
    assert value(after, "mit_fhir_http_requests_total", **other) - value(
        before, "mit_fhir_http_requests_total", **other) == len(unknown)


def test_errors_are_counted_with_their_status(client: FlaskClient) -> None:
    before = scrape(client)
    resp = client.post("/fhir/QuestionnaireResponse", data="{", content_type=FHIR_JSON)
    assert resp.status_code == 400
    after = scrape(client)
    labels = {"method": "POST", "route": "/fhir/QuestionnaireResponse", "status": "400"}
    assert value(after, "mit_fhir_http_requests_total", **labels) - value(
        before, "mit_fhir_http_requests_total", **labels) == 1


def test_extraction_is_timed(client: FlaskClient) -> None:
    before = scrape(client)
    submit(client)
    after = scrape(client)
    name = "mit_fhir_extraction_duration_seconds"
    assert value(after, f"{name}_count") - value(before, f"{name}_count") == 1
    assert value(after, f"{name}_sum") > value(before, f"{name}_sum")


# The outbox, read at scrape time ----------------------------------------------------------------
def test_outbox_gauges_reflect_submitted_rows(sync_app: Flask) -> None:
    client = sync_app.test_client()
    empty = scrape(client)
    assert value(empty, "mit_fhir_outbox_up") == 1
    assert value(empty, "mit_fhir_outbox_depth") == 0
    assert value(empty, "mit_fhir_outbox_oldest_pending_age_seconds") == 0
    submit(client)
    submit(client, "gad-7")
    time.sleep(0.05)
    samples = scrape(client)
    status = client.get("/sync/status").get_json()
    pending = status["counts"]["pending"]
    assert pending >= 4  # two responses and their Observations
    assert value(samples, "mit_fhir_outbox_depth") == pending
    assert value(samples, "mit_fhir_outbox_rows", state="pending") == pending
    assert value(samples, "mit_fhir_outbox_rows", state="failed") == 0
    assert 0 < value(samples, "mit_fhir_outbox_oldest_pending_age_seconds") < 120


def test_outbox_gauges_do_not_break_the_scrape_when_the_database_is_down(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @property
        def engine(self) -> Any:
            raise RuntimeError("database down")

    with caplog.at_level(logging.WARNING, logger="mit_fhir.metrics"):
        text = generate_latest(web_metrics.outbox_registry(Broken())).decode()
    samples = parse(text)
    assert value(samples, "mit_fhir_outbox_up") == 0
    assert "mit_fhir_outbox_depth" not in text
    [record] = [r for r in caplog.records if r.name == "mit_fhir.metrics"]
    assert record.getMessage() == "outbox metrics unavailable"  # no row data in the message
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError  # the traceback


# Counters fed by the worker and the EHR client ----------------------------------------------------
def test_sync_failures_count_parked_rows(sync_app: Flask) -> None:
    submit(sync_app.test_client())
    bad = {"resourceType": "OperationOutcome",
           "issue": [{"severity": "error", "code": "invalid", "diagnostics": "no"}]}
    before = REGISTRY.get_sample_value(
        "mit_fhir_sync_failures_total", {"state": "failed"}) or 0.0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{EHR}/metadata", json={"resourceType": "CapabilityStatement",
                                          "rest": [{"mode": "server"}]})
        mock.post(EHR, status=422, json=bad)
        mock.add(responses.POST, re.compile(rf"{EHR}/\w+"), status=422, json=bad)
        worker = Worker(sync_app.extensions["mit_fhir"].store, EhrClient(EHR, NoAuth()),
                        SyncSettings(max_attempts=1), worker_id="w-metrics",
                        clock=lambda: time.time() + 1)
        worker.run_once()
    with sync_app.extensions["mit_fhir"].store.engine.connect() as conn:
        parked = outbox.status(conn, time.time())["counts"]["failed"]
    assert parked >= 1
    after = REGISTRY.get_sample_value("mit_fhir_sync_failures_total", {"state": "failed"})
    assert after == before + parked


@responses.activate
def test_token_refreshes_are_counted() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    token_url = "http://auth.test/token"
    responses.post(token_url, json={"access_token": "t1", "expires_in": 300})
    now = [1000.0]
    auth = SmartBackendAuth(token_url, "client", pem, "RS384", "kid-1", "system/*.read",
                            clock=lambda: now[0])
    before = REGISTRY.get_sample_value("mit_fhir_ehr_token_refreshes_total") or 0.0
    auth.token()
    auth.token()  # cached: no refresh
    now[0] += 290  # within the refresh margin
    auth.token()
    after = REGISTRY.get_sample_value("mit_fhir_ehr_token_refreshes_total")
    assert after == before + 2


def test_the_worker_serves_its_own_metrics() -> None:
    assert metrics.serve_worker_metrics(None) is None
    port = free_port()
    server, thread = metrics.serve_worker_metrics(port, addr="127.0.0.1")
    try:
        metrics.SYNC_FAILURES.labels("conflict").inc(0)
        resp = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert resp.status_code == 200
        assert "mit_fhir_sync_failures_total" in resp.text
        assert "mit_fhir_ehr_token_refreshes_total" in resp.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# Multiprocess mode under gunicorn -----------------------------------------------------------------


@pytest.mark.slow
def test_serve_adds_up_every_workers_samples(database_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # from an earlier run
    port = free_port()
    env = service_env(DATABASE_URL=database_url)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    log_path = service_log("serve-metrics")
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mit_fhir", "serve", "--port", str(port), "--workers", "2",
         "--threads", "1"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        assert not (metrics_dir / "counter_999999.db").exists(), "the directory was not emptied"
        count = 40
        with requests.Session() as s:
            for _ in range(count):
                # A new connection each time, so that both workers get some of them.
                assert s.get(f"{base}/fhir/Questionnaire/phq-9", timeout=10,
                             headers={"Connection": "close"}).status_code == 200
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2, "expected samples from more than one process"
        for _ in range(3):  # any worker may answer the scrape: each must see every request
            text = requests.get(f"{base}/metrics", timeout=10).text
            samples = parse(text)
            assert value(samples, "mit_fhir_http_requests_total", method="GET",
                         route="/fhir/Questionnaire/<qid>", status="200") == count
            assert value(samples, "mit_fhir_http_request_duration_seconds_count", method="GET",
                         route="/fhir/Questionnaire/<qid>") == count
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
