"""The SDC Task shape (fhir/task.py), its index rows, and the period search on them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.task import Task

from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir import task as tasks
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.index import task_index
from mit_fhir.fhir.references import resource_patient
from mit_fhir.fhir.search import criteria

DERS = "https://mit-fhir.org/fhir/Questionnaire/ders|1.0.0"


def _task(**kw: object) -> dict:
    return tasks.questionnaire_task(DERS, "p1", {"reference": "Practitioner/dr"},
                                    "2026-01-01T09:00:00Z", tid="t1", **kw)  # type: ignore[arg-type]


def test_a_questionnaire_task_is_a_valid_r4_task_of_the_sdc_shape() -> None:
    task = _task(period_start="2026-01-01", period_end="2026-01-15")
    Task.model_validate(task)  # the R4B model accepts it
    assert tasks.is_questionnaire_task(task) and "focus" not in task  # sdc-t1
    assert tasks.questionnaire_of(task) == DERS
    assert tasks.questionnaire_url(task) == DERS.partition("|")[0]
    assert resource_patient(task) == "p1"
    assert tasks.due(task) == "2026-01-15T23:59:59"  # due all that day


def test_a_task_cancelled_before_it_started_has_no_start() -> None:
    dropped = tasks.with_status(_task(), "cancelled", "2026-01-02T10:00:00Z", "not needed")
    assert dropped["executionPeriod"] == {"end": "2026-01-02T10:00:00Z"}
    assert dropped["statusReason"] == {"text": "not needed"}


def test_completion_records_the_response_as_output() -> None:
    done = tasks.completed_by(_task(), "QuestionnaireResponse/r1", "2026-01-02T10:00:00Z")
    Task.model_validate(done)
    assert done["status"] == "completed" and not tasks.is_open(done)
    assert tasks.response_of(done) == "QuestionnaireResponse/r1"
    assert done["executionPeriod"]["end"] == "2026-01-02T10:00:00Z"


def test_overdue_needs_an_open_task_past_its_due_date() -> None:
    task = _task(period_end="2026-01-15")
    assert tasks.overdue(task, datetime(2026, 1, 16, tzinfo=UTC))
    assert not tasks.overdue(task, datetime(2026, 1, 14, tzinfo=UTC))
    # Due on the 15th means all of the 15th (newcomer finding 3): not overdue at noon.
    assert not tasks.overdue(task, datetime(2026, 1, 15, 12, tzinfo=UTC))
    assert not tasks.overdue(tasks.with_status(task, "cancelled", "2026-01-14"),
                             datetime(2026, 1, 16, tzinfo=UTC))
    assert not tasks.overdue(_task(), datetime(2099, 1, 1, tzinfo=UTC))  # no due date


def test_index_rows_name_the_patient_the_form_and_both_ends_of_the_period() -> None:
    rows = set(task_index(_task(period_start="2026-01-01", period_end="2026-01-15")))
    assert ("patient", "Patient/p1") in rows and ("subject", "Patient/p1") in rows
    assert ("questionnaire", DERS.partition("|")[0]) in rows
    assert ("period:start", "2026-01-01T00:00:00") in rows
    assert ("period:end", "2026-01-15T23:59:59") in rows  # the end day is in the period
    assert ("status:code", "requested") in rows
    open_rows = set(task_index(_task()))
    assert ("period:end", "9999-12-31T23:59:59") in open_rows


@pytest.mark.parametrize(("value", "expected"), [
    ("eb2026-02-01", [Criterion("period:end", "lt", ("2026-02-01T00:00:00",))]),
    ("le2026-02-01", [Criterion("period:start", "le", ("2026-02-01T23:59:59",))]),
    ("ge2026-02-01", [Criterion("period:end", "ge", ("2026-02-01T00:00:00",))]),
    ("2026-02", [Criterion("period:start", "ge", ("2026-02-01T00:00:00",)),
                 Criterion("period:end", "le", ("2026-02-28T23:59:59",))]),
])
def test_period_search_compares_the_ends_fhir_names(value: str, expected: list) -> None:
    assert criteria("Task", [("period", value)]) == expected


def test_period_search_refuses_an_or_list_and_ne() -> None:
    for value in ("2026-01,2026-02", "ne2026-01-01"):
        with pytest.raises(InvalidRequest) as refused:
            criteria("Task", [("period", value)])
        assert "search parameter 'period'" in refused.value.issues[0].diagnostics


def test_self_report_forms_are_marked_in_their_questionnaire_json() -> None:
    import json

    from tests.conftest import ROOT

    folder = ROOT / "mit_fhir" / "questionnaires"
    marked = {p.stem for p in folder.glob("*.json")
              if tasks.is_self_report(json.loads(p.read_text(encoding="utf-8")))}
    # The self-report instruments of the catalogue (issue 14); clinician-rated forms are not.
    assert marked == {"ders", "ders-16", "scl-90-r", "bsl-23", "phq-9", "gad-7",
                      "cssrs-screener"}


def test_a_clinician_rated_form_is_owned_by_whoever_is_named() -> None:
    task = _task(owner={"reference": "Practitioner/dr"})
    assert task["owner"] == {"reference": "Practitioner/dr"} and resource_patient(task) == "p1"
