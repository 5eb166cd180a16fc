"""`mit-fhir serve` with an EHR configured runs the sync worker beside the web workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import FHIR_JSON, ROOT, sample, service_env, service_log
from tests.servers import fixtures
from tests.servers.fixtures import FhirTestServer, free_port
from tests.sync.rig import ehr_resources, wait_for

medplum_server = fixtures.medplum_server




def test_served_submissions_reach_the_ehr(
    medplum_server: FhirTestServer, tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    env = service_env(DATABASE_URL=database_url, EHR_BASE_URL=medplum_server.base_url,
                      SYNC_POLL_INTERVAL="0.1")
    log_path = service_log("serve-sync")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mit-fhir"), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "2"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(base), 30, "the server to start")
        qr = {**sample("gad-7"), "subject": {"reference": "Patient/served-sync"}}
        resp = requests.post(f"{base}/fhir/QuestionnaireResponse", data=json.dumps(qr),
                             headers={"Content-Type": FHIR_JSON}, timeout=10)
        assert resp.status_code == 201
        wait_for(lambda: requests.get(f"{base}/sync/status", timeout=5).json()["counts"]["sent"]
                 == 4, 30, "the worker started by serve to deliver")
        assert len(ehr_resources(medplum_server.base_url, "Observation", "served-sync")) == 3
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    # The supervisor stops the worker with the server: nothing is left running.
    assert subprocess.run(["pgrep", "-f", f"{tmp_path}"], capture_output=True).returncode != 0


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        time.sleep(0.1)
        return False
