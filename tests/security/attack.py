"""Two patients' data of every patient-data type, and the check that none of B's reaches A.

`World` is built once per test module (the `world` fixture of conftest.py) through the API,
with a clinician's token from the real test issuer: for A and for B a PHQ-9 (Observations and
Provenance), an MIT experiment form (free-text answers, B's carrying a marker), a medication
plan (MedicationRequests) and a crisis contact plan (CarePlan and CareTeam); the clinician's
requests leave AuditEvents naming either patient, and one search over both leaves an
AuditEvent naming A and B. `World.leaks()` says whether an answer to a request made with A's
token shows any of B's data.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.app import create_app
from tests.conftest import sample
from tests.security.conftest import secured_settings
from tests.security.issuer import Issuer

A = "pat-1"  # the patient of tests/security/conftest.py's patient-app and patient-reader
B = "pat-2"
BASE = "http://localhost/fhir"  # the test client's host: the service's own base URL
SECRET = "B-free-text-secret-4711"  # in B's free-text answer; must never reach A
PATIENT_DATA = ("QuestionnaireResponse", "Observation", "MedicationRequest", "CarePlan",
                "CareTeam", "Task", "Provenance", "AuditEvent")
FORMS = ("phq-9", "mit-experiment", "medication-plan", "crisis-contact-plan")
TASK_FORMS = ("phq-9", "bpd-criteria")  # a self-report form (owner: the patient), a rated one
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"


def task(patient_ref: str, form: str = "phq-9") -> dict[str, Any]:
    """A Task for the patient `patient_ref` names (any spelling) to complete `form`."""
    return {"resourceType": "Task", "status": "requested", "intent": "order",
            "code": {"coding": [{"system": SDC_TEMP, "code": "complete-questionnaire"}]},
            "for": {"reference": patient_ref}, "requester": {"reference": "Practitioner/dr-1"},
            "input": [{"type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire"}]},
                       "valueCanonical": f"https://mit-fhir.org/fhir/Questionnaire/{form}"}]}


def _with_secret(qr: dict[str, Any]) -> dict[str, Any]:
    def visit(items: list[dict[str, Any]]) -> None:
        for item in items:
            for answer in item.get("answer", []):
                if "valueString" in answer:
                    answer["valueString"] = SECRET
                visit(answer.get("item", []))
            visit(item.get("item", []))

    qr = copy.deepcopy(qr)
    visit(qr["item"])
    return qr


@dataclass
class World:
    """The app, its test client, tokens, and the ids of each patient's resources by type."""

    app: Flask
    client: FlaskClient
    issuer: Issuer
    ids: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # patient -> type -> ids
    _tokens: dict[tuple[str, str | None, str | None], str] = field(default_factory=dict)

    def headers(self, scope: str = "patient/*.cruds", patient: str | None = A,
                fhir_user: str | None = None) -> dict[str, str]:
        """A bearer token from the issuer's token endpoint (patient context A by default;
        `fhir_user` `Patient/<id>` for the patient's own app)."""
        key = (scope, patient, fhir_user)
        if key not in self._tokens:
            client_id = f"attack-{len(self._tokens)}"
            self.issuer.register(client_id, scope, patient=patient, fhir_user=fhir_user)
            self._tokens[key] = self.issuer.token(client_id)
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    def b_ids(self) -> set[str]:
        return {rid for ids in self.ids[B].values() for rid in ids}

    def leaks(self, body: bytes) -> list[str]:
        """What of B's data a response body shows (empty: nothing)."""
        found = [SECRET] if SECRET.encode() in body else []
        try:
            doc = json.loads(body)
        except ValueError:
            return found
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            doc = {**doc, "link": []}  # the self link echoes the query, B's spelling included
        text = json.dumps(doc)
        found += [rid for rid in self.b_ids() if rid in text]
        if f"Patient/{B}" in text or f'"{B}"' in text:
            found.append(f"Patient/{B}")
        return found


def _submit(client: FlaskClient, headers: dict[str, str], resource: dict[str, Any]) -> None:
    resp = client.post(f"/fhir/{resource['resourceType']}", json=resource,
                       headers={**headers, "Content-Type": "application/fhir+json"})
    assert resp.status_code in (200, 201), resp.json


def _collect(world: World, clinician: dict[str, str]) -> None:
    for patient in (A, B):
        world.ids[patient] = {}
        for rtype in PATIENT_DATA:
            resp = world.client.get(f"/fhir/{rtype}?patient={patient}", headers=clinician)
            assert resp.status_code == 200, resp.json
            world.ids[patient][rtype] = {e["resource"]["id"] for e in resp.json["entry"]}
    # The searches above left AuditEvents naming one patient each; this one names both.
    both = world.client.get(f"/fhir/QuestionnaireResponse?patient={A},{B}", headers=clinician)
    assert both.status_code == 200
    for rtype in PATIENT_DATA[:-1]:  # every type but AuditEvent has rows of both patients
        assert world.ids[A][rtype] and world.ids[B][rtype], rtype


def build_world(issuer: Issuer, database_url: str) -> World:
    app = create_app({"DATABASE_URL": database_url, **secured_settings(issuer)})
    world = World(app, app.test_client(), issuer)
    clinician = world.headers("user/*.cruds", None)
    for patient in (A, B):
        for form in FORMS:
            qr = {k: v for k, v in sample(form).items() if k != "id"}
            qr["subject"] = {"reference": f"Patient/{patient}"}
            _submit(world.client, clinician, _with_secret(qr) if patient == B else qr)
        for form in TASK_FORMS:
            _submit(world.client, clinician, task(f"Patient/{patient}", form))
    _collect(world, clinician)
    _collect(world, clinician)  # now the AuditEvents of the first round are listed too
    return world
