"""The database "restarts" under load: its connections to the service are terminated.

PostgreSQL only. The machine's server is shared, so it is never restarted: instead every backend
of this test's service (recognised by its application_name) is ended with pg_terminate_backend,
again and again while a client submits. Requests caught by it must fail cleanly (503
OperationOutcome, nothing half-stored); once it stops, everything succeeds; every submission
acknowledged with 201 is in the database exactly once, with its Observations.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.conftest import (
    FHIR_JSON,
    POSTGRES_URL,
    drop_database,
    fresh_database_url,
    on_postgresql,
    sample,
    schema_of,
)
from tests.resilience.live import live_service

pytestmark = pytest.mark.skipif(not on_postgresql(), reason="needs the PostgreSQL run")
SUBMISSIONS = 150


def _submission(n: int) -> dict[str, Any]:
    qr = sample("phq-9")
    qr["subject"] = {"reference": f"Patient/restart-{n % 5}"}
    qr["identifier"] = {"system": "urn:example:db-restart", "value": f"r-{n}"}
    return qr


class Terminator(threading.Thread):
    """Ends the service's backends every `every` seconds until stopped; counts what it ended."""

    def __init__(self, application_name: str, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.application_name = application_name
        self.every = every
        self.stop = threading.Event()
        self.ended = 0
        self.engine = create_engine(POSTGRES_URL, poolclass=NullPool)

    def run(self) -> None:
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            while not self.stop.is_set():
                self.ended += sum(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"),
                    {"name": self.application_name}).scalars())
                time.sleep(self.every)
        self.engine.dispose()


def test_terminated_connections_give_503_then_service_resumes_and_loses_nothing(
    tmp_path: Path,
) -> None:
    schema_url = fresh_database_url(tmp_path, "restart")
    schema = schema_of(schema_url)
    name = f"mitfhir-{uuid.uuid4().hex[:12]}"
    url = make_url(schema_url).update_query_dict({"application_name": name})
    service_url = url.render_as_string(hide_password=False)
    statuses: dict[int, int] = {}
    unavailable: list[int] = []
    terminator = Terminator(name)
    try:
        with live_service(tmp_path, service_url) as base, requests.Session() as http:
            def post(n: int) -> requests.Response:
                return http.post(f"{base}/fhir/QuestionnaireResponse", json=_submission(n),
                                 headers={"Content-Type": FHIR_JSON}, timeout=30)

            assert post(0).status_code == 201  # connections exist before the first kill
            terminator.start()
            for n in range(1, SUBMISSIONS + 1):
                resp = post(n)
                statuses[n] = resp.status_code
                if resp.status_code != 201:
                    assert resp.status_code == 503, (resp.status_code, resp.text)
                    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
                    body = resp.json()
                    assert body["resourceType"] == "OperationOutcome"
                    assert body["issue"][0]["code"] == "transient"
                    unavailable.append(n)
            terminator.stop.set()
            terminator.join(10)
            assert terminator.ended > 0
            assert unavailable, "no request was caught by a terminated connection"

            # The database is back: new work succeeds, and retrying a 503 (same identifier)
            # stores it once, or finds it if its commit had gone through.
            assert post(SUBMISSIONS + 1).status_code == 201
            for n in unavailable:
                assert post(n).status_code in (200, 201)
            assert post(unavailable[0]).status_code == 200
        counts = _stored(schema)
        expected = {f"r-{n}" for n in range(SUBMISSIONS + 2)}
        assert set(counts["responses"]) == expected
        assert all(c == 1 for c in counts["responses"].values())  # exactly once each
        assert counts["observations"] == 3 * len(expected)  # panel, total, band: none lost
    finally:
        terminator.stop.set()
        drop_database(schema_url)
    print(f"terminated {terminator.ended} backends; {len(unavailable)} of {SUBMISSIONS} "
          f"requests answered 503")


def _stored(schema: str | None) -> dict[str, Any]:
    engine = create_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                f'SELECT resource_type, content FROM "{schema}".resource')).all()
    finally:
        engine.dispose()
    responses: dict[str, int] = {}
    observations = 0
    for rtype, content in rows:
        if rtype == "QuestionnaireResponse":
            ident = json.loads(content)["identifier"]["value"]
            responses[ident] = responses.get(ident, 0) + 1
        elif rtype == "Observation":
            observations += 1
    return {"responses": responses, "observations": observations}
