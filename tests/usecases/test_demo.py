"""The demo patient: loaded through submit(), scored by the service, labelled, idempotent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from mit_fhir.cli import main
from mit_fhir.fhir import task as tasks
from mit_fhir.fhir.answer_weights import answers_for_total, weighted_items
from mit_fhir.fhir.duration import wording
from mit_fhir.fhir.extract import CS_DATA_SOURCE
from mit_fhir.paths import PROFILE_DIR
from mit_fhir.usecases import schedules
from mit_fhir.usecases.demo import demo_responses, load_demo
from mit_fhir.usecases.demo_data import DATA_FILE, TAGS, DemoError, demo_data
from mit_fhir.usecases.schedules import schedules_of
from mit_fhir.usecases.tasks import open_tasks, tasks_of

DEMO = "demo-mit-1"


def search(client: Any, query: str) -> list[dict[str, Any]]:
    bundle = client.get(query).json
    return [e["resource"] for e in bundle["entry"]]


def series(client: Any, code: str) -> list[dict[str, Any]]:
    return search(client, f"/fhir/Observation?patient={DEMO}&code={code}&_sort=date")


def change(obs: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [e for e in obs["extension"] if e["url"].endswith("/reliable-change")]
    return {p["url"]: next(v for k, v in p.items() if k.startswith("value"))
            for p in ext["extension"]}


def tag_code(resource: dict[str, Any]) -> str:
    (tag,) = [t for t in resource["meta"]["tag"] if t["system"] == CS_DATA_SOURCE]
    return str(tag["code"])


def test_the_service_computes_the_case_reports_values_from_item_answers(
        app: Flask, client: Any) -> None:
    load_demo(app.extensions["mit_fhir"])
    ders = series(client, "ders-total")
    gsi = series(client, "scl-90-r-gsi")
    bpd = series(client, "bpd-criteria-count")
    assert (ders[0]["valueQuantity"]["value"], ders[-1]["valueQuantity"]["value"]) == (118, 57)
    assert gsi[0]["valueQuantity"]["value"] == pytest.approx(2.1)
    assert gsi[-1]["valueQuantity"]["value"] == pytest.approx(0.222)
    assert [o["valueQuantity"]["value"] for o in bpd] == [8, 3]
    for end in (ders[-1], gsi[-1]):
        flags = change(end)
        assert flags["category"]["code"] == "recovered" and flags["reliable"] is True
    assert ders[0]["effectiveDateTime"].startswith("2019-03")
    assert ders[-1]["effectiveDateTime"].startswith("2020-09")  # 18 months of treatment
    # The licensed instruments are answered item by item: the service scored the answers.
    responses = search(client, f"/fhir/QuestionnaireResponse?patient={DEMO}")
    scl = [r for r in responses if "scl-90-r" in r["questionnaire"]]
    assert scl and all(len(r["item"]) == 90 for r in scl)


def test_every_value_is_labelled_synthetic_or_from_the_case_report(app: Flask,
                                                                    client: Any) -> None:
    load_demo(app.extensions["mit_fhir"])
    responses = search(client, f"/fhir/QuestionnaireResponse?patient={DEMO}")
    observations = search(client, f"/fhir/Observation?patient={DEMO}")
    assert len(responses) == 20 and observations
    for resource in responses + observations:
        assert tag_code(resource) in ("synthetic", "case-report")
    by_date = {(r["questionnaire"].split("/")[-1].split("|")[0], r["authored"][:10]):
               tag_code(r) for r in responses}
    assert by_date[("ders", "2019-03-04")] == by_date[("ders", "2020-09-07")] == "case-report"
    assert by_date[("ders", "2019-12-02")] == "synthetic"
    assert by_date[("bpd-criteria", "2019-03-04")] == "case-report"
    # The report says only that the threshold is no longer met: the count 3 is chosen.
    assert by_date[("bpd-criteria", "2020-09-07")] == "synthetic"
    assert by_date[("medication-plan", "2019-03-04")] == "case-report"
    assert by_date[("medication-plan", "2020-06-01")] == "synthetic"


def test_loading_twice_adds_nothing(app: Flask, client: Any) -> None:
    context = app.extensions["mit_fhir"]
    first = load_demo(context)
    count = len(search(client, f"/fhir/Observation?patient={DEMO}"))
    second = load_demo(context)
    assert len(first.created) == 20 and first.present == []
    assert second.created == [] and sorted(second.present) == sorted(first.created)
    assert len(search(client, f"/fhir/QuestionnaireResponse?patient={DEMO}")) == 20
    assert len(search(client, f"/fhir/Observation?patient={DEMO}")) == count
    requests = search(client, f"/fhir/MedicationRequest?patient={DEMO}")
    assert sorted(r["medicationCodeableConcept"]["coding"][0]["display"] for r in requests) == [
        "fluoxetine", "topiramate"]


def test_the_medication_plan_reproduces_the_reports_doses(app: Flask, client: Any) -> None:
    load_demo(app.extensions["mit_fhir"])
    requests = {r["medicationCodeableConcept"]["coding"][0]["display"]: r
                for r in search(client, f"/fhir/MedicationRequest?patient={DEMO}")}
    assert requests["topiramate"]["status"] == "stopped"
    assert requests["fluoxetine"]["status"] == "active"
    data = demo_data()
    intake = data["medicationPlans"][0]
    assert {m["drug"]["display"]: m["dailyDoseMg"] for m in intake["medicines"]} == {
        "topiramate": 75, "fluoxetine": 60}


def test_answers_give_exactly_the_total_or_fail(app: Flask) -> None:
    q = app.extensions["mit_fhir"].catalogue.get("ders")
    items = weighted_items(q)
    assert len(items) == 36
    for total in (36, 57, 118, 180):
        answers = answers_for_total(items, total)
        weights = {i.link_id: {c["code"]: w for w, c in i.options} for i in items}
        assert sum(weights[k][c["code"]] for k, c in answers.items()) == total
    for impossible in (35, 181):
        with pytest.raises(ValueError):
            answers_for_total(items, impossible)


def test_demo_data_that_do_not_fit_the_catalogue_stop_before_anything_is_stored(
        app: Flask, client: Any) -> None:
    data = demo_data()
    data["assessments"][-1]["answers"]["bpd-criteria-1"] = "no-such-code"  # the last one
    with pytest.raises(DemoError):
        load_demo(app.extensions["mit_fhir"], data)
    assert search(client, f"/fhir/QuestionnaireResponse?patient={DEMO}") == []
    broken = demo_data()
    broken["assessments"][0]["value"] = 181
    with pytest.raises(DemoError, match="ders-total = 181"):
        demo_responses(app.extensions["mit_fhir"], broken)


def test_the_data_file_is_validated(tmp_path: Path) -> None:
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    raw["assessments"][0]["source"] = "made-up"
    bad = tmp_path / "demo.json"
    bad.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(DemoError, match="source"):
        demo_data(bad)


def test_cli_demo_load_is_idempotent_and_refuses_a_real_ehr(database_url: str,
                                                             monkeypatch: Any) -> None:
    monkeypatch.setenv("MIT_FHIR_DATABASE_URL", database_url)
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "Patient/demo-mit-1: 20 response(s) loaded, 0 already present" in first.output
    second = runner.invoke(main, ["demo", "load"])
    assert "0 response(s) loaded, 20 already present" in second.output
    monkeypatch.setenv("MIT_FHIR_EHR_BASE_URL", "http://127.0.0.1:9/fhir")
    refused = runner.invoke(main, ["demo", "load"])
    assert refused.exit_code == 1 and "--to-ehr" in refused.output


def test_the_tags_are_the_codes_of_the_data_source_code_system() -> None:

    code_system = json.loads((PROFILE_DIR / "CodeSystem-data-source.json").read_text())
    assert code_system["url"] == CS_DATA_SOURCE
    assert {c["code"]: c["display"] for c in code_system["concept"]} == TAGS


def test_medication_requests_carry_the_label_of_the_plan_that_last_changed_them(
        app: Flask, client: Any) -> None:
    context = app.extensions["mit_fhir"]
    data = demo_data()
    intake_only = {**data, "assessments": [], "medicationPlans": data["medicationPlans"][:1],
                   "schedules": []}  # a schedule's Tasks need the assessments' responses
    load_demo(context, intake_only)
    requests = search(client, f"/fhir/MedicationRequest?patient={DEMO}")
    assert [tag_code(r) for r in requests] == ["case-report", "case-report"]
    load_demo(context)  # the synthetic later versions change both medicines
    requests = search(client, f"/fhir/MedicationRequest?patient={DEMO}")
    assert [tag_code(r) for r in requests] == ["synthetic", "synthetic"]


LOADED = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _demo_tasks(app: Flask) -> list[dict[str, Any]]:
    with app.extensions["mit_fhir"].store.transaction() as conn:
        found = tasks_of(conn, DEMO)
    return sorted(found, key=lambda t: (tasks.questionnaire_url(t), tasks.period(t)[0]))


def test_the_treatment_schedules_tasks_are_completed_by_the_responses_of_their_dates(
        app: Flask, client: Any) -> None:
    load_demo(app.extensions["mit_fhir"], now=LOADED)
    responses = {f"QuestionnaireResponse/{r['id']}": r
                 for r in search(client, f"/fhir/QuestionnaireResponse?patient={DEMO}")}
    with app.extensions["mit_fhir"].store.transaction() as conn:
        treatment, = [p for p in schedules_of(conn, DEMO) if p["status"] == "completed"]
    done = [t for t in _demo_tasks(app) if t["basedOn"] == [
        {"reference": f"CarePlan/{treatment['id']}"}]]
    # DERS and SCL-90-R at intake and every 13 weeks to the end (7 each), BPD criteria twice
    forms = [tasks.questionnaire_url(t).rsplit("/", 1)[1] for t in done]
    assert forms == ["bpd-criteria"] * 2 + ["ders"] * 7 + ["scl-90-r"] * 7
    used = set()
    for task in done:
        assert task["status"] == "completed"
        qr = responses[tasks.response_of(task)]
        used.add(tasks.response_of(task))
        assert qr["questionnaire"] == tasks.questionnaire_of(task)
        start = tasks.period(task)[0]
        assert start <= qr["authored"][:10] < str(date.fromisoformat(start) + timedelta(weeks=13))
        assert tag_code(task) == tag_code(qr)  # the Task is labelled as its response
    assert len(used) == 16  # each response completes one Task
    intake = [t for t in done if tasks.period(t)[0] == "2019-03-04"]
    assert [tag_code(t) for t in intake] == ["case-report"] * 3
    bpd = [t for t in done if "bpd-criteria" in tasks.questionnaire_of(t)]
    assert all(t["owner"] == {"reference": "Practitioner/demo-psychiatrist"} for t in bpd)
    assert tasks.period(bpd[-1])[0] == "2020-09-07"  # at the end of therapy


def test_the_follow_up_schedule_leaves_self_report_forms_open_and_overdue(
        app: Flask, client: Any) -> None:
    load_demo(app.extensions["mit_fhir"], now=LOADED)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        follow_up, treatment = schedules_of(conn, DEMO)
        open_now = open_tasks(conn, DEMO, owner=f"Patient/{DEMO}")
    assert follow_up["status"] == "active" and treatment["status"] == "completed"
    assert tag_code(follow_up) == tag_code(treatment) == "synthetic"
    assert sorted(tasks.questionnaire_url(t).rsplit("/", 1)[1] for t in open_now) == [
        "ders", "scl-90-r"]
    for task in open_now:
        assert task["basedOn"] == [{"reference": f"CarePlan/{follow_up['id']}"}]
        assert tag_code(task) == "synthetic"
        assert tasks.overdue(task, LOADED)
        # started 36 days before the load, a 14-day window: due all of 2026-11-10, which
        # the load (2026-12-02T08:00Z) has passed by three whole weeks, as schedules.md says
        assert tasks.period(task) == ("2026-10-27", "2026-11-10")
        assert tasks.due(task) == "2026-11-10T23:59:59"
        late = LOADED - datetime.fromisoformat(tasks.due(task) + "+00:00")
        assert wording(datetime.fromisoformat(tasks.due(task) + "+00:00"), LOADED) == "3 weeks"
        assert timedelta(weeks=3) <= late < timedelta(weeks=4)
    # the worker, later, finds nothing more to do until the next occurrence
    assert schedules.run(app.extensions["mit_fhir"], LOADED + timedelta(days=1)).created == 0


def test_loading_twice_adds_no_schedule_or_task(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    first = load_demo(context, now=LOADED)
    before = [(t["id"], t["meta"]["versionId"]) for t in _demo_tasks(app)]
    second = load_demo(context, now=LOADED + timedelta(days=40))
    assert first.schedules == ["treatment", "follow-up"] and second.schedules == []
    assert second.schedules_present == ["treatment", "follow-up"]
    assert [(t["id"], t["meta"]["versionId"]) for t in _demo_tasks(app)] == before
    with context.store.transaction() as conn:
        assert len(schedules_of(conn, DEMO)) == 2


def test_a_schedule_whose_occurrence_has_no_response_stops_the_load(app: Flask) -> None:
    data = demo_data()
    data["schedules"][0]["activities"][0]["every"] = 4  # DERS every 4 weeks: gaps appear
    with pytest.raises(DemoError, match="no ders response"):
        load_demo(app.extensions["mit_fhir"], data, now=LOADED)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        assert [p["title"] for p in schedules_of(conn, DEMO)] == []
