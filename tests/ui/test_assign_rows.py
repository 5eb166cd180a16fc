"""What the assignments page posts, read and refused; its Tasks and schedules as it words them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from mit_fhir.fhir import schedule
from mit_fhir.fhir import task as sdc
from mit_fhir.ui import assignments, i18n
from tests.ui.helpers import catalogue

CAT = catalogue()
PHQ9 = CAT.get("phq-9")
TODAY = date(2026, 12, 2)
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
SCHEDULE = {"forms": ["ders"], "every": 3, "unit": "mo", "start": "2026-12-02"}


def test_a_one_off_assignment_is_read() -> None:
    once = assignments.read_once({"forms": ["phq-9", "ders", "phq-9"], "due": "2026-12-16"},
                                 CAT, TODAY)
    assert once.forms == ["phq-9", "ders"] and once.due == date(2026, 12, 16)


@pytest.mark.parametrize(("body", "problems"), [
    ({"due": "2026-12-16"}, [("choose_form", "forms")]),
    ({"forms": [], "due": "2026-12-16"}, [("choose_form", "forms")]),
    ({"forms": ["no-such-form"], "due": "2026-12-16"}, [("no_such_form", "forms")]),
    ({"forms": ["phq-9"], "due": "16/12/2026"}, [("due_invalid", "due")]),
    ({"forms": ["phq-9"], "due": "2026-02-30"}, [("due_invalid", "due")]),
    ({"forms": ["phq-9"], "due": "2026-12-01"}, [("due_past", "due")]),
    ("not an object", [("choose_form", "forms"), ("due_invalid", "due")]),
])
def test_a_one_off_assignment_is_refused_with_what_is_wrong(body: Any,
                                                           problems: list[tuple[str, str]]) -> None:
    with pytest.raises(assignments.Refused) as caught:
        assignments.read_once(body, CAT, TODAY)
    assert caught.value.problems == problems


def test_a_schedule_is_read_with_an_end_a_count_or_neither() -> None:
    plain = assignments.read_repeating(SCHEDULE, CAT)
    assert (plain.every, plain.unit, plain.start, plain.end, plain.count) == (
        3, "mo", date(2026, 12, 2), None, None)
    assert assignments.read_repeating({**SCHEDULE, "end": "2027-12-02"}, CAT).end == \
        date(2027, 12, 2)
    assert assignments.read_repeating({**SCHEDULE, "count": "4"}, CAT).count == 4


@pytest.mark.parametrize(("change", "problems"), [
    ({"every": 0}, [("every_invalid", "every")]),
    ({"every": "three"}, [("every_invalid", "every")]),
    ({"every": True}, [("every_invalid", "every")]),
    ({"every": 100}, [("every_invalid", "every")]),
    ({"every": 2.5}, [("every_invalid", "every")]),
    ({"unit": "yr"}, [("unit_invalid", "unit")]),
    ({"unit": "d"}, [("unit_invalid", "unit")]),  # the page offers weeks and months
    ({"start": ""}, [("start_invalid", "start")]),
    ({"end": "2026-12-02"}, [("end_before_start", "end")]),
    ({"end": "2026-11-01"}, [("end_before_start", "end")]),
    ({"end": "-"}, [("end_invalid", "end")]),
    ({"count": 0}, [("count_invalid", "count")]),
    ({"count": "-"}, [("count_invalid", "count")]),
    ({"end": "2027-06-01", "count": 3}, [("end_or_count", "count")]),
    ({"forms": ["ders"], "every": -1, "unit": "yr"},
     [("every_invalid", "every"), ("unit_invalid", "unit")]),
])
def test_a_bad_cadence_is_refused_with_what_is_wrong(change: dict[str, Any],
                                                    problems: list[tuple[str, str]]) -> None:
    with pytest.raises(assignments.Refused) as caught:
        assignments.read_repeating({**SCHEDULE, **change}, CAT)
    assert caught.value.problems == problems


def test_every_refusal_is_worded_in_english_and_italian() -> None:
    keys = ["choose_form", "no_such_form", "due_invalid", "due_past", "every_invalid",
            "unit_invalid", "start_invalid", "end_invalid", "end_before_start",
            "count_invalid", "end_or_count"]
    for key in keys:
        english, italian = i18n.words("en")[key], i18n.words("it")[key]
        assert english and italian and english != italian, key


@pytest.mark.parametrize(("every", "unit", "lang", "said"), [
    (3, "mo", "en", "every 3 months"), (1, "mo", "en", "every month"),
    (2, "wk", "en", "every 2 weeks"), (1, "wk", "en", "every week"),
    (3, "mo", "it", "ogni 3 mesi"), (1, "wk", "it", "ogni settimana"),
])
def test_the_cadence_in_words(every: int, unit: str, lang: str, said: str) -> None:
    assert assignments.cadence(every, unit, lang) == said


def _task(due: str | None, status: str = "requested", owner: str | None = None,
          changed: str = "2026-11-01T00:00:00Z") -> dict[str, Any]:
    task = sdc.questionnaire_task(f"{PHQ9['url']}|{PHQ9['version']}", "p1",
                                  {"reference": "Practitioner/dr"}, "2026-11-01T00:00:00Z",
                                  "2026-11-01T00:00:00Z", due, tid=f"t-{due}-{status}",
                                  owner={"reference": owner} if owner else None)
    if status != "requested":
        task = sdc.with_status(task, status, changed)
    return task


def test_open_tasks_come_first_soonest_due_then_the_closed_newest_first() -> None:
    rows = assignments.task_rows([
        _task("2026-12-20T23:59:59Z"),
        _task("2026-10-20T23:59:59Z", "completed", changed="2026-10-10T08:00:00Z"),
        _task("2026-11-20T23:59:59Z"),
        _task("2026-11-25T23:59:59Z", "cancelled", changed="2026-11-21T08:00:00Z"),
        _task("2026-12-10T23:59:59Z", owner="Practitioner/dr"),
    ], CAT, "en", NOW)
    assert [(r["due"], r["status"]) for r in rows] == [
        ("2026-11-20", "requested"), ("2026-12-10", "requested"), ("2026-12-20", "requested"),
        ("2026-11-25", "cancelled"), ("2026-10-20", "completed")]
    assert [r["overdue"] for r in rows] == [True, False, False, False, False]
    assert [r["owner"] for r in rows] == ["patient", "clinician", "patient", "patient",
                                          "patient"]
    assert rows[4]["done"] == "2026-10-10" and rows[3]["done"] is None
    assert rows[3]["closed"] == "2026-11-21" and rows[0]["closed"] is None
    assert rows[0]["form"] == PHQ9["title"] and rows[0]["statusText"] == "To do"
    [italian] = assignments.task_rows([_task(None)], CAT, "it", NOW)
    # PHQ-9 has no Italian version here: its title is English, and marked so.
    assert (italian["statusText"], italian["form"], italian["formLang"]) == (
        "Da fare", PHQ9["title"], "en")


def test_a_translated_form_is_titled_in_the_page_language() -> None:
    contract = CAT.get("mit-contract")
    assert assignments.title(CAT, contract["url"], "it") == "Contratto terapeutico MIT"
    assert assignments.title_lang(CAT, contract["url"], "it") == "it"
    assert assignments.title(CAT, contract["url"], "en") == contract["title"]


def test_a_schedule_row_says_forms_cadence_bounds_next_and_status() -> None:
    ders, scl = CAT.get("ders"), CAT.get("scl-90-r")
    plan = schedule.schedule_plan("p1", {"reference": "Practitioner/dr"}, [
        schedule.Activity(f"{ders['url']}|1.0.0", 3, "mo", date(2026, 9, 1)),
        schedule.Activity(scl["url"], 3, "mo", date(2026, 9, 1), end=date(2027, 9, 1)),
    ], "2026-09-01T00:00:00Z")
    plan["id"] = "cp1"
    [row] = assignments.schedule_rows([plan], CAT, "en", NOW)
    assert row["forms"] == f"{ders['title']}, {scl['title']}"
    assert (row["cadence"], row["start"], row["until"], row["next"], row["status"],
            row["statusText"], row["active"]) == (
        "every 3 months", "2026-09-01", "until 2027-09-01", "2027-03-01", "active",
        "Running", True)
    before = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert assignments.schedule_rows([plan], CAT, "en", before)[0]["next"] == "2026-12-01"
    stopped = {**plan, "status": "revoked"}
    [row] = assignments.schedule_rows([stopped], CAT, "it", NOW)
    assert (row["statusText"], row["next"], row["active"], row["until"],
            row["cadence"]) == ("Interrotta", None, False, "fino al 2027-09-01", "ogni 3 mesi")


@pytest.mark.parametrize(("every", "unit", "count", "lang", "said"), [
    (79, "wk", 2, "en", "twice, 79 weeks apart"), (3, "mo", 4, "en", "4 times, 3 months apart"),
    (1, "wk", 3, "en", "3 times, 1 week apart"), (2, "wk", 1, "en", "once"),
    (79, "wk", 2, "it", "due volte, a 79 settimane di distanza"),
])
def test_a_count_limited_cadence_says_how_many_times_and_how_far_apart(
        every: int, unit: str, count: int, lang: str, said: str) -> None:
    assert assignments.cadence(every, unit, lang, count) == said


def test_a_schedule_row_titles_each_form_in_the_language_it_is_shown_in() -> None:
    contract, ders = CAT.get("mit-contract"), CAT.get("ders")
    plan = schedule.schedule_plan("p1", {"reference": "Practitioner/dr"}, [
        schedule.Activity(contract["url"], 1, "mo", date(2026, 9, 1)),
        schedule.Activity(ders["url"], 3, "mo", date(2026, 9, 1)),
    ], "2026-09-01T00:00:00Z")
    plan["id"] = "cp2"
    [row] = assignments.schedule_rows([plan], CAT, "it", NOW)
    # The MIT form has its own Italian title; DERS has none and is marked English.
    assert row["titles"] == [
        {"title": "Contratto terapeutico MIT", "lang": "it", "stopped": False},
        {"title": ders["title"], "lang": "en", "stopped": False}]
    assert row["cadence"] == f"Contratto terapeutico MIT: ogni mese; {ders['title']}: ogni 3 mesi"
