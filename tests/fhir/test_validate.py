"""Checking a QuestionnaireResponse against small hand-made Questionnaires."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from mit_fhir.errors import InvalidRequest, Unprocessable
from mit_fhir.fhir.validate import check_against, check_structure, collect_answers

MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
RED = {"system": "http://example.org/colour", "code": "red"}
BLUE = {"system": "http://example.org/colour", "code": "blue"}
SECRET = "SECRET-ANSWER-123"

FORM: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": "tiny",
    "status": "active",
    "item": [
        {"linkId": "intro", "type": "display", "text": "Hello"},
        {"linkId": "name", "type": "string", "required": True, "maxLength": 10},
        {"linkId": "smoker", "type": "boolean"},
        {"linkId": "packs", "type": "integer", "required": True,
         "enableWhen": [{"question": "smoker", "operator": "=", "answerBoolean": True}],
         "extension": [{"url": MIN, "valueInteger": 1}, {"url": MAX, "valueInteger": 5}]},
        {"linkId": "score", "type": "decimal",
         "extension": [{"url": MIN, "valueDecimal": 0}, {"url": MAX, "valueDecimal": 9}]},
        {"linkId": "colour", "type": "choice",
         "answerOption": [{"valueCoding": RED}, {"valueCoding": BLUE}]},
        {"linkId": "colours", "type": "choice", "repeats": True,
         "answerOption": [{"valueCoding": RED}, {"valueCoding": BLUE}]},
        {"linkId": "size", "type": "open-choice",
         "answerOption": [{"valueString": "small"}, {"valueString": "large"}]},
        {"linkId": "pet", "type": "choice", "answerOption": [{"valueInteger": 1},
                                                              {"valueInteger": 2}]},
        {"linkId": "when", "type": "dateTime"},
        {"linkId": "family", "type": "group", "repeats": True, "item": [
            {"linkId": "member", "type": "string", "required": True},
            {"linkId": "age", "type": "integer"},
        ]},
        {"linkId": "followup", "type": "boolean", "item": [
            {"linkId": "followup-why", "type": "text"},
        ]},
    ],
}


def response(*items: dict[str, Any], status: str = "completed", **extra: Any) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://example.org/Questionnaire/tiny",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "item": [{"linkId": "name", "answer": [{"valueString": "Ann"}]}, *items],
    }
    qr.update(extra)
    return qr


def ans(link_id: str, *values: dict[str, Any]) -> dict[str, Any]:
    return {"linkId": link_id, "answer": list(values)}


def problems(qr: dict[str, Any]) -> list[str]:
    try:
        check_against(qr, FORM)
    except Unprocessable as exc:
        assert exc.status == 422
        return [i.diagnostics for i in exc.issues]
    return []


@pytest.mark.parametrize(
    "items",
    [
        [],
        [ans("smoker", {"valueBoolean": False})],
        [ans("smoker", {"valueBoolean": True}), ans("packs", {"valueInteger": 5})],
        [ans("score", {"valueDecimal": 0})],
        [ans("score", {"valueInteger": 9})],  # an integer fits a decimal item
        [ans("colour", {"valueCoding": {"code": "red"}})],  # system may be left out
        [ans("colours", {"valueCoding": RED}, {"valueCoding": BLUE})],
        [ans("size", {"valueString": "medium"})],  # open-choice takes free text
        [ans("size", {"valueString": "small"})],
        [ans("pet", {"valueInteger": 2})],
        [ans("when", {"valueDate": "2024-03-01"})],
        [{"linkId": "intro"}],
        [{"linkId": "family", "item": [ans("member", {"valueString": "Bo"})]},
         {"linkId": "family", "item": [ans("member", {"valueString": "Cy"}),
                                       ans("age", {"valueInteger": 4})]}],
        [{"linkId": "followup", "answer": [{"valueBoolean": True, "item": [
            ans("followup-why", {"valueString": "because"})]}]}],
    ],
)
def test_fitting_responses_pass(items: list[dict[str, Any]]) -> None:
    assert problems(response(*items)) == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([ans("nope", {"valueString": SECRET})], "linkId 'nope' is not an item"),
        ([ans("member", {"valueString": SECRET})], "linkId 'member' is not an item"),
        ([ans("score", {"valueString": SECRET})], "cannot take valueString"),
        ([ans("smoker", {"valueCoding": RED})], "cannot take valueCoding"),
        ([ans("score", {"valueDecimal": 9.01})], "outside [0, 9]"),
        ([ans("score", {"valueDecimal": -1})], "outside [0, 9]"),
        ([ans("smoker", {"valueBoolean": True}), ans("packs", {"valueInteger": 6})],
         "'packs': the answer is outside [1, 5]"),
        ([ans("colour", {"valueCoding": {**RED, "code": SECRET}})], "not one of its answerOptions"),
        ([ans("colour", {"valueCoding": {"system": "http://other.org", "code": "red"}})],
         "not one of its answerOptions"),
        ([ans("colour", {"valueString": SECRET})], "not one of its answerOptions"),
        ([ans("pet", {"valueInteger": 3})], "not one of its answerOptions"),
        ([ans("colour", {"valueCoding": RED}, {"valueCoding": BLUE})],
         "'colour' has several answers"),
        ([ans("score", {"valueDecimal": 1}), ans("score", {"valueDecimal": 2})],
         "'score' appears more than once"),
        ([ans("smoker", {"valueBoolean": True})], "required item 'packs' is not answered"),
        ([ans("smoker", {"valueBoolean": False}), ans("packs", {"valueInteger": 2})],
         "'packs' is answered but disabled"),
        ([ans("packs", {"valueInteger": 2})], "'packs' is answered but disabled"),
        ([ans("intro", {"valueString": SECRET})], "'intro' is a display"),
        ([{"linkId": "family", "answer": [{"valueString": SECRET}]}], "'family' is a group"),
        ([{"linkId": "family", "item": [ans("age", {"valueInteger": 4})]}],
         "required item 'member' is not answered"),
        ([{"linkId": "smoker", "answer": [{"valueBoolean": True}],
           "item": [ans("packs", {"valueInteger": 1})]}], "nests items outside its answers"),
        ([ans("score", {})], "the answer has no value"),
        ([ans("name", {"valueString": "x"})], "'name' appears more than once"),
    ],
)
def test_misfits_are_named_without_the_answers(
    items: list[dict[str, Any]], message: str
) -> None:
    found = problems(response(*items))
    assert any(message in p for p in found), found
    assert not any(SECRET in p for p in found)


def test_string_longer_than_max_length() -> None:
    qr = response()
    qr["item"][0]["answer"] = [{"valueString": "x" * 11}]
    assert problems(qr) == ["item 'name': the answer is longer than 10"]


@pytest.mark.parametrize("status", ["in-progress", "stopped", "entered-in-error"])
def test_required_items_may_be_missing_unless_completed(status: str) -> None:
    qr = response(status=status)
    qr["item"] = []
    assert problems(qr) == []
    qr["status"] = "completed"
    assert problems(qr) == ["required item 'name' is not answered"]


def test_required_item_inside_a_disabled_branch_is_not_required() -> None:
    assert problems(response(ans("smoker", {"valueBoolean": False}))) == []


def test_status_and_subject_are_checked() -> None:
    qr = response(status="done", subject={"reference": "Group/1"})
    found = problems(qr)
    assert any("status must be one of" in p for p in found)
    assert any("subject must reference the Patient" in p for p in found)
    assert any("subject" in p for p in problems({**response(), "subject": {}}))
    assert any("subject" in p for p in problems(
        {k: v for k, v in response().items() if k != "subject"}))
    assert any("subject" in p for p in problems(
        {**response(), "subject": {"reference": "Patient/"}}))


def test_issue_locations_are_fhirpath() -> None:
    qr = response({"linkId": "family", "item": [ans("member", {"valueString": "A"}),
                                                ans("age", {"valueString": "x"})]})
    with pytest.raises(Unprocessable) as info:
        check_against(qr, FORM)
    (issue,) = info.value.issues
    assert issue.expression == ("QuestionnaireResponse.item[1].item[1].answer[0]",)


def test_collect_answers_walks_the_whole_tree() -> None:
    qr = response(
        {"linkId": "family", "item": [ans("member", {"valueString": "A"})]},
        {"linkId": "followup", "answer": [{"valueBoolean": True, "item": [
            ans("followup-why", {"valueString": "b"})]}]},
    )
    got = collect_answers(qr["item"])
    assert got["member"] == [{"valueString": "A"}]
    assert got["followup-why"] == [{"valueString": "b"}]
    assert len(got["followup"]) == 1
    assert "family" not in got


def test_check_structure_accepts_a_valid_resource() -> None:
    check_structure(response(), QuestionnaireResponse)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"authored": SECRET}, "QuestionnaireResponse.authored"),
        ({"item": [{"linkId": "score", "answer": [{"valueDecimal": SECRET}]}]},
         "QuestionnaireResponse.item[0].answer[0].valueDecimal"),
        ({"unknownElement": SECRET}, "QuestionnaireResponse.unknownElement"),
    ],
)
def test_check_structure_rejects_broken_fhir(change: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_structure({**response(), **change}, QuestionnaireResponse)
    assert info.value.status == 400
    assert where in [e for i in info.value.issues for e in i.expression]
    assert not any(SECRET in i.diagnostics for i in info.value.issues)
