"""The pages' server-side data: Italian forms, radio-button hints, the outcomes document."""

from __future__ import annotations

import json

from flask import Flask

from mit_fhir.fhir.index import observation_index, plan_index, sort_date
from mit_fhir.store import repository
from mit_fhir.store.repository import Criterion
from mit_fhir.submissions import submit
from mit_fhir.ui import data, i18n, presentation
from tests.conftest import ROOT, load_json, sample
from tests.ui.helpers import medication_request, submit_ders

CONTRACT = load_json(ROOT / "questionnaires" / "mit-contract.json")
DERS = load_json(ROOT / "questionnaires" / "ders.json")


def texts(node: object) -> list[str]:
    """Every `text`/`title`/`display` string of a resource, depth first."""
    out: list[str] = []
    if isinstance(node, dict):
        out += [v for k, v in node.items() if k in ("text", "title", "display")
                and isinstance(v, str)]
        for v in node.values():
            out += texts(v)
    elif isinstance(node, list):
        for v in node:
            out += texts(v)
    return out


def test_italian_replaces_every_translated_string_and_nothing_else() -> None:
    italian = i18n.translated(CONTRACT, "it")
    assert italian["language"] == "it" and CONTRACT["language"] == "en"  # a copy
    assert italian["title"] == "Contratto terapeutico MIT"
    translations = [i18n.translation(v, "it") for v in _primitive_elements(CONTRACT)]
    assert len([t for t in translations if t]) > 20
    for translated in (t for t in translations if t):
        assert translated in texts(italian)
    # Same structure: linkIds and codes are untouched.
    assert json.dumps(_link_ids(italian)) == json.dumps(_link_ids(CONTRACT))


def _primitive_elements(node: object) -> list[object]:
    out: list[object] = []
    if isinstance(node, dict):
        out += [v for k, v in node.items() if k.startswith("_")]
        for v in node.values():
            out += _primitive_elements(v)
    elif isinstance(node, list):
        for v in node:
            out += _primitive_elements(v)
    return out


def _link_ids(q: dict) -> list[str]:  # type: ignore[type-arg]
    return [i["linkId"] for i in q.get("item", [])] + [
        lid for i in q.get("item", []) for lid in _link_ids(i)]


def test_languages_are_those_the_form_translates() -> None:
    assert i18n.languages(CONTRACT) == ["en", "it"]
    assert i18n.languages(DERS) == ["en"]
    assert i18n.translated(DERS, "en") is DERS


def test_short_choice_lists_become_radio_buttons() -> None:
    hinted = presentation.radio_buttons(DERS)
    choice = [i for i in hinted["item"] if i["type"] == "choice"]
    assert len(choice) == 36
    assert all(any(e["url"] == presentation.ITEM_CONTROL for e in i["extension"])
               for i in choice)
    assert not any(e["url"] == presentation.ITEM_CONTROL
                   for i in DERS["item"] for e in i.get("extension", []))  # not mutated
    scores = [i for i in hinted["item"] if i["type"] == "integer"]
    assert scores and not any(e["url"] == presentation.ITEM_CONTROL
                              for i in scores for e in i.get("extension", []))


def test_medications_group_by_drug_and_source_with_dated_periods() -> None:
    reqs = [
        (medication_request("p", "4493", "fluoxetine", "20 mg", "2019-05-01", None,
                            "active"), "ehr"),
        (medication_request("p", "38404", "topiramate", "50 mg", "2019-10-01", "2020-06-30",
                            "stopped"), "ehr"),
        (medication_request("p", "38404", "topiramate", "25 mg", "2019-03-15", "2019-09-30",
                            "completed"), "ehr"),
        (medication_request("p", "38404", "topiramate", "25 mg", "2019-03-15", None,
                            "active"), "mit-plan"),
        ({"resourceType": "Observation"}, "ehr"),
    ]
    meds = data.medications(reqs)
    assert [(m["display"], m["source"]) for m in meds] == [
        ("topiramate", "ehr"), ("topiramate", "mit-plan"), ("fluoxetine", "ehr")]
    assert [(p["start"], p["stop"], p["dose"]) for p in meds[0]["periods"]] == [
        ("2019-03-15", "2019-09-30", "25 mg"), ("2019-10-01", "2020-06-30", "50 mg")]


def test_the_timeline_document_is_read_in_either_spelling() -> None:
    raw = {"instruments": [{"code": "ders-total", "display": "DERS total",
                            "questionnaire": "ders", "range": [36, 180], "cutoffs": [105.2],
                            "direction": "lower-is-better",
                            "points": [{"date": "2019-03-01", "value": 118,
                                        "observation_id": "o1", "category": None,
                                        "reliable": None, "index": None, "synthetic": False},
                                       {"date": "2019-06-01", "value": 101,
                                        "observationId": "o2", "category": "improved",
                                        "reliable": True, "index": -2.1,
                                        "synthetic": True}]}],
           "medications": [{"drug_display": "fluoxetine", "code": "4493", "source": "ehr",
                            "periods": [{"start": "2019-05-01", "end": None,
                                         "dose_text": "20 mg", "status": "active"}]}]}
    doc = data.normalised("p", raw)
    ins = doc["instruments"][0]
    assert ins["cutoffs"] == [{"value": 105.2, "label": "clinical cutoff"}]
    assert [p["observation"] for p in ins["points"]] == ["o1", "o2"]
    assert ins["points"][1]["synthetic"] is True
    assert doc["medications"][0]["display"] == "fluoxetine"
    assert doc["medications"][0]["periods"][0]["dose"] == "20 mg"


def test_without_the_timeline_module_the_document_comes_from_the_store(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    submit_ders(context, "p1", "2019-03-01T10:00:00Z", each=4)   # 144
    later = submit_ders(context, "p1", "2019-09-01T10:00:00Z", each=3)  # 108
    submit_ders(context, "p1", "2020-09-01T10:00:00Z", each=2)   # 72
    submit_ders(context, "p2", "2020-09-01T10:00:00Z", each=1)   # another patient
    with context.store.transaction() as conn:
        # The demo marks made-up points as synthetic: tag the middle one.
        obs = next(o for o in repository.search(conn, "Observation", [Criterion(
            "derived-from", "eq", (f"QuestionnaireResponse/{later['id']}",))])
            if o["code"]["coding"][0]["code"] == "ders-total")
        obs["meta"]["tag"] = [{"system": "https://mit-fhir.org/fhir/CodeSystem/demo",
                               "code": "synthetic"}]
        repository.update(conn, obs, observation_index(obs), 1, sort_date(obs))
        plan = medication_request("p1", "4493", "fluoxetine", "20 mg", "2019-05-01", None,
                                  "active")
        plan["id"] = "plan-1"
        repository.insert(conn, plan, plan_index(plan))
    ehr = [medication_request("p1", "38404", "topiramate", "50 mg", "2019-03-15",
                              "2020-06-30", "stopped")]
    doc = data.outcomes_document(context, "p1", ehr)
    assert [i["code"] for i in doc["instruments"]] == ["ders-total"]
    ders = doc["instruments"][0]
    assert [(p["value"], p["category"], p["synthetic"]) for p in ders["points"]] == [
        (144, "baseline", False), (108, "improved", True), (72, "recovered", False)]
    assert ders["points"][2]["reliable"] is True and ders["points"][2]["index"] < -1.96
    assert ders["cutoffs"][0]["value"] > 100 and ders["direction"] == "lower-is-better"
    assert sorted((m["display"], m["source"]) for m in doc["medications"]) == [
        ("fluoxetine", "mit-plan"), ("topiramate", "ehr")]


def test_the_case_reports_gsi_and_bpd_criteria_are_charted(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    for form in ("scl-90-r", "bpd-criteria"):
        for name, authored in (("case-intake", "2019-03-01T10:00:00Z"),
                               ("case-end", "2020-09-01T10:00:00Z")):
            qr = {**sample(form, name), "authored": authored,
                  "subject": {"reference": "Patient/case"}}
            submit(context, qr)
    doc = data.outcomes_document(context, "case")
    by_code = {i["code"]: i for i in doc["instruments"]}
    assert set(by_code) == {"scl-90-r-gsi", "bpd-criteria-count"}
    gsi = by_code["scl-90-r-gsi"]
    assert [(round(p["value"], 3), p["category"]) for p in gsi["points"]] == [
        (2.1, "baseline"), (0.222, "recovered")]
    bpd = by_code["bpd-criteria-count"]
    assert [p["value"] for p in bpd["points"]] == [8, 3]
    assert bpd["cutoffs"] == [{"value": 5.0, "label": "DSM-5 threshold: 5 of 9"}]
