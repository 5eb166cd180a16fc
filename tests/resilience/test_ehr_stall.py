"""The EHR stalls past MIT_FHIR_EHR_TIMEOUT: nothing lost or duplicated once it answers again.

A loopback proxy (tests/sync/rig.py HoldingProxy) forwards the worker's transaction Bundles to a
real FHIR server at once, so the EHR commits them, but holds the answer back far longer than the
worker's timeout. The worker gives up on each round without knowing what the EHR did; once the
EHR answers again, every response and Observation must be in the EHR exactly once.
"""

from __future__ import annotations

from pathlib import Path

from tests.servers import fixtures
from tests.servers.fixtures import FhirTestServer
from tests.sync.rig import HoldingProxy, Rig, ehr_resources, identifier_values, wait_for

EHR_TIMEOUT = 3.0  # seconds: a loaded machine answers within it; the held answer never does
RESPONSES = 6


own_fhir_server = fixtures.own_fhir_server  # each server, started for one test


def test_an_ehr_stalling_past_the_timeout_loses_and_duplicates_nothing(
    own_fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    with HoldingProxy(own_fhir_server.base_url) as proxy:
        rig = Rig(tmp_path, proxy.base_url, EHR_TIMEOUT=EHR_TIMEOUT)
        try:
            ids = [rig.submit("phq-9")["id"] for _ in range(RESPONSES)]
            queued = rig.counts()["pending"]
            assert queued == 4 * RESPONSES  # response, panel, total, band

            proxy.hold.set()
            rig.worker.run_once()  # its Bundle reaches the EHR; the answer does not come back
            wait_for(proxy.forwarded.is_set, 30, "a Bundle to reach the stalled EHR")
            counts = rig.counts()
            assert counts["sent"] == 0 and counts["pending"] == queued and counts["failed"] == 0
            # The EHR did commit what it never acknowledged.
            assert ehr_resources(own_fhir_server.base_url, "QuestionnaireResponse", rig.patient)
            assert any(row.attempts >= 1 for row in rig.rows())  # the timeout counted

            proxy.hold.clear()
            proxy.release.set()  # the EHR answers again
            counts = rig.drain(timeout=120)
            assert counts["sent"] == queued and counts["failed"] == 0
            assert counts["conflict"] == 0

            responses = ehr_resources(own_fhir_server.base_url, "QuestionnaireResponse",
                                      rig.patient)
            observations = ehr_resources(own_fhir_server.base_url, "Observation", rig.patient)
            assert sorted(identifier_values(responses)) == sorted(ids)  # each exactly once
            values = identifier_values(observations)
            assert len(values) == 3 * RESPONSES and len(set(values)) == len(values)
        finally:
            rig.close()
