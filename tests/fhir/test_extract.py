"""Extraction: golden Observations per instrument, drafts, missing answers, the case report."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from flask import Flask

from mit_fhir.fhir.extract import transaction_bundle
from mit_fhir.fhir.index import observation_index, sort_date
from mit_fhir.store.repository import insert
from tests.conftest import DATA, sample

GOLDEN = DATA / "golden"
INSTRUMENTS = [
    "ders", "ders-16", "scl-90-r", "bpd-criteria", "bsl-23", "phq-9", "gad-7",
    "cssrs-screener", "mas-a",
]
FORMS = ["mit-episode", "mit-schema", "mit-contract", "mit-regulation-menu", "mit-experiment",
         "medication-plan", "crisis-contact-plan"]
CASE = {"intake": "2019-03-04T10:00:00+01:00", "end": "2020-09-07T10:00:00+02:00"}


def counter(prefix: str) -> Callable[[], str]:
    """Deterministic ids so golden files compare exactly."""
    numbers = itertools.count(1)
    return lambda: f"{prefix}-{next(numbers)}"


def compare_golden(path: Path, actual: Any) -> None:
    """Compare with a golden file; UPDATE_GOLDEN=1 rewrites it (review the diff!)."""
    text = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1 and review"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text)


def observations(app: Flask, qr: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    context = app.extensions["mit_fhir"]
    questionnaire = context.catalogue.resolve(qr["questionnaire"])
    with context.store.transaction() as conn:
        extraction = context.scorer.observations(
            conn, qr, questionnaire, {"reference": f"QuestionnaireResponse/{qr['id']}"},
            new_id=counter(prefix),
        )
    return extraction.resources() if extraction else []


@pytest.mark.parametrize("qid", INSTRUMENTS)
def test_extraction_matches_golden(app: Flask, qid: str) -> None:
    qr = sample(qid)
    resources = observations(app, qr, f"{qid}-obs")
    compare_golden(GOLDEN / "extract" / f"{qid}.json", transaction_bundle(resources))


@pytest.mark.parametrize("qid", INSTRUMENTS)
def test_extracted_observations_are_valid_r4_screening_panels(app: Flask, qid: str) -> None:
    resources = observations(app, sample(qid), "v")
    panel, members = resources[0], resources[1:]
    assert not any(k.startswith("value") for k in panel) and members
    members_ids = {f"Observation/{m['id']}" for m in members}
    assert {m["reference"] for m in panel["hasMember"]} == members_ids
    for obs in resources:
        Observation.model_validate(obs)
        assert obs["category"][0]["coding"][0]["code"] == "survey"
        assert obs["derivedFrom"][0] == {"reference": f"QuestionnaireResponse/{sample(qid)['id']}"}
        assert obs["subject"] == sample(qid)["subject"]
        assert obs["effectiveDateTime"] == sample(qid)["authored"]
    for obs in members:
        assert ("valueQuantity" in obs) or ("valueCodeableConcept" in obs)


@pytest.mark.parametrize("qid", FORMS)
def test_formulation_forms_yield_no_score_observations(app: Flask, qid: str) -> None:
    assert observations(app, sample(qid), "f") == []


def test_a_draft_is_not_extracted(app: Flask) -> None:
    qr = {**sample("phq-9"), "status": "in-progress"}
    assert observations(app, qr, "d") == []


@pytest.mark.parametrize("qid", ["ders", "scl-90-r", "phq-9", "bsl-23"])
def test_uncomputable_scores_say_why_instead_of_a_number(app: Flask, qid: str) -> None:
    qr = sample(qid)
    qr["item"] = qr["item"][1:]  # drop the first answer: no instrument allows that silently
    expected = json.loads((DATA / "samples" / qid / "complete.expected.json").read_text())
    resources = observations(app, {**qr, "status": "completed"}, "m")
    absent = [o for o in resources[1:] if "dataAbsentReason" in o]
    assert absent, "a score with a missing item must not be reported as a number"
    for obs in absent:
        assert "valueQuantity" not in obs and obs["dataAbsentReason"]["text"]
    assert len(resources) - 1 == len([k for k in expected if k])


def submit_case(fhir: Any, qid: str) -> None:
    for stage, when in CASE.items():
        qr = sample(qid, f"case-{stage}")
        qr.update(authored=when, subject={"reference": "Patient/angie"})
        response = fhir.submit(qr)
        assert response.status_code == 201, response.json


def latest(client: Any, code: str) -> dict[str, Any]:
    bundle = client.get(f"/fhir/Observation?patient=angie&code={code}&_sort=-date").json
    assert bundle["total"] == 2
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    return resource


def change_of(obs: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [e for e in obs["extension"] if e["url"].endswith("/reliable-change")]
    parts = ext["extension"]
    return {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in parts}


@pytest.mark.parametrize(
    ("qid", "code", "pre", "post"),
    [("ders", "ders-total", 118, 57), ("scl-90-r", "scl-90-r-gsi", 2.1, 0.222)],
)
def test_case_report_scores_are_reliable_improvement_and_recovered(
    client: Any, fhir: Any, qid: str, code: str, pre: float, post: float
) -> None:
    submit_case(fhir, qid)
    obs = latest(client, code)
    flags = change_of(obs)
    assert obs["valueQuantity"]["value"] == pytest.approx(post)
    assert flags["baselineValue"]["value"] == pytest.approx(pre)
    assert flags["reliable"] is True
    assert flags["category"]["code"] == "recovered"
    assert flags["method"]["code"] == "jacobson-truax"
    assert obs["interpretation"][0]["coding"][0]["code"] == "B"
    assert flags["baseline"] in obs["derivedFrom"]
    assert obs["referenceRange"][0]["high"]["value"] > post


def test_case_report_bpd_criteria_no_longer_meet_the_threshold(client: Any, fhir: Any) -> None:
    submit_case(fhir, "bpd-criteria")
    count = latest(client, "bpd-criteria-count")
    threshold = latest(client, "bpd-criteria-threshold")
    assert count["valueQuantity"]["value"] == 3
    assert threshold["valueCodeableConcept"]["coding"][0]["code"] == "bpd-threshold-not-met"
    (band,) = [e for e in threshold["extension"] if e["url"].endswith("/band-change")]
    base = {p["url"]: p for p in band["extension"]}["baselineValue"]["valueCoding"]
    assert base["code"] == "bpd-threshold-met"
    assert threshold["interpretation"][0]["coding"][0]["code"] == "B"


def test_case_report_end_of_treatment_golden(app: Flask, fhir: Any) -> None:
    """The whole flagged Observation set for the case report, frozen for review."""
    for qid in ("ders", "scl-90-r", "bpd-criteria"):
        intake = sample(qid, "case-intake")
        intake.update(authored=CASE["intake"], subject={"reference": "Patient/angie"})
        context = app.extensions["mit_fhir"]
        questionnaire = context.catalogue.resolve(intake["questionnaire"])
        with context.store.transaction() as conn:
            extraction = context.scorer.observations(
                conn, intake, questionnaire, {"reference": "QuestionnaireResponse/intake"},
                new_id=counter(f"{qid}-intake"),
            )
            assert extraction is not None
            for obs in extraction.resources():
                insert(conn, obs, observation_index(obs), sort_date(obs))
        end = sample(qid, "case-end")
        end.update(authored=CASE["end"], subject={"reference": "Patient/angie"})
        resources = observations(app, end, f"{qid}-end")
        compare_golden(GOLDEN / "case-report" / f"{qid}-end.json", resources)


@pytest.mark.parametrize(
    ("author", "copied"),
    [("Practitioner/dr", True), ("Patient/example", True), ("Device/tablet", False)],
)
def test_performer_is_the_author_only_when_r4_allows_it(
    app: Flask, author: str, copied: bool
) -> None:
    qr = {**sample("gad-7"), "author": {"reference": author}}
    for obs in observations(app, qr, "p"):
        assert ("performer" in obs) is copied
