"""repeat() ends once a round adds nothing new; expressions keep a budget; trace() is silent."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mit_fhir.fhir import fhirpath
from mit_fhir.fhir.budget import MAX_STRING, BudgetExceeded, Limits, foreign, limited
from mit_fhir.fhir.scoring import Weights, reference_evaluate

LIMITS = Limits(max_items=1000, time_limit_ms=300)
TREE = {"resourceType": "QuestionnaireResponse", "item": [
    {"linkId": "a", "item": [{"linkId": "a1"}, {"linkId": "a2", "item": [{"linkId": "a21"}]}]},
    {"linkId": "b"},
]}


def run(text: str, resource: Any = None) -> list[Any]:
    resource = TREE if resource is None else resource
    env = fhirpath.Env(variables={"resource": [resource]})
    return fhirpath.compile_expression(text)([resource], env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A projection that yields its own input ends at once (issue 12, item 3).
        ("'x'.repeat('x')", ["x"]),
        ("1.repeat(1)", [1]),
        ("(1 | 2).repeat(2)", [2]),
        ("1.repeat(iif($this < 5, $this + 1, $this))", [2, 3, 4, 5]),
        ("item.repeat(item).linkId", ["a1", "a2", "a21"]),
        ("repeat(item).linkId", ["a", "b", "a1", "a2", "a21"]),
        ("'x'.repeat($this + 'y').where($this = 'never')", None),
    ],
)
def test_repeat_returns_the_unique_items_and_ends(text: str, expected: list[Any] | None) -> None:
    """N1: repeat adds items "as long as the projection yields new items" (by `=`)."""
    if expected is None:  # unbounded: only the budget ends it
        with pytest.raises(BudgetExceeded), limited(LIMITS):
            run(text)
        return
    started = time.monotonic()
    assert run(text) == expected
    assert time.monotonic() - started < 1


def test_repeat_treats_equal_objects_as_one_item() -> None:
    twins = {"item": [{"linkId": "t"}, {"linkId": "t"}]}
    assert run("repeat(item)", twins) == [{"linkId": "t"}]


def test_union_still_removes_duplicates_by_equality() -> None:
    assert run("(1 | 1.0 | 2 | 'a' | 'a' | true | true)") == [1, 2, "a", True]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.repeat($this + 1)", "items"),
        ("'x'.repeat($this + $this)", "string"),
        ("1.repeat($this + 1).select($this)", "items"),
    ],
)
def test_the_compiled_evaluator_stops_at_the_budget(text: str, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as caught, limited(LIMITS):
        run(text)
    assert time.monotonic() - started < 1
    assert (why == "string") == (str(MAX_STRING) in caught.value.reason)


def test_the_time_limit_stops_work_that_builds_nothing_large() -> None:
    # Each round adds one item, well below the item limit: only the clock stops it.
    with pytest.raises(BudgetExceeded, match="longer than 50 ms"), \
            limited(Limits(max_items=10**6, time_limit_ms=50)):
        run("1.repeat($this + 1)")


def test_without_a_budget_nothing_is_charged() -> None:
    assert run("(1 | 2 | 3).select($this * 2)") == [2, 4, 6]


@pytest.mark.parametrize(
    "text",
    ["2.repeat($this * $this)", "9223372036854775807 + 1", "9223372036854775807 * 2 div 1",
     "'a'.abs()", "1.round('x')", "1.5.round(400)"],
)
def test_arithmetic_errors_are_evaluation_errors(text: str) -> None:
    """Overflow and type errors make a score absent (EvaluationError), never a 500."""
    with pytest.raises(fhirpath.EvaluationError), limited(LIMITS):
        run(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.repeat($this + 1).toString()", "longer than"),
        ("'x'.repeat($this + $this).toString()", "string longer"),
    ],
)
def test_fhirpathpy_runs_within_the_budget(text: str, why: str) -> None:
    """Expressions outside the compiled subset run in fhirpathpy, under the same budget,
    even though fhirpathpy swallows the exceptions of its own calls."""
    with pytest.raises(fhirpath.Unsupported):
        fhirpath.compile_expression(text)
    weights = Weights({"item": []})
    started = time.monotonic()
    with pytest.raises(BudgetExceeded, match=why), limited(LIMITS):
        foreign(lambda: reference_evaluate(TREE, text, {}, weights))
    assert time.monotonic() - started < 1.5


def test_foreign_restores_the_previous_profile_hook() -> None:
    import sys

    with limited(LIMITS):
        assert foreign(lambda: 42) == 42
    assert sys.getprofile() is None


@pytest.mark.parametrize("text", ["item.linkId.trace('ids')", "item.trace('x', linkId).linkId"])
def test_trace_returns_its_input_and_writes_nothing(
    text: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run(text) == ["a", "b"]
    assert capfd.readouterr() == ("", "")


def test_trace_in_fhirpathpy_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    text = "item.linkId.trace('ids').toString()"
    with pytest.raises(fhirpath.Unsupported):
        fhirpath.compile_expression(text)
    reference_evaluate(TREE, text, {}, Weights({"item": []}))
    assert capfd.readouterr() == ("", "")
