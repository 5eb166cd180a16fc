"""The service's refusals of a form, said as the patient sees the form: the question's text.

The validator names items by linkId ('phq-9-4'), which is right for an API client and means
nothing to the person filling the form. The page shows no numbers of its own (LHC-Forms shows
an item's `prefix`, and only that), so a question is named by its text, with its prefix when
it has one: "question 4" on a form without numbers sends the patient counting.
"""

from __future__ import annotations

import re
from typing import Any

from mit_fhir.errors import FhirError
from mit_fhir.fhir.items import walk_items

_ITEM = re.compile(r"(?:required )?item '([^']{1,128})'")
_REQUIRED = re.compile(r"^required item '([^']{1,128})' is not answered$")
WORDS = {
    "en": {"required": "Please answer the question \u201c{text}\u201d.",
           "required_n": "Please answer question {n}: \u201c{text}\u201d.",
           "other": "The question \u201c{text}\u201d: the answer was not accepted.",
           "other_n": "Question {n} (\u201c{text}\u201d): the answer was not accepted.",
           "general": "The form was not accepted: {detail}.",
           "conflict": "These answers differ from the ones already sent from this page. "
                       "Press Submit again to record them as a new response."},
    "it": {"required": "Rispondere alla domanda \u00ab{text}\u00bb.",
           "required_n": "Rispondere alla domanda {n}: \u00ab{text}\u00bb.",
           "other": "Domanda \u00ab{text}\u00bb: la risposta non \u00e8 stata accettata.",
           "other_n": "Domanda {n} (\u00ab{text}\u00bb): la risposta non \u00e8 stata accettata.",
           "general": "Il modulo non \u00e8 stato accettato: {detail}.",
           "conflict": "Queste risposte sono diverse da quelle gi\u00e0 inviate da questa "
                       "pagina. Premere di nuovo Invia per registrarle come nuova risposta."},
}


def shown(questionnaire: dict[str, Any]) -> dict[str, tuple[str | None, str]]:
    """linkId -> (the number the form shows, or None, and the text) of each item the person
    answers, groups included (a required group is refused by its linkId too)."""
    found: dict[str, tuple[str | None, str]] = {}
    for item in walk_items(questionnaire.get("item", [])):
        if item.get("type") == "display" or item.get("readOnly"):
            continue
        prefix = str(item["prefix"]).strip().rstrip(".):") if item.get("prefix") else None
        found[item["linkId"]] = (prefix or None, str(item.get("text") or item["linkId"]))
    return found


def items_named(exc: FhirError, questionnaire: dict[str, Any]) -> list[str]:
    """The linkIds of the items a refusal names, in order (the page marks them)."""
    items = shown(questionnaire)
    out: list[str] = []
    for issue in exc.issues:
        link = _ITEM.search(issue.diagnostics)
        if link and link.group(1) in items and link.group(1) not in out:
            out.append(link.group(1))
    return out


def plain(exc: FhirError, questionnaire: dict[str, Any], lang: str) -> list[str]:
    """Each issue of a refusal in the person's words (the form already in their language)."""
    words = WORDS.get(lang, WORDS["en"])
    if exc.status == 409:
        return [words["conflict"]]
    items = shown(questionnaire)
    out: list[str] = []
    for issue in exc.issues:
        text = issue.diagnostics
        link = _ITEM.search(text)
        if link and link.group(1) in items:
            n, said = items[link.group(1)]
            key = ("required" if _REQUIRED.match(text) else "other") + ("_n" if n else "")
            line = words[key].format(n=n, text=said)
        else:
            line = words["general"].format(detail=text)
        if line not in out:
            out.append(line)
    return out
