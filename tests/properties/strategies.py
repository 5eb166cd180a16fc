"""Hypothesis strategies: valid responses to a catalogue Questionnaire, and single mutations.

A response is built item by item in form order: each enabled item (enableWhen evaluated by the
service's own rules against the answers drawn so far) is answered when required, and otherwise
answered or left out at random; answers respect answerOption, minValue/maxValue and maxLength.
Calculated (read-only) items are left to the service.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import defaultdict
from typing import Any

from hypothesis import strategies as st

from mit_fhir.fhir.enable_when import enabled
from mit_fhir.fhir.items import walk_items
from mit_fhir.vocabulary import EXT_CALCULATED_EXPRESSION, EXT_MAX_VALUE, EXT_MIN_VALUE, extension

Item = dict[str, Any]
Answers = dict[str, list[dict[str, Any]]]
REFERENCE_EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-referenceResource"
UNIT_EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"
# Printable text with at least one visible character (FHIR strings cannot be blank).
_TEXT = st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=40).filter(
    lambda s: s.strip() != "")


def bound(item: Item, url: str) -> float | None:
    ext = extension(item, url)
    if not ext:
        return None
    return next(v for k, v in ext.items() if k.startswith("value"))


def calculated(item: Item) -> bool:
    return bool(extension(item, EXT_CALCULATED_EXPRESSION))


def _has_enable_when(item: Item) -> bool:
    return any("enableWhen" in i for i in walk_items(item.get("item", [])))


def answer_value(draw: st.DrawFn, item: Item) -> dict[str, Any]:
    """One valid answer for an item of a value type."""
    kind = item["type"]
    options = item.get("answerOption")
    if options and not (kind == "open-choice" and draw(st.booleans())):
        option = draw(st.sampled_from(options))
        key, value = next((k, v) for k, v in option.items() if k.startswith("value"))
        return {key: copy.deepcopy(value)}
    low, high = bound(item, EXT_MIN_VALUE), bound(item, EXT_MAX_VALUE)
    if kind == "integer":
        lo = int(low) if low is not None else -1000
        return {"valueInteger": draw(st.integers(lo, int(high) if high is not None else lo + 2000))}
    if kind == "decimal":
        lo = float(low) if low is not None else -1000.0
        hi = float(high) if high is not None else lo + 2000
        value = round(draw(st.floats(lo, hi, allow_nan=False)), 2)
        return {"valueDecimal": min(max(value, lo), hi)}  # rounding stays within the bounds
    if kind == "boolean":
        return {"valueBoolean": draw(st.booleans())}
    if kind == "date":
        return {"valueDate": draw(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))).isoformat()}
    if kind == "dateTime":
        moment = draw(st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 12, 31)))
        return {"valueDateTime": moment.replace(microsecond=0).isoformat() + "Z"}
    if kind == "quantity":
        unit = (extension(item, UNIT_EXT) or {}).get("valueCoding", {"code": "1"})
        value = draw(st.integers(1, 5000))
        return {"valueQuantity": {"value": value, "unit": unit.get("display", unit["code"]),
                                  "system": "http://unitsofmeasure.org", "code": unit["code"]}}
    if kind == "reference":
        types = [e["valueCode"] for e in item.get("extension", []) if e["url"] == REFERENCE_EXT]
        rtype = draw(st.sampled_from(types or ["Patient"]))
        return {"valueReference": {"reference": f"{rtype}/{draw(st.uuids()).hex}"}}
    text = draw(_TEXT)
    if item.get("maxLength"):
        text = text[: item["maxLength"]].strip() or "x"
    return {"valueString": text}


def _items(draw: st.DrawFn, q_items: list[Item], answers: Answers, every: bool) -> list[Item]:
    out: list[Item] = []
    for q_item in q_items:
        if q_item["type"] == "display" or calculated(q_item) or not enabled(q_item, answers):
            continue
        if not (every or q_item.get("required")) and not draw(st.booleans()):
            continue
        if q_item["type"] == "group":
            # Repeating groups whose children have enableWhen get one instance: the service
            # evaluates enableWhen over the whole response, across instances.
            many = q_item.get("repeats") and not _has_enable_when(q_item)
            for _ in range(draw(st.integers(1, 2)) if many else 1):
                children = _items(draw, q_item.get("item", []), answers, every)
                if children:
                    out.append({"linkId": q_item["linkId"], "item": children})
            continue
        count = draw(st.integers(1, 2)) if q_item.get("repeats") else 1
        given: list[dict[str, Any]] = []
        for _ in range(count):
            ans = answer_value(draw, q_item)
            if ans not in given:
                given.append(ans)
        answers[q_item["linkId"]].extend(given)
        out.append({"linkId": q_item["linkId"], "answer": given})
    return out


@st.composite
def responses(draw: st.DrawFn, questionnaire: Item) -> dict[str, Any]:
    """A completed QuestionnaireResponse the form accepts; half of them answer every item."""
    answers: Answers = defaultdict(list)
    every = draw(st.booleans())
    # Up to the present: the service refuses a response authored in the future (later than now
    # plus 5 minutes' clock skew), so a generated one would test the refusal, not the scoring.
    authored = draw(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2025, 12, 31)))
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/prop-{draw(st.uuids()).hex[:12]}"},
        "authored": authored.replace(microsecond=0).isoformat() + "Z",
        "item": _items(draw, questionnaire["item"], answers, every),
    }


def _pairs(q_items: list[Item], r_items: list[Item]) -> list[tuple[list[Item], Item, Item]]:
    """(the list holding it, response item, Questionnaire item) for every response item."""
    by_link = {q["linkId"]: q for q in q_items}
    out = []
    for r_item in r_items:
        q_item = by_link[r_item["linkId"]]
        out.append((r_items, r_item, q_item))
        out.extend(_pairs(q_item.get("item", []), r_item.get("item", [])))
    return out


def _disabled_slots(q_items: list[Item], r_items: list[Item], answers: Answers
                    ) -> list[tuple[list[Item], Item]]:
    """(response list, Questionnaire item) for each disabled item that could be answered there."""
    slots = [(r_items, q) for q in q_items if "enableWhen" in q and not enabled(q, answers)]
    by_link = {q["linkId"]: q for q in q_items}
    for r_item in r_items:
        q_item = by_link[r_item["linkId"]]
        if q_item["type"] == "group":
            slots += _disabled_slots(q_item.get("item", []), r_item.get("item", []), answers)
    return slots


def _filler(draw: st.DrawFn, q_item: Item) -> Item:
    if q_item["type"] == "group":
        child = next(c for c in walk_items(q_item.get("item", [])) if c["type"] != "group")
        return {"linkId": q_item["linkId"], "item": [_filler(draw, child)]}
    return {"linkId": q_item["linkId"], "answer": [answer_value(draw, q_item)]}


@st.composite
def mutated(draw: st.DrawFn, questionnaire: Item, qr: dict[str, Any]) -> tuple[str, Any]:
    """One malformation of a valid response: (its kind, the malformed response)."""
    qr = copy.deepcopy(qr)
    pairs = _pairs(questionnaire["item"], qr["item"])
    answered = [(lst, r, q) for lst, r, q in pairs if r.get("answer")]
    bounded = [(lst, r, q) for lst, r, q in answered
               if q["type"] in ("integer", "decimal") and bound(q, EXT_MAX_VALUE) is not None]
    # Removing one instance of a repeating item leaves the others: not a missing answer.
    required = [(lst, r, q) for lst, r, q in pairs if q.get("required")
                and sum(1 for other in lst if other["linkId"] == r["linkId"]) == 1]
    answers: Answers = defaultdict(list)
    for _, r, q in answered:
        answers[q["linkId"]].extend(r["answer"])
    disabled = _disabled_slots(questionnaire["item"], qr["item"], answers)
    kinds = ["unknown-linkId"]
    kinds += ["wrong-type"] if answered else []
    kinds += ["out-of-range"] if bounded else []
    kinds += ["missing-required"] if required else []
    kinds += ["disabled-answer"] if disabled else []
    kind = draw(st.sampled_from(kinds))
    if kind == "unknown-linkId":
        qr["item"].append({"linkId": f"no-such-item-{draw(st.integers(0, 999))}",
                           "answer": [{"valueString": "x"}]})
    elif kind == "wrong-type":
        _, r_item, q_item = draw(st.sampled_from(answered))
        r_item["answer"][0] = ({"valueInteger": 1} if q_item["type"] == "boolean"
                               else {"valueBoolean": True})
    elif kind == "out-of-range":
        _, r_item, q_item = draw(st.sampled_from(bounded))
        high = bound(q_item, EXT_MAX_VALUE)
        assert high is not None
        key = next(k for k in r_item["answer"][0] if k.startswith("value"))
        r_item["answer"][0] = {key: int(high) + draw(st.integers(1, 100))}
    elif kind == "missing-required":
        holder, r_item, _ = draw(st.sampled_from(required))
        holder.remove(r_item)
    else:
        holder, q_item = draw(st.sampled_from(disabled))
        holder.append(_filler(draw, q_item))
    return kind, qr
