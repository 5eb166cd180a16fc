"""Answer values: the value[x] of a QuestionnaireResponse answer and how item types accept them."""

from __future__ import annotations

from typing import Any

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
