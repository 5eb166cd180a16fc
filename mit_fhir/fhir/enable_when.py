"""Questionnaire.item.enableWhen evaluated against a response's answers (FHIR R4 semantics)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mit_fhir.fhir.answers import same_coding, value_of


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(expected, dict) and isinstance(actual, dict):
        equal = same_coding(actual, expected) if "code" in expected else actual == expected
        if op == "=":
            return equal
        if op == "!=":
            return not equal
        return False
    try:
        if op == "=":
            return bool(actual == expected)
        if op == "!=":
            return bool(actual != expected)
        if op == ">":
            return bool(actual > expected)
        if op == "<":
            return bool(actual < expected)
        if op == ">=":
            return bool(actual >= expected)
        if op == "<=":
            return bool(actual <= expected)
    except TypeError:
        return False
    return False


def condition_met(cond: dict[str, Any], answers: Mapping[str, list[dict[str, Any]]]) -> bool:
    """One enableWhen condition; `answers` maps linkId to that item's answers."""
    given = answers.get(cond["question"], [])
    op = cond["operator"]
    # enableWhen carries answer[x] (answerCoding, answerBoolean...), not value[x].
    expected = next(((k, v) for k, v in cond.items() if k.startswith("answer")), None)
    if op == "exists":
        wanted = bool(cond.get("answerBoolean"))
        return bool(given) == wanted
    if expected is None:
        return False
    _, exp_val = expected
    values = [v for a in given if (v := value_of(a)) is not None]
    if op == "!=" and not values:
        # R4: with no answer, "!=" is true (the answer is not the given value).
        return True
    hits = [_compare(val, op, exp_val) for _, val in values]
    return all(hits) if op == "!=" else any(hits)


def enabled(item: dict[str, Any], answers: Mapping[str, list[dict[str, Any]]]) -> bool:
    """Whether an item is enabled given the response's answers (enableBehavior any/all)."""
    conds = item.get("enableWhen")
    if not conds:
        return True
    results = (condition_met(c, answers) for c in conds)
    return all(results) if item.get("enableBehavior") == "all" else any(results)
