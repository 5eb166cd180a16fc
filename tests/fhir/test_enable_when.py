"""enableWhen evaluation (FHIR R4 Questionnaire.item.enableWhen / enableBehavior)."""

from __future__ import annotations

from typing import Any

import pytest

from mit_fhir.fhir.enable_when import condition_met, enabled

YES = {"system": "http://loinc.org", "code": "LA33-6"}
NO = {"system": "http://loinc.org", "code": "LA32-8"}


def cond(operator: str, **answer: Any) -> dict[str, Any]:
    return {"question": "q", "operator": operator, **answer}


def given(*answers: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {"q": list(answers)}


@pytest.mark.parametrize(
    ("condition", "answers", "expected"),
    [
        # exists true / false
        (cond("exists", answerBoolean=True), given({"valueInteger": 0}), True),
        (cond("exists", answerBoolean=True), given(), False),
        (cond("exists", answerBoolean=False), given(), True),
        (cond("exists", answerBoolean=False), given({"valueBoolean": False}), False),
        # coding =, !=
        (cond("=", answerCoding=YES), given({"valueCoding": YES}), True),
        (cond("=", answerCoding=YES), given({"valueCoding": {**YES, "display": "Yes"}}), True),
        (cond("=", answerCoding=YES), given({"valueCoding": {"code": "LA33-6"}}), True),
        (cond("=", answerCoding=YES), given({"valueCoding": NO}), False),
        (cond("=", answerCoding=YES),
         given({"valueCoding": {"system": "http://other.org", "code": "LA33-6"}}), False),
        (cond("=", answerCoding=YES), given(), False),
        (cond("=", answerCoding=YES), given({"valueCoding": NO}, {"valueCoding": YES}), True),
        (cond("!=", answerCoding=YES), given({"valueCoding": NO}), True),
        (cond("!=", answerCoding=YES), given({"valueCoding": YES}), False),
        (cond("!=", answerCoding=YES), given({"valueCoding": NO}, {"valueCoding": YES}), False),
        (cond("!=", answerCoding=YES), given(), True),
        # boolean
        (cond("=", answerBoolean=True), given({"valueBoolean": True}), True),
        (cond("=", answerBoolean=True), given({"valueBoolean": False}), False),
        (cond("=", answerBoolean=False), given({"valueBoolean": False}), True),
        (cond("=", answerBoolean=False), given(), False),
        (cond("!=", answerBoolean=True), given({"valueBoolean": False}), True),
        (cond("!=", answerBoolean=True), given({"valueBoolean": True}), False),
        # integer comparisons
        (cond("=", answerInteger=3), given({"valueInteger": 3}), True),
        (cond("=", answerInteger=3), given({"valueInteger": 4}), False),
        (cond("!=", answerInteger=3), given({"valueInteger": 4}), True),
        (cond(">", answerInteger=3), given({"valueInteger": 4}), True),
        (cond(">", answerInteger=3), given({"valueInteger": 3}), False),
        (cond("<", answerInteger=3), given({"valueInteger": 2}), True),
        (cond("<", answerInteger=3), given({"valueInteger": 3}), False),
        (cond(">=", answerInteger=3), given({"valueInteger": 3}), True),
        (cond(">=", answerInteger=3), given({"valueInteger": 2}), False),
        (cond("<=", answerInteger=3), given({"valueInteger": 3}), True),
        (cond("<=", answerInteger=3), given({"valueInteger": 4}), False),
        (cond(">", answerInteger=3), given(), False),
        (cond(">", answerInteger=3), given({"valueInteger": 1}, {"valueInteger": 5}), True),
        (cond(">", answerDecimal=2.5), given({"valueDecimal": 2.6}), True),
        (cond(">", answerDecimal=2.5), given({"valueInteger": 2}), False),
        # ordering on codings or mismatched types is never true
        (cond(">", answerCoding=YES), given({"valueCoding": YES}), False),
        (cond(">", answerInteger=3), given({"valueString": "4"}), False),
        # a different question's answers do not count
        (cond("=", answerInteger=3), {"other": [{"valueInteger": 3}]}, False),
    ],
)
def test_condition(condition: dict[str, Any], answers: Any, expected: bool) -> None:
    assert condition_met(condition, answers) is expected


def _item(behavior: str | None, *conds: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": "x", "type": "string", "enableWhen": list(conds)}
    if behavior:
        item["enableBehavior"] = behavior
    return item


A_YES = {"question": "a", "operator": "=", "answerBoolean": True}
B_GT2 = {"question": "b", "operator": ">", "answerInteger": 2}


@pytest.mark.parametrize(
    ("behavior", "a", "b", "expected"),
    [
        ("any", True, 3, True),
        ("any", True, 1, True),
        ("any", False, 3, True),
        ("any", False, 1, False),
        ("all", True, 3, True),
        ("all", True, 1, False),
        ("all", False, 3, False),
        ("all", False, 1, False),
        (None, False, 3, True),  # a single-condition default; several conditions need a behavior
    ],
)
def test_enable_behavior(behavior: str | None, a: bool, b: int, expected: bool) -> None:
    answers = {"a": [{"valueBoolean": a}], "b": [{"valueInteger": b}]}
    assert enabled(_item(behavior, A_YES, B_GT2), answers) is expected


def test_item_without_enable_when_is_enabled() -> None:
    assert enabled({"linkId": "x", "type": "string"}, {}) is True
