"""The form as handed to LHC-Forms (grids, radio buttons) and the refusals as the patient reads
them: pure functions, no browser."""

from __future__ import annotations

from typing import Any

import pytest

from mit_fhir.errors import Conflict, Issue, Unprocessable
from mit_fhir.fhir.items import walk_items
from mit_fhir.ui import i18n, messages, presentation
from tests.ui.helpers import catalogue


def flat(items: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item["linkId"].startswith(presentation.GRID_PREFIX):
            out.extend(flat(item["item"]))
        else:
            out.append(item["linkId"])
    return out


@pytest.mark.parametrize("questionnaire", list(catalogue()), ids=lambda q: q["id"])
def test_grids_only_regroup_the_items_and_keep_one_keying_per_grid(
        questionnaire: dict[str, Any]) -> None:
    served = presentation.for_renderer(questionnaire)
    assert flat(served["item"]) == [i["linkId"] for i in questionnaire["item"]]
    for grid in walk_items(served["item"]):
        if not grid["linkId"].startswith(presentation.GRID_PREFIX):
            continue
        rows = grid["item"]
        # LHC-Forms gives every row the first row's answers: they must be the same, weights too.
        assert all(r["answerOption"] == rows[0]["answerOption"] for r in rows)
        assert not any(r.get("enableWhen") or r.get("readOnly") for r in rows)
    plain = presentation.for_renderer(questionnaire, grid=False)
    assert not any(i["linkId"].startswith(presentation.GRID_PREFIX)
                   for i in walk_items(plain["item"]))


def test_every_ders_item_is_in_a_grid_and_phq9_difficulty_is_not() -> None:
    by_id = {q["id"]: q for q in catalogue()}
    ders = presentation.grids(by_id["ders"])
    assert all(i["linkId"].startswith(presentation.GRID_PREFIX)
               for i in ders["item"] if i.get("type") != "integer")
    phq = [i["linkId"] for i in presentation.grids(by_id["phq-9"])["item"]]
    assert phq[1] == "mit-grid-1" and "phq-9-difficulty" in phq
    cssrs = presentation.grids(by_id["cssrs-screener"])
    gridded = {r["linkId"] for g in cssrs["item"] if g["linkId"].startswith("mit-grid-")
               for r in g["item"]}
    assert not any(i.get("enableWhen") for i in by_id["cssrs-screener"]["item"]
                   if i["linkId"] in gridded)


def test_a_refusal_names_the_question_by_the_text_the_form_shows() -> None:
    phq = next(q for q in catalogue() if q["id"] == "phq-9")
    fourth = next(i for i in phq["item"] if i["linkId"] == "phq-9-4")["text"]
    refused = Unprocessable("invalid", [
        Issue("required item 'phq-9-4' is not answered", code="required"),
        Issue("item 'phq-9-2': the answer is not one of its answerOptions"),
        Issue("authored is required")])
    # PHQ-9 shows no numbers: "question 4" would send the patient counting.
    assert messages.plain(refused, phq, "en") == [
        f"Please answer the question \u201c{fourth}\u201d.",
        "The question \u201c" + phq["item"][2]["text"] + "\u201d: the answer was not accepted.",
        "The form was not accepted: authored is required."]
    assert messages.items_named(refused, phq) == ["phq-9-4", "phq-9-2"]
    assert messages.plain(Conflict("x"), phq, "it") == [messages.WORDS["it"]["conflict"]]


def test_every_language_has_every_word_of_the_pages() -> None:
    for lang in i18n.LANGUAGES:
        assert set(i18n.words(lang)) == set(i18n.WORDS["en"]), lang
        assert set(messages.WORDS[lang]) == set(messages.WORDS["en"]), lang


def test_a_numbered_item_is_named_by_its_number_and_a_group_by_its_text() -> None:
    form = {"item": [{"linkId": "a", "type": "choice", "prefix": "3.", "text": "Sleep"},
                     {"linkId": "b", "type": "group", "text": "Crisis contact", "item": [
                         {"linkId": "c", "type": "display", "text": "Who to call"}]}]}
    refused = Unprocessable("invalid", [
        Issue("required item 'a' is not answered", code="required"),
        Issue("required item 'b' is not answered", code="required")])
    assert messages.plain(refused, form, "en") == [
        "Please answer question 3: \u201cSleep\u201d.",
        "Please answer the question \u201cCrisis contact\u201d."]
    assert messages.plain(refused, form, "it") == [
        "Rispondere alla domanda 3: \u00abSleep\u00bb.",
        "Rispondere alla domanda \u00abCrisis contact\u00bb."]
