"""A malformed critical-answer mark is refused where a form comes in, never a 500 (finding F5)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from mit_fhir.app import create_app
from mit_fhir.config import ConfigError
from mit_fhir.fhir import alerts
from mit_fhir.paths import QUESTIONNAIRE_DIR
from tests.conftest import load_json, sample, stored_counts

Resource = dict[str, Any]
PHQ9 = load_json(QUESTIONNAIRE_DIR / "phq-9.json")
ITEM = "phq-9-9"
WHERE = f"Questionnaire.item.where(linkId='{ITEM}')"


def _mark(form: Resource) -> Resource:
    item = next(i for i in form["item"] if i["linkId"] == ITEM)
    return next(e for e in item["extension"] if e["url"] == alerts.EXT_CRITICAL_ANSWER)


def _drop(name: str) -> Callable[[Resource], None]:
    def change(mark: Resource) -> None:
        mark["extension"] = [p for p in mark["extension"] if p["url"] != name]
    return change


def _set(name: str, part: Resource) -> Callable[[Resource], None]:
    def change(mark: Resource) -> None:
        _drop(name)(mark)
        mark["extension"].append({"url": name, **part})
    return change


MALFORMED: dict[str, Callable[[Resource], None]] = {
    "no level": _drop("level"),
    "level banana": _set("level", {"valueCode": "banana"}),
    "level as a valueString": _set("level", {"valueString": "critical"}),
    "two levels": lambda m: m["extension"].append({"url": "level", "valueCode": "warning"}),
    "no message": _drop("message"),
    "message as a valueInteger": _set("message", {"valueInteger": 5}),
    "an answer as a valueString": lambda m: m["extension"].append(
        {"url": "answer", "valueString": "Nearly every day"}),
    "no answer": _drop("answer"),
    "no parts": lambda m: m.pop("extension"),
}


def malformed(case: str) -> Resource:
    form = copy.deepcopy(PHQ9)
    MALFORMED[case](_mark(form))
    return form


def extract(fhir: Any, form: Resource) -> Any:
    qr = {**sample("phq-9", "severe"), "subject": {"reference": "Patient/marks"}}
    return fhir.post("/fhir/QuestionnaireResponse/$extract", {
        "resourceType": "Parameters", "parameter": [
            {"name": "questionnaire-response", "resource": qr},
            {"name": "questionnaire", "resource": form}]})


def test_the_well_formed_mark_raises_its_alert(fhir: Any) -> None:
    response = extract(fhir, copy.deepcopy(PHQ9))
    assert response.status_code == 200, response.json
    assert alerts.EXT_ANSWER_ALERT in json.dumps(response.json["entry"][0]["resource"])


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_site_mark_is_a_400_naming_the_item(app: Flask, fhir: Any, case: str) -> None:
    before = stored_counts(app)
    response = extract(fhir, malformed(case))
    assert response.status_code == 400, response.json
    (issue,) = response.json["issue"]
    assert issue["expression"] == [WHERE]
    assert f"item '{ITEM}'" in issue["diagnostics"] and "critical-answer" in issue["diagnostics"]
    assert stored_counts(app) == before


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_alerts_never_raise_on_a_malformed_mark(case: str) -> None:
    """Read past the checks (a form loaded before them), the mark is skipped, not a crash."""
    form = malformed(case)
    ((link_id, _problem),) = alerts.mark_problems(form)
    assert link_id == ITEM
    assert alerts.alerts(form, sample("phq-9", "severe"), {}) == []


def test_a_catalogue_form_with_a_bad_mark_is_refused_at_start(
        tmp_path: Path, database_url: str) -> None:
    for path in QUESTIONNAIRE_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "phq-9.json").write_text(json.dumps(malformed("level banana")))
    with pytest.raises(ConfigError) as refused:
        create_app({"DATABASE_URL": database_url, "QUESTIONNAIRE_DIR": str(tmp_path)})
    text = str(refused.value)
    assert "MIT_FHIR_QUESTIONNAIRE_DIR" in text and "phq-9.json" in text
    assert f"item '{ITEM}'" in text and "'level'" in text
