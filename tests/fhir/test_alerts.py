"""Risk alerts: raised by the answers the Questionnaire marks critical, nothing else (issue 13)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mit_fhir.fhir import alerts
from mit_fhir.fhir.extract import extract
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.vocabulary import EXT_TRANSLATION
from tests.conftest import ROOT, load_json, sample

Resource = dict[str, Any]
PHQ9 = load_json(ROOT / "mit_fhir" / "questionnaires" / "phq-9.json")
CSSRS = load_json(ROOT / "mit_fhir" / "questionnaires" / "cssrs-screener.json")
GAD7 = load_json(ROOT / "mit_fhir" / "questionnaires" / "gad-7.json")


def item(questionnaire: Resource, link_id: str) -> Resource:
    return next(i for i in questionnaire["item"] if i["linkId"] == link_id)


def answered(qr: Resource, link_id: str, coding: Resource) -> Resource:
    qr = copy.deepcopy(qr)
    value = {k: coding[k] for k in ("system", "code")}
    qr["item"] = [it for it in qr["item"] if it["linkId"] != link_id] + [
        {"linkId": link_id, "answer": [{"valueCoding": value}]}]
    return qr


def found(questionnaire: Resource, qr: Resource) -> list[alerts.Alert]:
    scores = {s.item.link_id: s.value for s in ScoringPlan(questionnaire).evaluate(qr)}
    return alerts.alerts(questionnaire, qr, scores)


def marks(questionnaire: Resource, link_id: str) -> list[Resource]:
    return [e for e in item(questionnaire, link_id).get("extension", [])
            if e["url"] == alerts.EXT_CRITICAL_ANSWER]


def part(mark: Resource, name: str) -> list[Any]:
    return [next(v for k, v in p.items() if k.startswith("value"))
            for p in mark["extension"] if p["url"] == name]


PHQ9_ITEM9 = [o["valueCoding"] for o in item(PHQ9, "phq-9-9")["answerOption"]]


@pytest.mark.parametrize("option", PHQ9_ITEM9, ids=[o["display"] for o in PHQ9_ITEM9])
def test_phq9_item_9_above_0_is_a_warning_whatever_the_total(option: Resource) -> None:
    (mark,) = marks(PHQ9, "phq-9-9")
    assert "Simon" in part(mark, "citation")[0] and "64(12):1195" in part(mark, "citation")[0]
    qr = answered(sample("phq-9", "missing"), "phq-9-9", option)  # no total: items missing
    got = found(PHQ9, qr)
    weight = option["extension"][0]["valueDecimal"]
    if weight == 0:
        assert got == []
        return
    (alert,) = got
    assert alert.as_json() == {
        "level": "warning", "item": item(PHQ9, "phq-9-9")["text"],
        "answer": option["display"], "message": part(mark, "message")[0]}


@pytest.mark.parametrize(("name", "level"), [("high-intent", "critical"),
                                              ("high-recent-behaviour", "critical"),
                                              ("moderate-past-behaviour", "warning"),
                                              ("intent-q5-omitted", "critical"),
                                              ("behaviour-recency-omitted", "warning"),
                                              ("missing", "warning"),
                                              ("undetermined", None),
                                              ("low", None), ("none", None)])
def test_the_cssrs_triage_raises_its_level(name: str, level: str | None) -> None:
    got = found(CSSRS, sample("cssrs-screener", name))
    assert [a.level for a in got] == ([level] if level else [])


def test_a_triage_the_response_claims_is_not_believed() -> None:
    """The triage is the service's own score: an EHR's response cannot raise or hide it."""
    low = sample("cssrs-screener", "low")
    high = next(o["valueCoding"] for o in item(CSSRS, "cssrs-screener-triage")["answerOption"]
                if o["valueCoding"]["code"] in part(marks(CSSRS, "cssrs-screener-triage")[1],
                                                    "answer")[0].values())
    claims = copy.deepcopy(low)
    claims["item"].append({"linkId": "cssrs-screener-triage", "answer": [{"valueCoding": high}]})
    assert found(CSSRS, claims) == []
    assert alerts.alerts(CSSRS, sample("cssrs-screener", "high-intent"), {}) == []


def test_which_answers_are_critical_is_the_questionnaires_word() -> None:
    """No list in code: unmarked, PHQ-9 item 9 raises nothing; a mark on GAD-7 item 1 raises."""
    unmarked = copy.deepcopy(PHQ9)
    item(unmarked, "phq-9-9")["extension"] = []
    assert found(unmarked, sample("phq-9")) == []
    gad = copy.deepcopy(GAD7)
    qr = sample("gad-7")
    given = next(i for i in qr["item"] if i["linkId"] == "gad-7-1")["answer"][0]["valueCoding"]
    item(gad, "gad-7-1").setdefault("extension", []).append({
        "url": alerts.EXT_CRITICAL_ANSWER, "extension": [
            {"url": "level", "valueCode": "critical"},
            {"url": "answer", "valueCoding": {"system": given["system"], "code": given["code"]}},
            {"url": "message", "valueString": "Test message."}]})
    (alert,) = found(gad, qr)
    assert (alert.level, alert.link_id, alert.message) == ("critical", "gad-7-1", "Test message.")


def test_item_and_answer_are_in_the_responses_language() -> None:
    q = copy.deepcopy(PHQ9)
    it = item(q, "phq-9-9")
    it["_text"] = {"extension": [{"url": EXT_TRANSLATION, "extension": [
        {"url": "lang", "valueCode": "it"}, {"url": "content", "valueString": "Pensieri (it)"}]}]}
    qr = {**sample("phq-9"), "language": "it"}
    (alert,) = found(q, qr)
    assert alert.item == "Pensieri (it)"
    (english,) = found(q, sample("phq-9"))
    assert english.item == it["text"]


def test_the_panel_records_the_alerts_and_they_read_back() -> None:
    qr = sample("cssrs-screener", "high-intent")
    extraction = extract(qr, CSSRS, ScoringPlan(CSSRS), {"reference": "QuestionnaireResponse/x"})
    assert extraction is not None
    panel = extraction.panel
    (concept,) = panel["interpretation"]
    assert concept["coding"][0]["code"] == "AA"  # v3 ObservationInterpretation: critical
    assert alerts.recorded(panel) == found(CSSRS, qr)
    warning = extract(sample("phq-9"), PHQ9, ScoringPlan(PHQ9), None)
    assert warning is not None and warning.panel["interpretation"][0]["coding"][0]["code"] == "A"
    calm = extract(sample("cssrs-screener", "low"), CSSRS, ScoringPlan(CSSRS), None)
    assert calm is not None and "interpretation" not in calm.panel
    assert alerts.recorded(calm.panel) == []


def test_every_mark_names_answers_the_item_offers() -> None:
    for path in sorted((ROOT / "mit_fhir" / "questionnaires").glob("*.json")):
        q = load_json(path)
        for it in q["item"]:
            offered = {(o["valueCoding"]["system"], o["valueCoding"]["code"])
                       for o in it.get("answerOption", []) if "valueCoding" in o}
            for mark in marks(q, it["linkId"]):
                assert part(mark, "level")[0] in alerts.LEVELS
                for coding in part(mark, "answer"):
                    assert (coding["system"], coding["code"]) in offered, (q["id"], coding)


def test_a_recorded_alert_of_an_unknown_level_is_not_read_back() -> None:
    """An EHR's hand-edited copy with level "banana" would crash the CDS card's ordering."""
    qr = sample("cssrs-screener", "high-intent")
    extraction = extract(qr, CSSRS, ScoringPlan(CSSRS), None)
    assert extraction is not None
    panel = copy.deepcopy(extraction.panel)
    (ext,) = [e for e in panel["extension"] if e["url"] == alerts.EXT_ANSWER_ALERT]
    assert alerts.recorded(panel) != []
    next(p for p in ext["extension"] if p["url"] == "level")["valueCode"] = "banana"
    assert alerts.recorded(panel) == []
