"""Over HTTP: a response cannot bring its own weights; a score from no weight is absent."""

from __future__ import annotations

import copy
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from mit_fhir.paths import QUESTIONNAIRE_DIR
from tests.conftest import DATA, FhirActions, load_json, sample, stored_counts
from tests.fhir.test_weights import ORDINAL_VALUE, SUM, choice, response, site_form, weight_ext
from tests.fhir.test_weights import weighted_options as options

LHC = DATA / "lhc-forms"


def _observations(client: FlaskClient, qr_id: str) -> dict[str, dict[str, Any]]:
    found = client.get(f"/fhir/Observation?derived-from=QuestionnaireResponse/{qr_id}").json
    return {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in found["entry"]}


def _extract(fhir: FhirActions, qr: dict[str, Any], questionnaire: dict[str, Any]) -> Any:
    return fhir.post("/fhir/QuestionnaireResponse/$extract", {
        "resourceType": "Parameters", "parameter": [
            {"name": "questionnaire-response", "resource": qr},
            {"name": "questionnaire", "resource": questionnaire}]})


def test_a_phq9_whose_answers_claim_weight_3_is_a_422_and_nothing_is_stored(
    fhir: FhirActions, app: Flask
) -> None:
    """Finding 2: this sample was stored as total 27 "severe" instead of 13."""
    before = stored_counts(app)
    resp = fhir.submit(load_json(DATA / "weights" / "phq-9-tampered.json"))
    assert resp.status_code == 422
    assert resp.content_type.startswith("application/fhir+json")
    body = resp.json
    assert body["resourceType"] == "OperationOutcome"
    expected = load_json(DATA / "weights" / "phq-9-tampered.expected.json")
    assert [i["expression"][0] for i in body["issue"]] == expected["expression"]
    assert all("another version of the form" in i["diagnostics"] for i in body["issue"])
    assert stored_counts(app) == before


def test_a_phq9_whose_codings_carry_the_forms_own_weights_is_stored_with_its_real_total(
    fhir: FhirActions, client: FlaskClient
) -> None:
    qr = sample("phq-9")
    form = {i["linkId"]: i for i in load_json(QUESTIONNAIRE_DIR / "phq-9.json")["item"]}
    for item in qr["item"]:
        code = item["answer"][0]["valueCoding"]["code"]
        opt = next(o for o in form[item["linkId"]]["answerOption"]
                   if o["valueCoding"]["code"] == code)
        item["answer"][0]["valueCoding"] = copy.deepcopy(opt["valueCoding"])
    created = fhir.submit(qr)
    assert created.status_code == 201, created.json
    total = _observations(client, created.json["id"])["44261-6"]
    expected = load_json(DATA / "samples" / "phq-9" / "complete.expected.json")["phq-9-total"]
    assert total["valueQuantity"]["value"] == expected


def test_an_lhc_forms_export_with_its_ordinal_values_extracts_the_same_total(
    fhir: FhirActions,
) -> None:
    q = load_json(LHC / "phq-9-loinc.json")
    totals = []
    for name in ("phq-9-loinc.response.json", "phq-9-loinc.response-ordinals.json"):
        resp = _extract(fhir, load_json(LHC / name), q)
        assert resp.status_code == 200, resp.json
        members = [e["resource"] for e in resp.json["entry"]
                   if e["resource"]["resourceType"] == "Observation"]
        totals += [m["valueQuantity"]["value"] for m in members
                   if m["code"]["coding"][0]["code"] == "44261-6"]
    assert totals == [load_json(LHC / "phq-9-loinc.expected.json")["/44261-6"]] * 2


def test_an_lhc_forms_export_with_a_changed_ordinal_value_is_a_422(fhir: FhirActions) -> None:
    exported = load_json(LHC / "phq-9-loinc.response-ordinals.json")
    exported["item"][2]["answer"][0]["valueCoding"]["extension"] = weight_ext(0, ORDINAL_VALUE)
    resp = _extract(fhir, exported, load_json(LHC / "phq-9-loinc.json"))
    assert resp.status_code == 422
    (issue,) = resp.json["issue"]
    assert issue["expression"] == [
        "QuestionnaireResponse.item.where(linkId='/44259-0').answer[0].valueCoding"]


def test_a_site_score_from_answers_without_weights_is_absent_not_zero(fhir: FhirActions) -> None:
    q = site_form(SUM, choice("q1", answerOption=options(None, None)))
    resp = _extract(fhir, response(q1="b"), q)
    assert resp.status_code == 200, resp.json
    (total,) = [e["resource"] for e in resp.json["entry"]
                if e["resource"]["resourceType"] == "Observation"
                and e["resource"]["code"]["coding"][0]["code"] == "total"]
    assert "valueQuantity" not in total
    assert total["dataAbsentReason"]["coding"][0]["code"] == "unknown"
