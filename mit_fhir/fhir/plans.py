"""Shared by the plan mappings: answers read from a response, PlanError and Planned."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mit_fhir.fhir.answers import value_of
from mit_fhir.fhir.references import patient_id
from mit_fhir.vocabulary import CS_MIT_FORMS

Resource = dict[str, Any]
Item = dict[str, Any]
Value = tuple[str, Any]

COMPLETED = ("completed", "amended")
MAX_KEY = 255  # resource.business_key column (mit_fhir/store/schema.py)
FHIR_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?)?)?")


class PlanError(ValueError):
    """A response that cannot become a plan; the message names linkIds, never answers."""

    def __init__(self, link_id: str, problem: str) -> None:
        super().__init__(f"{link_id}: {problem}")
        self.link_id = link_id


@dataclass(frozen=True)
class Planned:
    """A resource without id/meta and the key that stays the same across plan versions."""

    business_key: str
    resource: Resource


# --- answers -------------------------------------------------------------------------------

def answer_values(items: list[Item], link_id: str) -> list[Value]:
    """Every answer value for link_id among items and their descendants, in order."""
    found: list[Value] = []
    for item in items:
        answers = item.get("answer", [])
        if item.get("linkId") == link_id:
            found.extend(v for v in map(value_of, answers) if v is not None)
        found.extend(answer_values(item.get("item", []), link_id))
        for answer in answers:
            found.extend(answer_values(answer.get("item", []), link_id))
    return found


def answer_value(items: list[Item], link_id: str, key: str | None = None) -> Any:
    """The first answer's value (of element `key` when given), or None."""
    for found_key, val in answer_values(items, link_id):
        if key is None or found_key == key:
            return (val.strip() or None) if isinstance(val, str) else val
    return None


def required_answer(items: list[Item], link_id: str, key: str | None = None) -> Any:
    val = answer_value(items, link_id, key)
    if val is None:
        raise PlanError(link_id, f"a required answer{f' ({key})' if key else ''} is missing")
    return val


def answer_strings(items: list[Item], link_id: str) -> list[str]:
    return [v.strip() for k, v in answer_values(items, link_id) if k == "valueString" and v.strip()]


def answer_groups(items: list[Item], link_id: str) -> list[list[Item]]:
    """The child items of each repeat of a root group (R4 repeats a group as sibling items)."""
    return [item.get("item", []) for item in items if item.get("linkId") == link_id]


def form_items(items: list[Item]) -> dict[str, Item]:
    by_link: dict[str, Item] = {}
    for item in items:
        by_link[item["linkId"]] = item
        by_link.update(form_items(item.get("item", [])))
    return by_link


def form_coding(coding: Resource, form_item: Item | None) -> Resource:
    """system/code/display of an answer coding; display from the form's option if absent."""
    out = {k: coding[k] for k in ("system", "code", "display") if coding.get(k)}
    if "display" not in out:
        for option in (form_item or {}).get("answerOption", []):
            known = option.get("valueCoding", {})
            if known.get("code") == out.get("code") and known.get("display"):
                out["display"] = known["display"]
    return out


def form_concept(value: Value, form_item: Item | None) -> Resource:
    """An open-choice answer: the coding, or free text as CodeableConcept.text."""
    key, val = value
    if key == "valueCoding":
        return {"coding": [form_coding(val, form_item)]}
    return {"text": " ".join(str(val).split())}


def answer_code(items: list[Item], link_id: str, allowed: tuple[str, ...]) -> str:
    # fhir.resources checks no bindings; a status outside the required value set stops here.
    code = required_answer(items, link_id, "valueCoding").get("code")
    if code not in allowed:
        raise PlanError(link_id, f"the answer must be one of {', '.join(allowed)}")
    return str(code)


def plan_patient(qr: Resource, questionnaire: Resource, form: str) -> str:
    """The patient id, after checking the response is a completed answer to this form."""
    if not any(c.get("system") == CS_MIT_FORMS and c.get("code") == form
               for c in questionnaire.get("code", [])):
        raise PlanError("Questionnaire.code", f"the Questionnaire is not the {form} form")
    if str(qr.get("questionnaire", "")).partition("|")[0] != questionnaire.get("url"):
        raise PlanError("QuestionnaireResponse.questionnaire", "does not name this Questionnaire")
    if qr.get("status") not in COMPLETED:
        raise PlanError("QuestionnaireResponse.status", "only a completed response is a plan")
    patient = patient_id((qr.get("subject") or {}).get("reference"))
    if patient is None:
        raise PlanError("QuestionnaireResponse.subject", "must reference the Patient")
    return patient


def checked_key(key: str) -> str:
    if len(key) > MAX_KEY:
        raise PlanError("medplan-med-drug", f"the business key is longer than {MAX_KEY}")
    return key
