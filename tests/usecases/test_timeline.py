"""The outcomes timeline: scores with their change flags per instrument, medication segments."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from mit_fhir.fhir.extract import CS_DATA_SOURCE
from mit_fhir.psychometrics import reliable_change as rc
from mit_fhir.psychometrics.parameters import load_parameters
from mit_fhir.usecases.care_plans import IDENTIFIER_SYSTEMS
from mit_fhir.usecases.demo import load_demo
from mit_fhir.usecases.timeline import TimelineSchema, patient_timeline, timeline_for
from tests.conftest import FhirActions, sample
from tests.fhir.test_extract import GOLDEN, compare_golden

DEMO = "demo-mit-1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def stable_ids(document: Any) -> Any:
    """Server-assigned ids replaced by their order of appearance, for golden comparison."""
    text = json.dumps(document, sort_keys=True)
    seen: dict[str, str] = {}

    def number(m: re.Match[str]) -> str:
        return seen.setdefault(m.group(0), f"{m.group(1)}/{len(seen) + 1}")

    return json.loads(re.sub(r"(Observation|MedicationRequest)/[0-9a-f-]{36}", number, text))


def submit(fhir: FhirActions, qr: dict[str, Any]) -> dict[str, Any]:
    resp = fhir.submit(qr)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created: dict[str, Any] = resp.json
    return created


def phq9(patient: str, authored: str, name: str = "complete") -> dict[str, Any]:
    qr = sample("phq-9", name)
    qr.update(subject={"reference": f"Patient/{patient}"}, authored=authored)
    return qr


def test_the_demo_patients_timeline_matches_golden(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    load_demo(context)
    document = timeline_for(context, DEMO)
    assert TimelineSchema().validate(document) == {}
    compare_golden(GOLDEN / "timeline" / "demo-mit-1.json", stable_ids(document))


def test_points_carry_the_services_change_flags_in_date_order(app: Flask,
                                                              fhir: FhirActions) -> None:
    # Submitted out of order: the timeline orders by date, the flags are what was stored.
    submit(fhir, phq9("p1", "2024-06-01T10:00:00Z", "severe"))
    submit(fhir, phq9("p1", "2024-01-01T10:00:00Z"))
    submit(fhir, phq9("p1", "2024-09-01T10:00:00Z", "severe"))
    (phq,) = timeline_for(app.extensions["mit_fhir"], "p1")["instruments"]
    assert phq["questionnaire"]["id"] == "phq-9" and phq["label"] == "PHQ-9"
    assert [p["date"][:7] for p in phq["points"]] == ["2024-01", "2024-06", "2024-09"]
    assert [p["value"] for p in phq["points"]] == [13, 20, 20]
    # The January response arrived after June's: June was stored as the baseline, so its own
    # point has no verdict; September's is against the earliest one (January): deteriorated.
    assert phq["points"][1]["category"] is None
    assert phq["points"][2]["category"] == "deteriorated"
    assert phq["points"][2]["reliable"] is True and phq["points"][2]["interpretation"] == "W"
    assert [p["code"] for p in phq["band"]["points"]] == ["phq-9-moderate", "phq-9-severe",
                                                           "phq-9-severe"]
    assert not any(p["synthetic"] for p in phq["points"])
    assert timeline_for(app.extensions["mit_fhir"], "somebody-else")["instruments"] == []


def test_band_points_carry_the_stored_baseline_band_and_the_score_its_rule(
        app: Flask, fhir: FhirActions) -> None:
    submit(fhir, phq9("p1", "2024-01-01T10:00:00Z", "severe"))
    submit(fhir, phq9("p1", "2024-04-01T10:00:00Z"))
    (phq,) = timeline_for(app.extensions["mit_fhir"], "p1")["instruments"]
    first, second = phq["band"]["points"]
    assert first["baseline"] is None  # the baseline has nothing to be compared with
    assert second["baseline"]["code"] == "phq-9-severe" and second["code"] == "phq-9-moderate"
    assert phq["scoreType"] == "integer"
    # PHQ-9 change is judged by IAPT's published difference (6), not by an RCI.
    rule = phq["reliableChange"]
    shipped = load_parameters().get("phq-9", "phq-9-total")
    assert rule["criticalDifference"] == shipped.number("critical_difference") == 6
    assert rule["sediff"] is None
    assert rule["citations"] == [shipped.values["critical_difference"].citation]


def test_cutoff_direction_and_range_come_from_the_parameter_file(app: Flask,
                                                                 tmp_path: Path) -> None:
    context = app.extensions["mit_fhir"]
    load_demo(context)
    shipped = load_parameters()
    ders = next(i for i in timeline_for(context, DEMO)["instruments"]
                if i["questionnaire"]["id"] == "ders")
    expected = rc.cutoff(shipped.get("ders", "ders-total").to_parameters())
    assert ders["cutoffs"][0]["value"] == pytest.approx(expected)
    assert ders["cutoffs"][0]["kind"] == "c" and ders["cutoffs"][0]["functionalSide"] == "below"
    assert ders["cutoffs"][0]["verified"] is False  # the community norms were recalled
    assert ders["direction"] == "lower-is-better"
    assert ders["range"] == {"low": 36, "high": 180}  # 36 items rated 1-5

    site = tmp_path / "site.json"
    site.write_text(json.dumps({"instruments": {"ders": {"scores": {"ders-total": {
        "cutoff_value": {"value": 99.5, "citation": "local norms"}}}}}}), encoding="utf-8")
    with context.store.transaction() as conn:  # a Connection works as well as the Store
        again = patient_timeline(conn, context.catalogue, DEMO,
                                 parameters=load_parameters(site))
    ders = next(i for i in again["instruments"] if i["questionnaire"]["id"] == "ders")
    assert ders["cutoffs"] == [{"value": 99.5, "kind": "published", "functionalSide": "below",
                                "verified": True, "citations": ["local norms"]}]


def test_synthetic_values_are_labelled_on_every_point(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    load_demo(context)
    document = timeline_for(context, DEMO)
    for instrument in document["instruments"]:
        points = instrument["points"] + (instrument["band"] or {"points": []})["points"]
        for point in points:
            assert point["source"] in ("synthetic", "case-report")
            assert point["synthetic"] is (point["source"] == "synthetic")
    ders = next(i for i in document["instruments"] if i["label"] == "DERS")
    assert ders["points"][0]["synthetic"] is False
    assert ders["points"][-1]["synthetic"] is False
    assert all(p["synthetic"] for p in ders["points"][1:-1])
    for row in document["medications"]:
        assert all(p["synthetic"] is (p["source"] == "synthetic") for p in row["periods"])


def plan(patient: str, date: str, medicines: list[dict[str, Any]]) -> dict[str, Any]:
    """A medication-plan response from the sample, with the given medicines."""
    qr = sample("medication-plan")
    qr.update(subject={"reference": f"Patient/{patient}"}, authored=f"{date}T09:00:00Z")
    qr["item"][0]["answer"] = [{"valueDate": date}]
    template = qr["item"][3]
    groups = []
    for med in medicines:
        group = copy.deepcopy(template)
        for item in group["item"]:
            if item["linkId"] == "medplan-med-drug":
                item["answer"] = [{"valueCoding": {"system": RXNORM, "code": med["code"],
                                                   "display": med["display"]}}]
            if item["linkId"] == "medplan-med-daily-dose":
                item["answer"][0]["valueQuantity"]["value"] = med["dose"]
            if item["linkId"] == "medplan-med-start":
                item["answer"] = [{"valueDate": med.get("start", date)}]
            if item["linkId"] == "medplan-med-status":
                item["answer"][0]["valueCoding"].update(code=med.get("status", "active"),
                                                        display=med.get("status", "active"))
        groups.append(group)
    qr["item"] = qr["item"][:3] + groups
    return qr


TOPIRAMATE = {"code": "38404", "display": "topiramate"}
FLUOXETINE = {"code": "4493", "display": "fluoxetine"}


def test_plan_versions_become_segments_per_dose(app: Flask, fhir: FhirActions) -> None:
    submit(fhir, plan("p2", "2024-01-10", [{**TOPIRAMATE, "dose": 75},
                                           {**FLUOXETINE, "dose": 20}]))
    submit(fhir, plan("p2", "2024-02-10", [{**TOPIRAMATE, "dose": 75},
                                           {**FLUOXETINE, "dose": 40, "start": "2024-02-12"}]))
    submit(fhir, plan("p2", "2024-03-10", [{**FLUOXETINE, "dose": 40, "start": "2024-02-12"}]))
    rows = {r["drug"]: r for r in timeline_for(app.extensions["mit_fhir"], "p2")["medications"]}
    assert {r["source"] for r in rows.values()} == {"mit-plan"}
    fluoxetine = [(p["start"], p["stop"], p["dose"], p["ended"])
                  for p in rows["fluoxetine"]["periods"]]
    assert fluoxetine == [
        ("2024-01-10", "2024-02-12", "20 mg per day in 1 dose, oral", "dose-changed"),
        ("2024-02-12", None, "40 mg per day in 1 dose, oral", None),
    ]
    (topiramate,) = rows["topiramate"]["periods"]
    assert (topiramate["start"], topiramate["stop"], topiramate["ended"]) == (
        "2024-01-10", "2024-03-10", "not-in-plan")
    assert rows["topiramate"]["code"] == {"system": RXNORM, **TOPIRAMATE}
    assert topiramate["request"].startswith("MedicationRequest/")


def test_ehr_requests_are_merged_without_our_own_synced_copies(app: Flask,
                                                               fhir: FhirActions) -> None:
    submit(fhir, plan("p3", "2024-01-10", [{**FLUOXETINE, "dose": 20}]))
    context = app.extensions["mit_fhir"]
    ours = timeline_for(context, "p3")["medications"][0]["periods"][0]["request"]
    subject = {"reference": "Patient/p3"}
    ehr = [
        {"resourceType": "MedicationRequest", "id": "e1", "status": "stopped", "intent": "order",
         "subject": subject, "authoredOn": "2023-05-01",
         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6470",
                                                   "display": "lorazepam"}]},
         "dosageInstruction": [{"text": "1 mg at night", "timing": {"repeat": {
             "boundsPeriod": {"start": "2023-05-01", "end": "2023-06-01"}}}}]},
        {"resourceType": "MedicationRequest", "id": "e2", "status": "active", "intent": "order",
         "subject": subject, "authoredOn": "2023-06-01",
         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6470",
                                                   "display": "lorazepam"}]},
         "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 0.5, "unit": "mg"}}],
                                "timing": {"repeat": {"frequency": 2, "period": 1,
                                                      "periodUnit": "d"}}}]},
        {"resourceType": "MedicationRequest", "id": "e3", "status": "entered-in-error",
         "intent": "order", "subject": subject,
         "medicationCodeableConcept": {"text": "Mistake"}},
        {"resourceType": "MedicationRequest", "id": "copy", "status": "active", "intent": "plan",
         "subject": subject, "medicationCodeableConcept": {"coding": [
             {"system": RXNORM, "code": "4493", "display": "fluoxetine"}]},
         "identifier": [{"system": IDENTIFIER_SYSTEMS["MedicationRequest"],
                         "value": ours.split("/")[1]}]},
    ]
    document = timeline_for(context, "p3", ehr)
    assert document["ehrMedications"] is True
    rows = [(r["drug"], r["source"]) for r in document["medications"]]
    assert rows == [("fluoxetine", "mit-plan"), ("lorazepam", "ehr")]
    lorazepam = document["medications"][1]["periods"]
    assert [(p["start"], p["stop"], p["dose"], p["status"]) for p in lorazepam] == [
        ("2023-05-01", "2023-06-01", "1 mg at night", "stopped"),
        ("2023-06-01", None, "0.5 mg 2 times a day", "active"),
    ]
    assert timeline_for(context, "p3")["ehrMedications"] is False


def test_observations_of_a_tagged_response_carry_the_tag(app: Flask, fhir: FhirActions) -> None:
    tag = {"system": CS_DATA_SOURCE, "code": "synthetic", "display": "Synthetic"}
    other = {"system": "https://example.org/tags", "code": "whatever"}
    qr = phq9("p4", "2024-01-01T10:00:00Z")
    qr["meta"] = {"tag": [tag, other], "versionId": "7"}
    stored = submit(fhir, qr)
    assert stored["meta"]["tag"] == [tag]  # only the data-source label is kept
    bundle = fhir.client.get("/fhir/Observation?patient=p4").json
    assert bundle["total"] == 3
    assert all(e["resource"]["meta"]["tag"] == [tag] for e in bundle["entry"])
    plain = submit(fhir, phq9("p5", "2024-01-01T10:00:00Z"))
    assert "tag" not in plain["meta"]
    bundle = fhir.client.get("/fhir/Observation?patient=p5").json
    assert not any("tag" in e["resource"]["meta"] for e in bundle["entry"])


def test_every_point_carries_the_alerts_of_its_own_response(app: Flask,
                                                            fhir: FhirActions) -> None:
    """Read back from the stored panel: the PHQ-9 with item 9 above 0 has its warning on both
    its total and its band point; a later one answered "Not at all" has none."""
    calm = phq9("p-alerts", "2024-02-01T10:00:00Z")
    for item in calm["item"]:
        if item["linkId"] == "phq-9-9":
            item["answer"] = [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}]
    submit(fhir, phq9("p-alerts", "2024-01-01T10:00:00Z"))
    submit(fhir, calm)
    document = timeline_for(app.extensions["mit_fhir"], "p-alerts")
    assert TimelineSchema().validate(document) == {}
    (phq,) = document["instruments"]
    for points in (phq["points"], phq["band"]["points"]):
        first, second = points
        (alert,) = first["alerts"]
        assert alert["level"] == "warning" and "better off dead" in alert["item"]
        assert second["alerts"] == []
