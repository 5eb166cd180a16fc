"""Rendering hints added to the Questionnaire the pages hand to LHC-Forms (content unchanged)."""

from __future__ import annotations

import copy
from typing import Any

from mit_fhir.fhir.items import walk_items

ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
RADIO_MAX_OPTIONS = 7  # longer answer lists stay drop-downs
# A group the page adds only to lay items out as a grid; form.js removes it from every
# response before it leaves the page, so the service never sees it.
GRID_PREFIX = "mit-grid-"
GRID_MIN_ITEMS = 3  # two items on one scale read as well as a list


def _control(code: str, display: str) -> dict[str, Any]:
    return {"url": ITEM_CONTROL, "valueCodeableConcept": {"coding": [
        {"system": ITEM_CONTROL_SYSTEM, "code": code, "display": display}]}}


def radio_buttons(questionnaire: dict[str, Any]) -> dict[str, Any]:
    """Short single-choice lists as radio buttons: one click per answer, all options visible,
    keyboard-operable with the arrow keys."""
    out = copy.deepcopy(questionnaire)
    for item in walk_items(out.get("item", [])):
        options = item.get("answerOption") or []
        has_control = any(e.get("url") == ITEM_CONTROL for e in item.get("extension", []))
        # A calculated band (readOnly) stays a field: LHC-Forms 40.1.3 shows a read-only radio
        # group's value as no checked button at all, and a field shows its text.
        if item.get("type") in ("choice", "coding") and not item.get("repeats") \
                and not item.get("readOnly") \
                and 0 < len(options) <= RADIO_MAX_OPTIONS and not has_control:
            item.setdefault("extension", []).append(_control("radio-button", "Radio Button"))
    return out


def _scale(item: dict[str, Any]) -> tuple[Any, ...] | None:
    """The answer scale an item can share a grid on (its answers' codes and wording), or None
    when it cannot be a grid row."""
    options = item.get("answerOption") or []
    if item.get("type") != "choice" or item.get("readOnly") or item.get("repeats") \
            or item.get("enableWhen") or item.get("item") \
            or not 0 < len(options) <= RADIO_MAX_OPTIONS \
            or any("valueCoding" not in o for o in options):
        return None
    return tuple((o["valueCoding"].get("system"), o["valueCoding"].get("code"),
                  o["valueCoding"].get("display")) for o in options)


def _keying(item: dict[str, Any]) -> str:
    """The answers with their weights: a grid holds rows of one keying only, because
    LHC-Forms' matrix gives every row the first row's answers, weights included (40.1.3)."""
    return repr(item.get("answerOption"))


def _grid(rows: list[dict[str, Any]], counter: list[int]) -> dict[str, Any]:
    counter[0] += 1
    # SDC `table` ("Vertical Answer Table": questions are rows, answers columns), which
    # LHC-Forms renders as its matrix layout.
    return {"linkId": f"{GRID_PREFIX}{counter[0]}", "type": "group",
            "extension": [_control("table", "Vertical Answer Table")], "item": rows}


def _grouped(items: list[dict[str, Any]], counter: list[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []

    def close() -> None:
        if len(run) < GRID_MIN_ITEMS:
            out.extend(run)
        else:
            # A reverse-keyed item (DERS 1, 2, 6...) starts a grid of its own: the page shows
            # one scale throughout, its header repeated where the keying changes.
            block = [run[0]]
            for item in run[1:]:
                if _keying(item) != _keying(block[0]):
                    out.append(_grid(block, counter))
                    block = []
                block.append(item)
            out.append(_grid(block, counter))
        run.clear()

    for item in items:
        scale = _scale(item)
        if scale is None or (run and _scale(run[0]) != scale):
            close()
        if scale is None:
            if item.get("item"):
                item["item"] = _grouped(item["item"], counter)
            out.append(item)
        else:
            run.append(item)
    close()
    return out


def grids(questionnaire: dict[str, Any]) -> dict[str, Any]:
    """Runs of consecutive items on one answer scale wrapped in a grid group (a copy)."""
    out = copy.deepcopy(questionnaire)
    out["item"] = _grouped(out.get("item", []), [0])
    return out


def for_renderer(questionnaire: dict[str, Any], grid: bool = True) -> dict[str, Any]:
    """The copy handed to LHC-Forms: grids (unless asked for lists, as on a phone), radio
    buttons; no `copyright` (the page shows it as text: LHC-Forms' copyright pop-up button
    has an invalid aria attribute) and no unit fields on scores (LHC-Forms renders them as
    unlabelled inputs; the unit is "score")."""
    out = radio_buttons(grids(questionnaire) if grid else questionnaire)
    out.pop("copyright", None)
    out.pop("_copyright", None)
    for item in walk_items(out.get("item", [])):
        if item.get("readOnly") and "extension" in item:
            item["extension"] = [e for e in item["extension"] if e.get("url") != UNIT]
    return out


CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"


def _is_calculated(item: dict[str, Any]) -> bool:
    return any(e.get("url") == CALCULATED for e in item.get("extension", []))


def _without_scores(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if _is_calculated(item):
            continue
        if item.get("item"):
            item["item"] = _without_scores(item["item"])
            if not item["item"] and item.get("type") == "group":
                continue
        out.append(item)
    return out


def for_patient(questionnaire: dict[str, Any], grid: bool = True) -> dict[str, Any]:
    """The patient's copy: no calculated item (no total, subscale or band while filling) and
    none of the root variables that only feed them. The service scores the response from its
    own Questionnaire, whatever the page sent."""
    out = copy.deepcopy(questionnaire)
    out["item"] = _without_scores(out.get("item", []))
    # Variables another expression still reads (enableWhenExpression...) stay.
    if not any("valueExpression" in e for i in walk_items(out["item"])
               for e in i.get("extension", [])):
        out["extension"] = [e for e in out.get("extension", []) if e.get("url") != VARIABLE]
        if not out["extension"]:
            del out["extension"]
    return for_renderer(out, grid=grid)
