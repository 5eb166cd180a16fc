"""/healthz (process alive) and /readyz (database, migrations, and the EHR when configured).

The EHR is a loopback HTTP server that answers GET /fhir/metadata (up), or a loopback port
nothing listens on (down).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from mit_fhir.api import health
from mit_fhir.app import create_app


class FakeEhr:
    """A loopback FHIR server whose /metadata answers `status`, counting the requests."""

    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps({"resourceType": "CapabilityStatement"}).encode()
                code = owner.status if self.path == "/fhir/metadata" else 404
                self.send_response(code)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ehr() -> Iterator[FakeEhr]:
    server = FakeEhr()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def make_app(database_url: str) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        app = create_app({"DATABASE_URL": database_url, **settings})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["mit_fhir"].store.dispose()


def test_healthz_is_unchanged(client: Any) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_ready_without_an_ehr(client: Any) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "database": "ok", "migrations": "ok",
                               "ehr": "not checked"}


def test_ready_when_the_ehr_answers(make_app: Any, ehr: FakeEhr) -> None:
    resp = make_app(EHR_BASE_URL=ehr.base).test_client().get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ehr"] == "ok"
    assert ehr.hits == 1


def test_not_ready_when_the_ehr_is_down(make_app: Any) -> None:
    base = f"http://127.0.0.1:{closed_port()}/fhir"
    resp = make_app(EHR_BASE_URL=base).test_client().get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable"
    assert body["not_ready"] == ["ehr"]
    assert body["ehr"].startswith("unreachable (")
    assert body["database"] == "ok"
    assert "127.0.0.1" not in resp.get_data(as_text=True), "no URL in the body"


def test_not_ready_when_the_ehr_answers_an_error(make_app: Any, ehr: FakeEhr) -> None:
    ehr.status = 503
    resp = make_app(EHR_BASE_URL=ehr.base).test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["ehr"] == "HTTP 503"


def test_the_ehr_answer_is_cached(make_app: Any, ehr: FakeEhr) -> None:
    client = make_app(EHR_BASE_URL=ehr.base).test_client()
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert ehr.hits == 1, "probes within the cache time must not reach the EHR"


def test_probe_checks_again_after_the_cache_time(ehr: FakeEhr) -> None:
    now = [0.0]
    probe = health.EhrProbe(ehr.base, timeout=1.0, ttl=5.0, clock=lambda: now[0])
    assert probe.status() == "ok"
    ehr.status = 500
    now[0] = 4.9
    assert probe.status() == "ok"
    now[0] = 5.1
    assert probe.status() == "HTTP 500"
    assert ehr.hits == 2


def test_the_ehr_check_can_be_switched_off(make_app: Any) -> None:
    base = f"http://127.0.0.1:{closed_port()}/fhir"
    resp = make_app(EHR_BASE_URL=base, READY_CHECK_EHR="false").test_client().get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json()["ehr"] == "not checked"


def test_not_ready_when_migrations_are_pending(app: Flask) -> None:
    with app.extensions["mit_fhir"].store.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["not_ready"] == ["migrations"]
    assert (body["database"], body["migrations"]) == ("ok", "pending")


def test_not_ready_when_the_database_is_unreachable(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_engine: Any) -> bool:
        raise OSError("connection refused")

    monkeypatch.setattr(health, "is_current", down)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["not_ready"] == ["database", "migrations"]
    assert body["database"] == "unreachable"


def test_an_unready_database_is_logged_with_its_traceback(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (here a KeyError) must not read as "unreachable" only: the log keeps the traceback."""
    def broken(_engine: Any) -> bool:
        raise KeyError("a bug, not a network")

    monkeypatch.setattr(health, "is_current", broken)
    with caplog.at_level("WARNING", logger="mit_fhir"):
        assert app.test_client().get("/readyz").status_code == 503
    record = next(r for r in caplog.records if "readiness" in r.getMessage())
    assert record.exc_info and record.exc_info[0] is KeyError
