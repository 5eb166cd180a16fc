"""fhir/task_checks.py: what a new Task must be, and which status moves an update may make."""

from __future__ import annotations

from typing import Any

import pytest

from mit_fhir.fhir import task as shape
from mit_fhir.fhir import task_checks

PHQ9 = "https://mit-fhir.org/fhir/Questionnaire/phq-9"
SERVED = {PHQ9: {"resourceType": "Questionnaire", "url": PHQ9, "version": "1.0.0"}}


def _resolve(canonical: str) -> dict[str, Any] | None:
    return SERVED.get(canonical.partition("|")[0])


def _task(**changes: Any) -> dict[str, Any]:
    task = shape.questionnaire_task(PHQ9, "p1", {"reference": "Practitioner/dr"},
                                    "2026-01-01T00:00:00Z", "2026-01-01", "2026-01-15")
    task.update(changes)
    return task


def _elements(issues: list[Any]) -> set[str]:
    return {e for issue in issues for e in issue.expression}


def test_a_task_built_by_fhir_task_is_accepted() -> None:
    assert task_checks.create_issues(_task(), _resolve) == []
    assert task_checks.form_of(_task(), _resolve) == SERVED[PHQ9]


def test_every_problem_of_a_new_task_is_named() -> None:
    bad = _task(status="completed", intent="plan", focus={"reference": "X/1"},
                requester={"reference": "https://other.example/Practitioner/1"},
                restriction={"period": {"start": "2026-02-01", "end": "2026-01-01"}},
                code={"text": "x"}, input=[], output=[{"type": {"text": "x"}}])
    bad["for"] = {"reference": "Group/1"}
    assert _elements(task_checks.create_issues(bad, _resolve)) == {
        "Task.status", "Task.intent", "Task.focus", "Task.requester", "Task.restriction.period",
        "Task.code", "Task.input", "Task.output", "Task.for"}
    unserved = _task(input=[{**_task()["input"][0], "valueCanonical": "https://x.org/Q/1"}])
    assert _elements(task_checks.create_issues(unserved, _resolve)) == {"Task.input"}


def test_only_the_status_and_what_comes_with_it_may_change() -> None:
    stored = _task()
    moved = shape.with_status(stored, "cancelled", "2026-01-02", "moved")
    assert task_checks.changed_elements(stored, moved) == []
    assert task_checks.changed_elements(stored, {**moved, "owner": {"reference": "X/1"},
                                                 "basedOn": []}) == ["basedOn", "owner"]


@pytest.mark.parametrize("old, new, extra, refused", [
    ("requested", "in-progress", {}, None),
    ("in-progress", "on-hold", {}, None),
    ("on-hold", "ready", {}, None),
    ("draft", "requested", {}, None),
    ("draft", "in-progress", {}, "Task.status"),
    ("requested", "failed", {}, "Task.status"),
    ("requested", "cancelled", {}, "Task.statusReason"),
    ("requested", "cancelled", {"statusReason": {"text": " "}}, "Task.statusReason"),
    ("requested", "cancelled", {"statusReason": {"text": "moved"}}, None),
    ("requested", "completed", {}, "Task.output"),
    ("requested", "in-progress", {"output": [{}]}, "Task.output"),
    ("requested", "nonsense", {}, "Task.status"),
])
def test_status_moves(old: str, new: str, extra: dict[str, Any], refused: str | None) -> None:
    issue = task_checks.move_issue(_task(status=old), _task(status=new, **extra))
    assert (issue.expression[0] if issue else None) == refused


def test_a_completion_names_one_response() -> None:
    done = shape.completed_by(_task(), "QuestionnaireResponse/r1", "2026-01-02")
    assert task_checks.move_issue(_task(), done) is None
    twice = {**done, "output": done["output"] * 2}
    assert task_checks.move_issue(_task(), twice) is not None
