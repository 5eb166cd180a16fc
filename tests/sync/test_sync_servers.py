"""Sync against real FHIR servers (Medplum's router behind our front, and sekmet): same suite.

Each test uses its own patient id; the session's servers are shared. The fault tests start
servers of their own, since they stop and restart them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mit_fhir.ehr.factory import build_client
from mit_fhir.ehr.readback import medication_requests
from mit_fhir.store import repository
from mit_fhir.sync import outbox
from tests.conftest import FHIR_JSON, ROOT
from tests.servers import fixtures
from tests.servers.fixtures import FhirTestServer
from tests.sync.rig import HoldingProxy, Rig, ehr_resources, identifier_values, wait_for

fhir_server = fixtures.fhir_server
medplum_server = fixtures.medplum_server
sekmet_server = fixtures.sekmet_server
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture
def rig(tmp_path: Path, fhir_server: FhirTestServer) -> Iterator[Rig]:
    r = Rig(tmp_path, fhir_server.base_url)
    yield r
    r.close()


def ehr(rig: Rig, rtype: str) -> list[dict[str, Any]]:
    return ehr_resources(rig.base_url, rtype, rig.patient)


def drug(mr: dict[str, Any]) -> str:
    return str(mr["medicationCodeableConcept"]["coding"][0]["code"])


def test_responses_and_scores_arrive_once_with_their_links(rig: Rig) -> None:
    rig.submit("phq-9")
    rig.submit("scl-90-r")
    assert rig.drain() == {**rig.counts(), "pending": 0, "failed": 0, "conflict": 0}
    responses = ehr(rig, "QuestionnaireResponse")
    observations = ehr(rig, "Observation")
    assert len(responses) == 2 and len(observations) == 3 + 13
    remote_qrs = {f"QuestionnaireResponse/{r['id']}" for r in responses}
    remote_obs = {f"Observation/{o['id']}" for o in observations}
    for obs in observations:
        assert obs["derivedFrom"][0]["reference"] in remote_qrs  # rewritten to the EHR's ids
        for member in obs.get("hasMember", []):
            assert member["reference"] in remote_obs

    # Everything queued again, as after `mit-fhir sync retry` of an uncertain delivery:
    # conditional creates and known links keep it exactly once.
    with rig.app.extensions["mit_fhir"].store.transaction() as conn:
        outbox.enqueue(conn, _local(rig), 0.0)
    rig.drain()
    assert len(ehr(rig, "QuestionnaireResponse")) == 2
    assert len(ehr(rig, "Observation")) == 16


def _local(rig: Rig) -> list[dict[str, Any]]:
    with rig.app.extensions["mit_fhir"].store.transaction() as conn:
        return [res for rtype in ("QuestionnaireResponse", "Observation")
                for res in repository.search(conn, rtype, [])]


def test_the_case_reports_medication_plan_and_its_next_version(rig: Rig) -> None:
    rig.submit("medication-plan")
    rig.drain()
    first = {drug(m): m for m in ehr(rig, "MedicationRequest")}
    assert set(first) == {"38404", "4493"}  # topiramate, fluoxetine
    for mr in first.values():
        assert mr["intent"] == "plan" and mr["status"] == "active"
        assert mr["medicationCodeableConcept"]["coding"][0]["system"] == RXNORM
    daily = {d: m["dosageInstruction"][0]["maxDosePerPeriod"]["numerator"]["value"]
             for d, m in first.items()}
    assert daily == {"38404": 75, "4493": 60}

    rig.submit("medication-plan", "changed")
    rig.drain()
    second = {drug(m): m for m in ehr(rig, "MedicationRequest")}
    assert {d: m["id"] for d, m in second.items()} == {d: m["id"] for d, m in first.items()}
    assert second["38404"]["status"] == "stopped"
    assert second["4493"]["status"] == "active"
    assert second["4493"]["dosageInstruction"][0]["maxDosePerPeriod"]["numerator"]["value"] == 40
    assert second["4493"]["meta"]["versionId"] != first["4493"]["meta"]["versionId"]
    active = [m for m in second.values() if m["status"] == "active"]
    assert len(active) == 1  # no stale active duplicate


def test_the_crisis_plan_is_updated_in_place(rig: Rig) -> None:
    rig.submit("crisis-contact-plan")
    rig.drain()
    [plan] = ehr(rig, "CarePlan")
    teams = ehr(rig, "CareTeam")
    assert len(teams) == 1
    categories = {c["code"] for cat in plan["category"] for c in cat["coding"]}
    assert {"assess-plan", "crisis-plan"} <= categories
    assert plan["careTeam"] == [{"reference": f"CareTeam/{teams[0]['id']}"}]
    assert "subject to availability" in json.dumps(teams[0])

    rig.submit("crisis-contact-plan", "updated")
    rig.drain()
    [plan2] = ehr(rig, "CarePlan")
    [team2] = ehr(rig, "CareTeam")
    assert (plan2["id"], team2["id"]) == (plan["id"], teams[0]["id"])
    assert team2["meta"]["versionId"] != teams[0]["meta"]["versionId"]
    assert "+39 000 000 0004" in json.dumps(team2)


def test_a_directly_posted_medication_request_is_synced(rig: Rig) -> None:
    mr = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
          "subject": {"reference": f"Patient/{rig.patient}"},
          "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "28439",
                                                    "display": "lamotrigine"}]}}
    resp = rig.client.post("/fhir/MedicationRequest", data=json.dumps(mr),
                           content_type=FHIR_JSON)
    assert resp.status_code == 201
    rig.drain()
    [remote] = ehr(rig, "MedicationRequest")
    assert drug(remote) == "28439" and remote["intent"] == "order"
    assert identifier_values([remote]) == [resp.get_json()["id"]]


def test_reading_back_every_intent_of_the_patients_medication(rig: Rig) -> None:
    rig.submit("medication-plan")
    rig.drain()
    order = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
             "subject": {"reference": f"Patient/{rig.patient}"},
             "medicationCodeableConcept": {"text": "prescribed in the EHR"}}
    created = requests.post(f"{rig.base_url}/MedicationRequest", json=order,
                            headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert created.status_code == 201
    found = medication_requests(build_client(dict(rig.app.config)), rig.patient)
    assert Counter(m["intent"] for m in found) == {"plan": 2, "order": 1}


def test_an_edit_in_the_ehr_is_a_reported_conflict_and_is_kept(rig: Rig) -> None:
    rig.submit("medication-plan")
    rig.drain()
    fluoxetine = next(m for m in ehr(rig, "MedicationRequest") if drug(m) == "4493")
    edited = {**fluoxetine, "note": [{"text": "dose confirmed by the ward pharmacist"}]}
    resp = requests.put(f"{rig.base_url}/MedicationRequest/{fluoxetine['id']}", json=edited,
                        headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert resp.status_code == 200

    rig.submit("medication-plan", "changed")  # changes the fluoxetine dose
    counts = rig.drain()
    assert counts["conflict"] == 1
    problems = rig.client.get("/sync/status").get_json()["problems"]
    assert [(p["state"], p["http_status"], p["resource"].split("/")[0]) for p in problems] == [
        ("conflict", 412, "MedicationRequest")]
    kept = requests.get(f"{rig.base_url}/MedicationRequest/{fluoxetine['id']}",
                        timeout=30).json()
    assert kept["note"] == edited["note"]
    assert kept["dosageInstruction"] == fluoxetine["dosageInstruction"]


# Fault tests: servers of their own --------------------------------------------------------------
own_fhir_server = fixtures.own_fhir_server  # each server, started for one test


def test_ehr_down_during_200_submissions_then_everything_once(
    own_fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    rig = Rig(tmp_path, own_fhir_server.base_url)
    own_fhir_server.stop()
    ids = [rig.submit("phq-9")["id"] for _ in range(200)]  # every one accepted: 201
    assert len(set(ids)) == 200
    for _ in range(3):
        rig.worker.run_once()  # the EHR refuses connections: backing off, nothing lost
    counts = rig.counts()
    assert counts["sent"] == 0 and counts["pending"] == 800 and counts["failed"] == 0
    own_fhir_server.start()
    rig.drain(timeout=240)
    responses = ehr_resources(own_fhir_server.base_url, "QuestionnaireResponse", rig.patient)
    observations = ehr_resources(own_fhir_server.base_url, "Observation", rig.patient)
    assert sorted(identifier_values(responses)) == sorted(ids)  # each exactly once
    values = identifier_values(observations)  # panel, total and band per response
    assert len(values) == 600 and len(set(values)) == 600
    rig.close()


def test_worker_killed_mid_transaction_then_everything_once(
    own_fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    with HoldingProxy(own_fhir_server.base_url) as proxy:
        rig = Rig(tmp_path, proxy.base_url)
        ids = [rig.submit("phq-9")["id"] for _ in range(30)]
        env = {**os.environ, "MIT_FHIR_DATABASE_URL": rig.db_url,
               "MIT_FHIR_EHR_BASE_URL": proxy.base_url, "MIT_FHIR_SYNC_BATCH_SIZE": "40",
               "MIT_FHIR_SYNC_LEASE_SECONDS": "2", "MIT_FHIR_SYNC_POLL_INTERVAL": "0.05"}
        proxy.hold.set()
        worker = subprocess.Popen([sys.executable, "-m", "mit_fhir", "worker"], env=env,
                                  cwd=ROOT, stderr=subprocess.DEVNULL)
        try:
            # The EHR has committed the first Bundle; its answer is held back: kill now.
            wait_for(proxy.forwarded.is_set, 60, "a transaction to reach the EHR")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        delivered = ehr_resources(own_fhir_server.base_url, "QuestionnaireResponse", rig.patient)
        assert delivered, "the killed worker's Bundle reached the EHR"
        assert rig.counts()["sent"] == 0  # ... and none of it was recorded
        proxy.hold.clear()
        proxy.release.set()
        restarted = subprocess.Popen([sys.executable, "-m", "mit_fhir", "worker"], env=env,
                                     cwd=ROOT, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: rig.counts()["pending"] == 0, 120, "the outbox to drain")
        finally:
            restarted.terminate()
            restarted.wait(15)
    assert rig.counts()["sent"] == 120 and rig.counts()["failed"] == 0  # 30 x (QR + 3)
    responses = ehr_resources(own_fhir_server.base_url, "QuestionnaireResponse", rig.patient)
    observations = ehr_resources(own_fhir_server.base_url, "Observation", rig.patient)
    assert sorted(identifier_values(responses)) == sorted(ids)
    values = identifier_values(observations)
    assert len(values) == 90 and len(set(values)) == 90
    assert any(r.claims > 1 for r in rig.rows())  # the killed batch was reclaimed
    rig.close()
