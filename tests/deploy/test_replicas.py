"""Three replicas and two sync workers on one PostgreSQL database: everything reaches the EHR once.

The production shape (deploy/): several `mit-fhir serve` replicas without their own worker
(MIT_FHIR_SYNC_WORKER=false) and separate `mit-fhir worker` processes, all on one PostgreSQL
database. Started here together on an empty schema (so their start-up migrations race), with a
Medplum test server as the EHR. 2,000 PHQ-9 responses are submitted across the replicas at once
(for 100 patients whose ids are new in each run: a submission looks up the patient's earlier
scores, so 2,000 for one patient would measure that look-up rather than the replicas);
when the outbox is drained, the EHR must hold each QuestionnaireResponse and each of its three
Observations exactly once, and both workers must have delivered some of them
(outbox.delivered_by). PostgreSQL only: SQLite is one file on one machine, not a shared store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select

from mit_fhir.store.schema import outbox
from tests.conftest import (
    FHIR_JSON,
    ROOT,
    fresh_database_url,
    on_postgresql,
    sample,
    service_env,
    service_log,
)
from tests.servers.fixtures import MedplumServer, free_port
from tests.sync.rig import identifier_values, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not on_postgresql(),
                       reason="PostgreSQL only (MIT_FHIR_TEST_DATABASE=postgresql): replicas "
                              "share one database server, which SQLite is not"),
]

RESPONSES = int(os.environ.get("MIT_FHIR_REPLICA_RESPONSES", "2000"))
REPLICAS = 3
WORKERS = 2
CLIENT_THREADS = 16
PATIENTS = 100
DRAIN_TIMEOUT = 300.0
BIN = Path(sys.executable).parent


class Processes:
    """Child processes in their own sessions, each with a log file; all stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.running.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.running:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.log(name)}"

    def stop_all(self) -> None:
        for _name, proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in self.running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[MedplumServer]:
    server = MedplumServer(tmp_path / "medplum")
    server.start()
    yield server
    server.close()


def ehr_all(base_url: str, rtype: str, prefix: str) -> list[dict[str, Any]]:
    """Every `rtype` in the EHR whose subject is one of this run's patients (all pages)."""
    found: list[dict[str, Any]] = []
    url: str | None = f"{base_url}/{rtype}?_count=1000"
    for _ in range(1000):
        if url is None:
            break
        bundle = requests.get(url, headers={"Accept": FHIR_JSON}, timeout=60).json()
        found += [e["resource"] for e in bundle.get("entry", [])
                  if e.get("resource", {}).get("resourceType") == rtype]
        url = next((link["url"] for link in bundle.get("link", [])
                    if link.get("relation") == "next"), None)
    return [r for r in found
            if str(r.get("subject", {}).get("reference", "")).startswith(f"Patient/{prefix}")]


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_three_replicas_and_two_workers_deliver_every_resource_exactly_once(
    ehr: MedplumServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = fresh_database_url(tmp_path, "replicas")
    env = service_env(DATABASE_URL=database, EHR_BASE_URL=ehr.base_url, SYNC_WORKER="false",
                      SYNC_POLL_INTERVAL="0.2", LOG_LEVEL="WARNING")
    procs = Processes(service_log("replicas").parent)
    bases = []
    try:
        # All at once, on an empty schema: the replicas' start-up migrations must not collide.
        for n in range(REPLICAS):
            port = free_port()
            procs.start(f"serve-{n}", [str(BIN / "mit-fhir"), "serve", "--host", "127.0.0.1",
                                       "--port", str(port), "--workers", "1"], env)
            bases.append(f"http://127.0.0.1:{port}")
        for n in range(WORKERS):
            procs.start(f"worker-{n}", [sys.executable, "-m", "mit_fhir", "worker"], env)
        for base in bases:
            wait_for(lambda base=base: _healthy(base) or procs.check_alive(), 60,
                     f"{base} to start")

        prefix = f"replicas-{uuid.uuid4().hex[:12]}-"
        payloads = [json.dumps({**sample("phq-9"),
                                "subject": {"reference": f"Patient/{prefix}{n}"}})
                    for n in range(PATIENTS)]

        def submit(n: int) -> tuple[int, str]:
            # A connection per request: a kept-alive one that gunicorn closes as the next POST
            # goes out is reset, and a POST must not be retried blindly (it would store twice).
            resp = requests.post(f"{bases[n % REPLICAS]}/fhir/QuestionnaireResponse",
                                 data=payloads[n % PATIENTS],
                                 headers={"Content-Type": FHIR_JSON, "Connection": "close"},
                                 timeout=60)
            return resp.status_code, resp.json().get("id", resp.text)

        started = time.monotonic()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            answers = list(pool.map(submit, range(RESPONSES)))
        submitted = time.monotonic()
        statuses = Counter(status for status, _ in answers)
        assert statuses == {201: RESPONSES}, [a for a in answers if a[0] != 201][:5]
        ids = [rid for _, rid in answers]
        assert len(set(ids)) == RESPONSES

        rows = RESPONSES * 4  # the response, then its panel, total and severity Observations

        def drained() -> bool:
            procs.check_alive()
            counts = requests.get(f"{bases[0]}/sync/status", timeout=10).json()["counts"]
            assert counts["failed"] == 0 and counts["conflict"] == 0, counts
            return bool(counts["pending"] == 0 and counts["sent"] >= rows)

        wait_for(drained, DRAIN_TIMEOUT, "the outbox to drain")
        delivered = time.monotonic()
        status = requests.get(f"{bases[1]}/sync/status", timeout=10).json()
        assert status["counts"]["sent"] == rows, status["counts"]

        responses = ehr_all(ehr.base_url, "QuestionnaireResponse", prefix)
        observations = ehr_all(ehr.base_url, "Observation", prefix)
        assert sorted(identifier_values(responses)) == sorted(ids)  # each response once
        values = identifier_values(observations)
        assert len(values) == 3 * RESPONSES and len(set(values)) == 3 * RESPONSES

        engine = create_engine(database)
        try:
            with engine.connect() as conn:
                per_worker = dict(conn.execute(
                    select(outbox.c.delivered_by, func.count()).where(outbox.c.state == "sent")
                    .group_by(outbox.c.delivered_by)).all())
                claims = dict(conn.execute(
                    select(outbox.c.claims, func.count()).group_by(outbox.c.claims)).all())
        finally:
            engine.dispose()
        started_ids = {line.split()[2] for n in range(WORKERS)
                       for line in procs.log(f"worker-{n}").splitlines()
                       if line.startswith("sync worker ")}
        assert set(per_worker) == started_ids and len(started_ids) == WORKERS, per_worker
        assert all(count > 0 for count in per_worker.values()), per_worker
        assert sum(per_worker.values()) == rows
    finally:
        procs.stop_all()

    submit_s, total_s = submitted - started, delivered - started
    with capsys.disabled():  # the measured figures, in every run's output
        print(f"\nreplicas: {RESPONSES} responses over {REPLICAS} replicas in {submit_s:.1f} s "
              f"({RESPONSES / submit_s:.0f} submissions/s, {CLIENT_THREADS} client threads); "
              f"{rows} outbox rows delivered by {WORKERS} workers {total_s:.1f} s after the "
              f"first submission ({rows / total_s:.0f} rows/s end to end); per worker "
              f"{per_worker}; claims per row {dict(sorted(claims.items()))}")
