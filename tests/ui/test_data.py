"""The pages' server-side data: Italian forms, radio-button hints, the outcomes document."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from mit_fhir.fhir.items import walk_items
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.ui import clinical, data, i18n, presentation
from mit_fhir.usecases.submissions import submit
from tests.conftest import ROOT, load_json, sample
from tests.ui.helpers import medication_request, submit_ders

CONTRACT = load_json(QUESTIONNAIRE_DIR / "mit-contract.json")
DERS = load_json(QUESTIONNAIRE_DIR / "ders.json")


def texts(node: object) -> list[str]:
    """Every `text`/`title`/`display` string of a resource, depth first."""
    out: list[str] = []
    if isinstance(node, dict):
        out += [v for k, v in node.items() if k in ("text", "title", "display")
                and isinstance(v, str)]
        for v in node.values():
            out += texts(v)
    elif isinstance(node, list):
        for v in node:
            out += texts(v)
    return out


def test_italian_replaces_every_translated_string_and_nothing_else() -> None:
    italian = i18n.translated(CONTRACT, "it")
    assert italian["language"] == "it" and CONTRACT["language"] == "en"  # a copy
    assert italian["title"] == "Contratto terapeutico MIT"
    translations = [i18n.translation(v, "it") for v in _primitive_elements(CONTRACT)]
    assert len([t for t in translations if t]) > 20
    for translated in (t for t in translations if t):
        assert translated in texts(italian)
    # Same structure: linkIds and codes are untouched.
    assert json.dumps(_link_ids(italian)) == json.dumps(_link_ids(CONTRACT))


def _primitive_elements(node: object) -> list[object]:
    out: list[object] = []
    if isinstance(node, dict):
        out += [v for k, v in node.items() if k.startswith("_")]
        for v in node.values():
            out += _primitive_elements(v)
    elif isinstance(node, list):
        for v in node:
            out += _primitive_elements(v)
    return out


def _link_ids(q: dict) -> list[str]:  # type: ignore[type-arg]
    return [i["linkId"] for i in q.get("item", [])] + [
        lid for i in q.get("item", []) for lid in _link_ids(i)]


def test_languages_are_those_the_form_translates() -> None:
    assert i18n.languages(CONTRACT) == ["en", "it"]
    assert i18n.languages(DERS) == ["en"]
    assert i18n.translated(DERS, "en") is DERS


def test_short_choice_lists_become_radio_buttons() -> None:
    hinted = presentation.radio_buttons(DERS)
    choice = [i for i in hinted["item"] if i["type"] == "choice"]
    assert len(choice) == 36
    assert all(any(e["url"] == presentation.ITEM_CONTROL for e in i["extension"])
               for i in choice)
    assert not any(e["url"] == presentation.ITEM_CONTROL
                   for i in DERS["item"] for e in i.get("extension", []))  # not mutated
    scores = [i for i in hinted["item"] if i["type"] == "integer"]
    assert scores and not any(e["url"] == presentation.ITEM_CONTROL
                              for i in scores for e in i.get("extension", []))


def test_the_page_document_comes_from_the_timeline(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    submit_ders(context, "p1", "2019-03-01T10:00:00Z", each=4)   # 144
    submit_ders(context, "p1", "2019-09-01T10:00:00Z", each=3, synthetic=True)  # 108
    submit_ders(context, "p1", "2020-09-01T10:00:00Z", each=2)   # 72
    submit_ders(context, "p2", "2020-09-01T10:00:00Z", each=1)   # another patient
    ehr = [medication_request("p1", "38404", "topiramate", "50 mg", "2019-03-15",
                              "2020-06-30", "stopped")]
    doc = data.outcomes_document(context, "p1", ehr)
    assert [i["code"] for i in doc["instruments"]] == ["ders-total"]
    ders = doc["instruments"][0]
    assert [(p["value"], p["category"], p["synthetic"]) for p in ders["points"]] == [
        (144, "baseline", False), (108, "improved", True), (72, "recovered", False)]
    assert ders["points"][2]["reliable"] is True and ders["points"][2]["index"] < -1.96
    assert ders["range"] == [36, 180]
    assert ders["direction"] == "lower-is-better"
    # Cutoff c is 105.18 on an integer scale: the first clinical score is 106, said plainly;
    # the statistic itself goes to the table.
    assert ders["clinical"]["text"] == "clinical range: 106 and above"
    assert ders["statistics"][0]["name"].startswith("cutoff c") and \
        ders["statistics"][0]["value"] == "105.18"
    # Reliable change: alpha .93 and SD 20.72 give S_diff 7.75 and 15.2 points (as
    # shared/reference/psychometrics.md works out).
    assert ders["statistics"][1]["name"] == "reliable change: |RCI| > 1.96 (jacobson-truax)"
    assert ders["statistics"][1]["value"] == \
        "SEdiff 7.75 (reliability 0.93, SD 20.72); a change of more than 15.20"
    assert ders["heading"] == "Difficulties in Emotion Regulation Scale (DERS)"
    assert [p["text"] for p in ders["points"]] == ["144", "108", "72"]
    assert [(m["display"], m["source"]) for m in doc["medications"]] == [("topiramate", "ehr")]
    assert doc["medications"][0]["periods"][0]["dose"] == "50 mg"


def test_the_case_reports_gsi_and_bpd_criteria_are_charted(app: Flask) -> None:
    context = app.extensions["mit_fhir"]
    for form in ("scl-90-r", "bpd-criteria"):
        for name, authored in (("case-intake", "2019-03-01T10:00:00Z"),
                               ("case-end", "2020-09-01T10:00:00Z")):
            qr = {**sample(form, name), "authored": authored,
                  "subject": {"reference": "Patient/case"}}
            submit(context, qr)
    doc = data.outcomes_document(context, "case")
    by_code = {i["code"]: i for i in doc["instruments"]}
    assert set(by_code) == {"scl-90-r-gsi", "bpd-criteria-count"}
    gsi = by_code["scl-90-r-gsi"]
    assert [(round(p["value"], 3), p["category"]) for p in gsi["points"]] == [
        (2.1, "baseline"), (0.222, "recovered")]
    # GSI at two decimals: the cutoff reads 0.57 (not 0.6), the last point 0.22.
    assert gsi["clinical"]["text"] == "clinical range: 0.57 and above"
    assert [p["text"] for p in gsi["points"]] == ["2.10", "0.22"]
    assert gsi["heading"] == "Symptom Checklist-90-Revised (SCL-90-R): GSI"
    assert [r["value"] for r in gsi["statistics"]] == ["0.57", "a change of 0.43 or more"]
    bpd = by_code["bpd-criteria-count"]
    assert [p["value"] for p in bpd["points"]] == [8, 3]
    # No cited numeric cutoff for the criteria count: its DSM-5 threshold is drawn as the
    # boundary between the two bands, read from the band options' own wording.
    assert bpd["clinical"] is None
    assert [(b["from"], b["to"]) for b in bpd["bands"]] == [(0, 5), (5, 9)]
    assert [p["band"] is not None for p in bpd["points"]] == [True, True]
    # The last point carries the band change the service stored against the baseline.
    assert bpd["points"][0]["bandChange"] is None
    assert bpd["points"][1]["bandChange"] == "threshold met → threshold not met"


@pytest.mark.parametrize(("form", "edges"), [
    ("phq-9", [0, 5, 10, 15, 20]), ("gad-7", [0, 5, 10, 15]), ("bpd-criteria", [0, 5]),
    ("bsl-23", [0, 0.28, 1.07, 1.87, 2.67, 3.47])])
def test_band_boundaries_come_from_the_questionnaires_band_options(form: str,
                                                                    edges: list[float]) -> None:
    q = load_json(ROOT / "mit_fhir" / "questionnaires" / f"{form}.json")
    band = next(i for i in walk_items(q["item"]) if i.get("readOnly") and i.get("answerOption"))
    options = [o["valueCoding"] for o in band["answerOption"]]
    high = {"phq-9": 27, "gad-7": 21, "bpd-criteria": 9, "bsl-23": 4}[form]
    found = clinical.bands(options, 0, high)
    assert [b["from"] for b in found] == edges
    assert found[-1]["to"] == high and all("(" not in b["label"] for b in found)


def test_band_wording_without_numbers_draws_no_bands() -> None:
    options = [{"code": "low", "display": "Low risk (yes to question 1 or 2 only)"},
               {"code": "high", "display": "High risk"}]
    assert clinical.bands(options, 0, 1) == []


def test_a_band_only_instrument_is_charted_on_its_own_levels(app: Flask) -> None:
    """The C-SSRS screener has no numeric score: its triage is charted on the form's levels."""
    context = app.extensions["mit_fhir"]
    for name, authored in (("low", "2024-01-10T10:00:00Z"),
                           ("high-recent-behaviour", "2024-02-10T10:00:00Z")):
        submit(context, {**sample("cssrs-screener", name), "authored": authored,
                         "subject": {"reference": "Patient/triage"}})
    (ins,) = data.outcomes_document(context, "triage")["instruments"]
    assert ins["levels"] == ["No risk indicated", "Low risk", "Moderate risk", "High risk"]
    assert [(p["value"], p["text"]) for p in ins["points"]] == [(1, "Low risk"),
                                                                (3, "High risk")]
    assert ins["points"][1]["bandChange"] == "low risk → high risk"


def test_the_risk_screens_are_the_forms_that_mark_an_answer_critical(app: Flask) -> None:
    """The summary's "no risk screen on record" names the forms whose Questionnaire can raise
    an alert, read from their critical-answer extensions, not from a list in the code."""
    context = app.extensions["mit_fhir"]
    submit_ders(context, "no-screen", "2019-03-01T10:00:00Z", each=4)
    doc = data.outcomes_document(context, "no-screen")
    marked = {q["id"] for q in context.catalogue if any(
        ext.get("url", "").endswith("/critical-answer")
        for item in walk_items(q.get("item", [])) for ext in item.get("extension", []))}
    assert {s["id"] for s in doc["riskScreens"]} == marked
    assert {"phq-9", "cssrs-screener"} <= marked and "ders" not in marked
    assert {s["name"] for s in doc["riskScreens"]} >= {"PHQ-9", "C-SSRS screener"}
    (ders,) = doc["instruments"]
    assert (ders["short"], ders["questionnaireId"]) == ("DERS", "ders")
    assert clinical.short_label("SCL-90-R GSI", "Symptom Checklist-90-Revised (SCL-90-R)") \
        == "SCL-90-R GSI"


def test_the_due_part_lists_the_forms_with_something_due(app: Flask) -> None:
    """An open Task's form is listed with its due day and last completion; a form whose only
    Task was cancelled is not; a caller that may not see Tasks gets no due part."""
    from mit_fhir.usecases import tasks

    context = app.extensions["mit_fhir"]
    submit_ders(context, "due", "2019-03-01T10:00:00Z", each=4, synthetic=True)
    with context.store.transaction() as conn:
        tasks.assign(conn, context, "https://mit-fhir.org/fhir/Questionnaire/ders", "due",
                     "Practitioner/dr", "2020-01-01", "2020-01-15")
        dropped = tasks.assign(conn, context, "https://mit-fhir.org/fhir/Questionnaire/phq-9",
                               "due", "Practitioner/dr", "2020-01-01", "2020-01-15")
        tasks.cancel(conn, context, dropped["id"], "2020-01-02T10:00:00Z", "not needed")
    (row,) = data.outcomes_document(context, "due")["due"]
    assert row["questionnaireId"] == "ders" and row["name"] == "DERS"
    assert row["due"] == "2020-01-15" and row["owner"] == "patient"
    assert row["overdue"][0]["due"] == "2020-01-15" and row["overdue"][0]["by"].endswith("months")
    assert row["last"] == {"date": "2019-03-01", "synthetic": True}
    assert data.outcomes_document(context, "due", with_due=False)["due"] == []
