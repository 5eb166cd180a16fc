"""Structural checks: the JSON types fhir.resources would coerce, and issues without values."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir.site_forms import checked
from mit_fhir.fhir.structure import check_structure, json_type_issues
from tests.conftest import DATA, load_json, sample

SITE_FORM = load_json(DATA / "lhc-forms" / "phq-9-loinc.json")


def phq9(change: dict[str, Any]) -> dict[str, Any]:
    qr = sample("phq-9")
    for path, value in change.items():
        node: Any = qr
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return qr


@pytest.mark.parametrize(
    ("change", "where"),
    [
        # Each passes fhir.resources' lax models; the service then reads the raw JSON.
        ({"item.0.answer.0": {"valueInteger": "5"}}, "item[0].answer[0].valueInteger"),
        ({"item.0.answer.0": {"valueInteger": 2**31}}, "item[0].answer[0].valueInteger"),
        ({"item.0.answer.0": {"valueInteger": 1.5}}, "item[0].answer[0].valueInteger"),
        ({"item.0.answer.0": {"valueDecimal": "1"}}, "item[0].answer[0].valueDecimal"),
        ({"item.0.answer.0": {"valueBoolean": "true"}}, "item[0].answer[0].valueBoolean"),
        ({"item.0.answer.0": {"valueDate": 20240101}}, "item[0].answer[0].valueDate"),
        ({"authored": 5}, "authored"),
        ({"authored": None}, "authored"),
        ({"item.0.answer": [None]}, "item[0].answer"),
    ],
)
def test_json_types_the_models_would_coerce_are_refused(change: dict[str, Any],
                                                        where: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_structure(phq9(change), QuestionnaireResponse)
    expressions = [e for i in caught.value.issues for e in i.expression]
    assert f"QuestionnaireResponse.{where}" in expressions


def test_a_null_aligned_with_its_extensions_is_accepted() -> None:
    doc = {"given": ["A", None], "_given": [None, {"extension": []}]}
    assert json_type_issues(doc, "HumanName") == []


def test_valid_bodies_have_no_json_type_issues() -> None:
    assert json_type_issues(sample("phq-9"), "QuestionnaireResponse") == []
    assert json_type_issues(sample("medication-plan"), "QuestionnaireResponse") == []
    assert json_type_issues(SITE_FORM, "Questionnaire") == []


def test_lhc_forms_variable_names_are_tolerated_but_nothing_else() -> None:
    assert checked(copy.deepcopy(SITE_FORM)) == SITE_FORM
    form = copy.deepcopy(SITE_FORM)
    form["item"][0]["linkId"] = 7
    with pytest.raises(InvalidRequest) as caught:
        checked(form)
    assert caught.value.issues[0].expression == ("Questionnaire.item[0].linkId",)


@pytest.mark.parametrize("model", [Questionnaire, QuestionnaireResponse])
def test_issues_never_carry_the_value(model: type[Any]) -> None:
    doc = {"resourceType": model.__name__, "status": "completed", "date": "SECRET-1",
           "authored": "SECRET-2", "item": [{"linkId": "a", "text": {"x": "SECRET-3"},
                                             "answerOption": ["SECRET-4"]}]}
    with pytest.raises(InvalidRequest) as caught:
        check_structure(doc, model)
    assert "SECRET" not in json.dumps(caught.value.outcome())
