"""Responses coded as LOINC's own forms code them validate and score (issue 13): the C-SSRS
triage's LL465-6 answers beside the project's codes, GAD-7 item 2's LA18938-3; and the content
corrections of the BSL-23 and BPD bands."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mit_fhir.errors import Unprocessable
from mit_fhir.fhir.change import band_change
from mit_fhir.fhir.extract import extract
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.submissions import validated
from tests.conftest import ROOT, load_json, sample

Resource = dict[str, Any]
CATALOGUE = Catalogue.from_directory(ROOT / "mit_fhir" / "questionnaires")
LOINC = "http://loinc.org"
CS = "https://mit-fhir.org/fhir/CodeSystem/instrument"


def item(qid: str, link_id: str) -> Resource:
    return next(i for i in CATALOGUE.by_id[qid]["item"] if i["linkId"] == link_id)


def scores(qid: str, qr: Resource) -> dict[str, Any]:
    q = validated(CATALOGUE, qr)
    assert q["id"] == qid
    return {s.item.link_id: s.value for s in ScoringPlan(q).evaluate(qr)}


def members(qid: str, qr: Resource) -> dict[str, Resource]:
    q = CATALOGUE.by_id[qid]
    extraction = extract(qr, q, ScoringPlan(q), None)
    assert extraction is not None
    return {score.item.link_id: obs for obs, score in extraction.members}


# LOINC LL465-6 as LOINC publishes it, and the project's codes of the same levels.
TRIAGE = [("high-intent", "LA9193-9", "cssrs-triage-high"),
          ("moderate-past-behaviour", "LA6751-7", "cssrs-triage-moderate"),
          ("low", "LA9194-7", "cssrs-triage-low")]


@pytest.mark.parametrize(("name", "loinc", "project"), TRIAGE, ids=[t[0] for t in TRIAGE])
def test_the_cssrs_triage_is_loincs_answer_with_the_project_code_beside_it(
        name: str, loinc: str, project: str) -> None:
    qr = sample("cssrs-screener", name)
    assert scores("cssrs-screener", qr)["cssrs-screener-triage"]["code"] == loinc
    concept = members("cssrs-screener", qr)["cssrs-screener-triage"]["valueCodeableConcept"]
    assert [(c["system"], c["code"]) for c in concept["coding"]] == [(LOINC, loinc),
                                                                      (CS, project)]


@pytest.mark.parametrize("system_code", [(LOINC, "LA9193-9"), (CS, "cssrs-triage-high")])
def test_an_ehr_response_carrying_either_triage_code_validates_and_scores(
        system_code: tuple[str, str]) -> None:
    """An EHR's copy may carry the calculated triage: either code is the form's answer."""
    qr = copy.deepcopy(sample("cssrs-screener", "high-intent"))
    system, code = system_code
    qr["item"].append({"linkId": "cssrs-screener-triage",
                       "answer": [{"valueCoding": {"system": system, "code": code}}]})
    assert scores("cssrs-screener", qr)["cssrs-screener-triage"]["code"] == "LA9193-9"


def test_a_triage_code_of_no_level_is_refused() -> None:
    qr = copy.deepcopy(sample("cssrs-screener", "high-intent"))
    qr["item"].append({"linkId": "cssrs-screener-triage",
                       "answer": [{"valueCoding": {"system": LOINC, "code": "LA6568-5"}}]})
    with pytest.raises(Unprocessable):
        validated(CATALOGUE, qr)


def test_a_baseline_stored_under_the_project_code_still_compares() -> None:
    """Triage Observations stored before the LOINC codes rank by the same option."""
    q = CATALOGUE.by_id["cssrs-screener"]
    low = members("cssrs-screener", sample("cssrs-screener", "low"))["cssrs-screener-triage"]
    low["id"] = "old-low"
    low["valueCodeableConcept"]["coding"].reverse()  # project code first, as stored before
    high_qr = sample("cssrs-screener", "high-intent")
    extraction = extract(high_qr, q, ScoringPlan(q), None)
    assert extraction is not None
    obs, score = next((o, s) for o, s in extraction.members
                      if s.item.link_id == "cssrs-screener-triage")
    band_change(obs, score, low, low)
    assert obs["interpretation"][0]["coding"][0]["code"] == "W"


def test_gad7_item_2_answered_as_loincs_form_does_weighs_2() -> None:
    original = sample("gad-7")
    (given,) = [i for i in original["item"] if i["linkId"] == "gad-7-2"]
    assert given["answer"][0]["valueCoding"]["code"] == "LA6570-1"  # weight 2 in the sample
    loinc = copy.deepcopy(original)
    for it in loinc["item"]:
        if it["linkId"] == "gad-7-2":
            it["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA18938-3",
                                             "display": "More days than not"}}]
    assert scores("gad-7", loinc)["gad-7-total"] == scores("gad-7", original)["gad-7-total"]
    assert scores("gad-7", loinc)["gad-7-total"] == load_json(
        ROOT / "tests" / "data" / "samples" / "gad-7" / "complete.expected.json")["gad-7-total"]


def test_gad7_shows_the_patient_the_originals_wording() -> None:
    """The patient sees "More than half the days" once: LA18938-3 is no option of its own."""
    shown = [o["valueCoding"]["display"] for o in item("gad-7", "gad-7-2")["answerOption"]]
    assert shown.count("More than half the days") == 1 and "More days than not" not in shown


def test_bsl23_top_band_and_copyright() -> None:
    top = item("bsl-23", "bsl-23-severity")["answerOption"][-1]["valueCoding"]
    assert top["display"].startswith("Extremely high")
    copyright_ = CATALOGUE.by_id["bsl-23"]["copyright"]
    assert copyright_.startswith("\u00a9 Bohus et al., ZI Mannheim, no licence fee")
    assert "2022" in copyright_ and "licensed-text slots" in copyright_


def test_the_bpd_threshold_says_it_is_not_a_diagnosis() -> None:
    band = item("bpd-criteria", "bpd-criteria-threshold")
    met = next(o["valueCoding"] for o in band["answerOption"]
               if o["valueCoding"]["code"] == "bpd-threshold-met")
    assert "not a diagnosis" in met["display"]
    intake = members("bpd-criteria", sample("bpd-criteria", "case-intake"))
    concept = intake["bpd-criteria-threshold"]["valueCodeableConcept"]
    assert concept["coding"][0]["code"] == "bpd-threshold-met"
    assert "not a diagnosis" in concept["text"]
