"""`mit-fhir tasks due`: the count and ids of the open Tasks due or overdue, from the store."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from mit_fhir.app import create_app
from mit_fhir.cli import main
from mit_fhir.cli.exits import Exit
from mit_fhir.fhir import task as shape
from mit_fhir.usecases import tasks

PHQ9 = "https://mit-fhir.org/fhir/Questionnaire/phq-9"
BPD = "https://mit-fhir.org/fhir/Questionnaire/bpd-criteria"


@pytest.fixture
def store_app(database_url: str) -> Any:
    app = create_app({"DATABASE_URL": database_url})
    yield app
    app.extensions["mit_fhir"].store.dispose()


def _invoke(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["tasks", "due", *args],
                              env={"MIT_FHIR_DATABASE_URL": database_url})


def _assign(app: Flask, start: str, end: str, patient: str = "p1", form: str = PHQ9) -> str:
    context = app.extensions["mit_fhir"]
    with context.store.transaction() as conn:
        return str(tasks.assign(conn, context, form, patient, "Practitioner/dr",
                                start, end)["id"])


def test_due_lists_the_open_available_tasks_and_overdue_those_past_their_date(
        store_app: Flask, database_url: str) -> None:
    past = _assign(store_app, "2026-01-01", "2026-01-10")
    current = _assign(store_app, "2026-01-05", "2026-01-20", patient="p2")
    _assign(store_app, "2026-02-01", "2026-02-10")  # not yet available
    done = _assign(store_app, "2026-01-01", "2026-01-08")
    context = store_app.extensions["mit_fhir"]
    with context.store.transaction() as conn:
        tasks.cancel(conn, context, done, "2026-01-02T00:00:00Z", "moved")

    result = _invoke(database_url, "--at", "2026-01-15")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2 patient-performed task(s) due at 2026-01-15T00:00:00Z", past, current]
    overdue = _invoke(database_url, "--overdue", "--at", "2026-01-15T12:00:00+01:00")
    assert overdue.exit_code == 0
    assert overdue.output.splitlines() == [
        "1 patient-performed task(s) overdue at 2026-01-15T11:00:00Z", past]
    for output in (result.output, overdue.output):
        assert "p1" not in output and "p2" not in output  # ids of Tasks, never of patients


def test_due_now_and_nothing_due(store_app: Flask, database_url: str) -> None:
    result = _invoke(database_url)
    assert result.exit_code == 0 and result.output.startswith("0 patient-performed task(s) due at ")
    _assign(store_app, "2026-01-01", "2026-01-10")
    assert _invoke(database_url, "--overdue").output.startswith(
        "1 patient-performed task(s) overdue at ")


def test_due_lists_the_patients_forms_only_unless_all_is_asked_for(
        store_app: Flask, database_url: str) -> None:
    """Newcomer finding 1: a reminder job reads `tasks due`; a clinician-rated form's Task is
    the clinician's to do, so it is listed only with --all."""
    own = _assign(store_app, "2026-01-01", "2026-01-10")
    clinicians = _assign(store_app, "2026-01-01", "2026-01-10", form=BPD)
    # Tasks stored before performerType was written: judged by their owner.
    context = store_app.extensions["mit_fhir"]
    old = {}
    with context.store.transaction() as conn:
        for who, owner in (("patient", None), ("clinician", {"reference": "Practitioner/dr"})):
            made = shape.questionnaire_task(PHQ9, "p3", {"reference": "Practitioner/dr"},
                                            "2026-01-01T00:00:00Z", "2026-01-01", "2026-01-10",
                                            owner=owner)
            del made["performerType"]
            old[who] = tasks.store_new(conn, context, made)["id"]
    default = _invoke(database_url, "--at", "2026-01-15")
    assert default.exit_code == 0, default.output
    lines = default.output.splitlines()
    assert lines[0] == "2 patient-performed task(s) due at 2026-01-15T00:00:00Z"
    assert sorted(lines[1:]) == sorted([own, old["patient"]])
    every = _invoke(database_url, "--all", "--overdue", "--at", "2026-01-15")
    assert every.output.splitlines()[0] == "4 task(s) overdue at 2026-01-15T00:00:00Z"
    assert sorted(every.output.splitlines()[1:]) == sorted(
        [own, clinicians, old["patient"], old["clinician"]])


@pytest.mark.parametrize("name, value", [("TASK_WINDOW_DAYS", "0"),
                                         ("TASK_WINDOW_DAYS", "two weeks")])
def test_a_bad_setting_it_uses_is_a_configuration_error(
        database_url: str, name: str, value: str) -> None:
    """Newcomer finding 5: exit 78 naming the setting, as `tasks schedule` does."""
    result = CliRunner().invoke(main, ["tasks", "due"], env={
        "MIT_FHIR_DATABASE_URL": database_url, f"MIT_FHIR_{name}": value})
    assert result.exit_code == Exit.CONFIG, result.output
    assert f"MIT_FHIR_{name}" in result.output


def test_a_bad_date_is_a_usage_error(database_url: str) -> None:
    result = _invoke(database_url, "--at", "next tuesday")
    assert result.exit_code == Exit.USAGE and "--at" in result.output


def test_help_documents_the_command() -> None:
    result = CliRunner().invoke(main, ["tasks", "due", "--help"])
    assert result.exit_code == 0
    assert "--overdue" in result.output and "--at" in result.output and "--all" in result.output
    assert "Exit status" in result.output
    assert all(f"  {code}  " in result.output for code in (0, 1, 2, 69, 78))
