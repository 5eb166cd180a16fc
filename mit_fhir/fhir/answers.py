"""Answer values: the value[x] of a QuestionnaireResponse answer and how item types accept them."""

from __future__ import annotations

from typing import Any

from mit_fhir.vocabulary import EXT_EQUIVALENT_CODING

# FHIR R4 Questionnaire.item.type -> the answer value[x] element names it accepts.
# https://hl7.org/fhir/R4/valueset-item-type.html and QuestionnaireResponse invariant qrs-2.
ACCEPTED_VALUES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",),
    "decimal": ("valueDecimal", "valueInteger"),
    "integer": ("valueInteger",),
    "date": ("valueDate",),
    "dateTime": ("valueDateTime", "valueDate"),
    "time": ("valueTime",),
    "string": ("valueString",),
    "text": ("valueString",),
    "url": ("valueUri",),
    "choice": ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"),
    "open-choice": ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"),
    "attachment": ("valueAttachment",),
    "reference": ("valueReference",),
    "quantity": ("valueQuantity",),
}


def value_of(answer: dict[str, Any]) -> tuple[str, Any] | None:
    """The (element name, value) of an answer's value[x], or None when it has none."""
    for key, val in answer.items():
        if key.startswith("value"):
            return key, val
    return None


def same_coding(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Codings match on code, and on system when both name one."""
    if a.get("code") != b.get("code"):
        return False
    return not (a.get("system") and b.get("system")) or a.get("system") == b.get("system")


def option_codings(option: dict[str, Any]) -> list[dict[str, Any]]:
    """An answerOption's Coding, then the equivalent codings of the same answer it lists
    (extension equivalent-coding): a response may answer with any of them."""
    coding = option.get("valueCoding")
    if not isinstance(coding, dict):
        return []
    return [coding] + [e["valueCoding"] for e in option.get("extension", ())
                       if e.get("url") == EXT_EQUIVALENT_CODING
                       and isinstance(e.get("valueCoding"), dict)]
