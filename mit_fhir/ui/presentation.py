"""Rendering hints added to the Questionnaire the pages hand to LHC-Forms (content unchanged)."""

from __future__ import annotations

import copy
from typing import Any

from mit_fhir.catalogue import walk_items

ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
RADIO_MAX_OPTIONS = 7  # longer answer lists stay drop-downs


def radio_buttons(questionnaire: dict[str, Any]) -> dict[str, Any]:
    """Short single-choice lists as radio buttons: one click per answer, all options visible,
    keyboard-operable with the arrow keys."""
    out = copy.deepcopy(questionnaire)
    for item in walk_items(out.get("item", [])):
        options = item.get("answerOption") or []
        has_control = any(e.get("url") == ITEM_CONTROL for e in item.get("extension", []))
        if item.get("type") in ("choice", "coding") and not item.get("repeats") \
                and 0 < len(options) <= RADIO_MAX_OPTIONS and not has_control:
            item.setdefault("extension", []).append({"url": ITEM_CONTROL, "valueCodeableConcept": {
                "coding": [{"system": "http://hl7.org/fhir/questionnaire-item-control",
                            "code": "radio-button", "display": "Radio Button"}]}})
    return out


def for_renderer(questionnaire: dict[str, Any]) -> dict[str, Any]:
    """The copy handed to LHC-Forms: radio buttons; no `copyright` (the page shows it as
    text: LHC-Forms' copyright pop-up button has an invalid aria attribute) and no unit
    fields on scores (LHC-Forms renders them as unlabelled inputs; the unit is "score")."""
    out = radio_buttons(questionnaire)
    out.pop("copyright", None)
    out.pop("_copyright", None)
    for item in walk_items(out.get("item", [])):
        if item.get("readOnly") and "extension" in item:
            item["extension"] = [e for e in item["extension"] if e.get("url") != UNIT]
    return out
