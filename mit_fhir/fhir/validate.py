"""Checks a QuestionnaireResponse against its Questionnaire: linkIds, types, options, required.

Structure (datatypes, cardinalities, JSON types) is checked first by fhir/structure.py, whose
check_structure this module re-exports; this module checks what the models cannot: that the
answers fit the form. Diagnostics name linkIds and rules, never the answers themselves, so they
are safe to log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from mit_fhir.errors import Issue, Unprocessable
from mit_fhir.fhir.answers import ACCEPTED_VALUES, option_codings, same_coding, value_of
from mit_fhir.fhir.enable_when import enabled
from mit_fhir.fhir.references import patient_id
from mit_fhir.fhir.structure import check_structure
from mit_fhir.vocabulary import EXT_MAX_VALUE, EXT_MIN_VALUE, extension

__all__ = ["check_against", "check_structure", "collect_answers"]

QR_STATUS = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
Item = dict[str, Any]


def collect_answers(items: list[Item]) -> dict[str, list[dict[str, Any]]]:
    """linkId -> every answer given for it anywhere in the response tree."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def visit(nodes: list[Item]) -> None:
        for node in nodes:
            for ans in node.get("answer", []):
                found[node.get("linkId", "")].append(ans)
                visit(ans.get("item", []))
            visit(node.get("item", []))

    visit(items)
    return found


def _bound(item: Item, url: str) -> Any:
    ext = extension(item, url)
    v = value_of(ext) if ext else None
    return v[1] if v else None


class _Checker:
    """Walks the response and the Questionnaire side by side, collecting issues."""

    def __init__(self, answers: Mapping[str, list[dict[str, Any]]], completed: bool) -> None:
        self.answers = answers
        self.completed = completed
        self.issues: list[Issue] = []

    def fail(self, path: str, message: str, code: str = "invalid") -> None:
        self.issues.append(Issue(message, code=code, expression=(path,)))

    def items(self, q_items: list[Item], r_items: list[Item], path: str) -> None:
        by_link = {i["linkId"]: i for i in q_items}
        seen: dict[str, int] = defaultdict(int)
        for idx, r_item in enumerate(r_items):
            link_id = r_item.get("linkId", "")
            here = f"{path}.item[{idx}]"
            q_item = by_link.get(link_id)
            if q_item is None:
                self.fail(here, f"linkId '{link_id[:64]}' is not an item of the Questionnaire here")
                continue
            seen[link_id] += 1
            if seen[link_id] > 1 and not q_item.get("repeats"):
                self.fail(here, f"item '{link_id}' appears more than once but does not repeat")
            self.item(q_item, r_item, here)
        for q_item in q_items:
            link_id = q_item["linkId"]
            if (
                self.completed
                and q_item.get("required")
                and not seen.get(link_id)
                and enabled(q_item, self.answers)
                and q_item.get("type") != "display"
            ):
                self.fail(path, f"required item '{link_id}' is not answered", code="required")

    def item(self, q_item: Item, r_item: Item, path: str) -> None:
        link_id = q_item["linkId"]
        kind = q_item.get("type")
        answers = r_item.get("answer", [])
        if not enabled(q_item, self.answers):
            if answers or r_item.get("item"):
                self.fail(path, f"item '{link_id}' is answered but disabled by its enableWhen")
            return
        if kind in ("group", "display"):
            if answers:
                self.fail(path, f"item '{link_id}' is a {kind} and cannot have answers")
            if kind == "group":
                self.items(q_item.get("item", []), r_item.get("item", []), path)
            return
        if r_item.get("item"):
            self.fail(path, f"item '{link_id}' nests items outside its answers")
        if len(answers) > 1 and not q_item.get("repeats"):
            self.fail(path, f"item '{link_id}' has several answers but does not repeat")
        if self.completed and q_item.get("required") and not answers:
            self.fail(path, f"required item '{link_id}' is not answered", code="required")
        for a_idx, ans in enumerate(answers):
            self.answer(q_item, ans, f"{path}.answer[{a_idx}]")
            if ans.get("item"):
                self.items(q_item.get("item", []), ans["item"], f"{path}.answer[{a_idx}]")

    def answer(self, q_item: Item, ans: dict[str, Any], path: str) -> None:
        link_id = q_item["linkId"]
        kind = q_item.get("type", "")
        got = value_of(ans)
        if got is None:
            self.fail(path, f"item '{link_id}': the answer has no value")
            return
        key, val = got
        if key not in ACCEPTED_VALUES.get(kind, ()):
            self.fail(path, f"item '{link_id}' is of type {kind} and cannot take {key}")
            return
        options = q_item.get("answerOption")
        if options and (kind == "choice" or (kind == "open-choice" and key != "valueString")):
            allowed = [v for o in options if (v := value_of(o)) is not None]
            allowed += [("valueCoding", c) for o in options for c in option_codings(o)[1:]]
            if not any(_option_matches(key, val, okey, oval) for okey, oval in allowed):
                self.fail(path, f"item '{link_id}': the answer is not one of its answerOptions")
        if key in ("valueInteger", "valueDecimal"):
            low, high = _bound(q_item, EXT_MIN_VALUE), _bound(q_item, EXT_MAX_VALUE)
            if (low is not None and val < low) or (high is not None and val > high):
                self.fail(path, f"item '{link_id}': the answer is outside [{low}, {high}]")
        if key == "valueString" and q_item.get("maxLength") and len(val) > q_item["maxLength"]:
            self.fail(path, f"item '{link_id}': the answer is longer than {q_item['maxLength']}")


def _option_matches(key: str, val: Any, okey: str, oval: Any) -> bool:
    if key != okey:
        return False
    if key == "valueCoding":
        return same_coding(val, oval)
    return bool(val == oval)


def subject_is_patient(resource: dict[str, Any]) -> bool:
    """Whether the subject is a relative Patient reference of the one grammar (fhir/references):
    stored subjects are relative, so the guard reads the same patient from them later."""
    subject = resource.get("subject")
    return isinstance(subject, dict) and patient_id(subject.get("reference")) is not None


def check_against(qr: dict[str, Any], questionnaire: dict[str, Any]) -> None:
    """Raise Unprocessable listing every way the response does not fit its Questionnaire."""
    issues: list[Issue] = []
    if qr.get("status") not in QR_STATUS:
        issues.append(Issue("status must be one of " + ", ".join(sorted(QR_STATUS)),
                            expression=("QuestionnaireResponse.status",)))
    if not subject_is_patient(qr):
        issues.append(Issue("subject must reference the Patient (Patient/<id>, an id of 1 to 64 "
                            "letters, digits, '-' or '.')",
                            code="required", expression=("QuestionnaireResponse.subject",)))
    checker = _Checker(collect_answers(qr.get("item", [])), qr.get("status") == "completed")
    checker.items(questionnaire.get("item", []), qr.get("item", []), "QuestionnaireResponse")
    issues.extend(checker.issues)
    if issues:
        raise Unprocessable(
            # A site Questionnaire need not have an id (item 6 of issue 12: a KeyError, a 500).
            f"the QuestionnaireResponse does not fit Questionnaire "
            f"'{str(questionnaire.get('id') or questionnaire.get('url') or 'supplied')[:200]}'",
            issues,
        )
