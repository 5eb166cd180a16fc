"""Tasks reach the real test EHRs through the worker: created, then completed, one Task there,
its output rewritten to the EHR's copy of the response (delivered before it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mit_fhir.fhir import task as shape
from tests.conftest import FHIR_JSON
from tests.servers import fixtures
from tests.servers.fixtures import FhirTestServer
from tests.sync.rig import Rig, ehr_resources, identifier_values

fhir_server = fixtures.fhir_server
medplum_server = fixtures.medplum_server
sekmet_server = fixtures.sekmet_server


@pytest.fixture
def rig(tmp_path: Path, fhir_server: FhirTestServer) -> Iterator[Rig]:
    r = Rig(tmp_path, fhir_server.base_url)
    yield r
    r.close()


def _ehr_tasks(rig: Rig) -> list[dict[str, Any]]:
    """The EHR's Tasks for the rig's patient (filtered here: some servers ignore filters)."""
    resp = requests.get(f"{rig.base_url}/Task", params={"_count": "1000"},
                        headers={"Accept": FHIR_JSON}, timeout=30)
    resp.raise_for_status()
    found = [e["resource"] for e in resp.json().get("entry", [])]
    wanted = f"Patient/{rig.patient}"
    return [t for t in found if str(t.get("for", {}).get("reference", "")).endswith(wanted)]


def _task(rig: Rig) -> dict[str, Any]:
    body = {"resourceType": "Task", "status": "requested", "intent": "order",
            "code": {"coding": [{"system": shape.SDC_TEMP, "code": shape.CODE}]},
            "for": {"reference": f"Patient/{rig.patient}"},
            "requester": {"reference": "Practitioner/dr-sync"},
            "input": [{"type": {"coding": [{"system": shape.SDC_TEMP, "code": "questionnaire"}]},
                       "valueCanonical": "https://mit-fhir.org/fhir/Questionnaire/phq-9"}],
            "restriction": {"period": {"start": "2026-01-01", "end": "2026-01-15"}}}
    resp = rig.client.post("/fhir/Task", data=json.dumps(body), content_type=FHIR_JSON)
    assert resp.status_code == 201, resp.get_json()
    created: dict[str, Any] = resp.get_json()
    return created


def test_a_task_arrives_and_its_completion_names_the_ehrs_response(rig: Rig) -> None:
    task = _task(rig)
    rig.drain()
    (arrived,) = _ehr_tasks(rig)
    assert identifier_values([arrived]) == [task["id"]]
    assert arrived["status"] == "requested"
    assert shape.questionnaire_of(arrived) == shape.questionnaire_of(task)
    assert arrived["restriction"]["period"]["end"] == "2026-01-15"

    qr = rig.submit("phq-9")
    output = [{"type": {"coding": [{"system": shape.SDC_TEMP,
                                    "code": "questionnaire-response"}]},
               "valueReference": {"reference": f"QuestionnaireResponse/{qr['id']}"}}]
    done = rig.client.put(f"/fhir/Task/{task['id']}", content_type=FHIR_JSON,
                          data=json.dumps({**task, "status": "completed", "output": output}),
                          headers={"If-Match": 'W/"1"'})
    assert done.status_code == 200, done.get_json()
    assert rig.drain()["failed"] == 0

    (completed,) = _ehr_tasks(rig)  # the same Task, updated: not a second copy
    assert completed["id"] == arrived["id"] and completed["status"] == "completed"
    (remote_qr,) = ehr_resources(rig.base_url, "QuestionnaireResponse", rig.patient)
    assert shape.response_of(completed) == f"QuestionnaireResponse/{remote_qr['id']}"
