"""The service's refusals of a form, said as the patient sees the form: question number and text.

The validator names items by linkId ('phq-9-4'), which is right for an API client and means
nothing to the person filling the form; the page says "question 4, 'Feeling tired…'" instead.
"""

from __future__ import annotations

import re
from typing import Any

from mit_fhir.catalogue import walk_items
from mit_fhir.errors import FhirError

_ITEM = re.compile(r"(?:required )?item '([^']{1,128})'")
_REQUIRED = re.compile(r"^required item '([^']{1,128})' is not answered$")
WORDS = {
    "en": {"required": "Please answer question {n}: \u201c{text}\u201d.",
           "other": "Question {n} (\u201c{text}\u201d): the answer was not accepted.",
           "general": "The form was not accepted: {detail}.",
           "conflict": "These answers differ from the ones already sent from this page. "
                       "Press Submit again to record them as a new response."},
    "it": {"required": "Rispondere alla domanda {n}: \u00ab{text}\u00bb.",
           "other": "Domanda {n} (\u00ab{text}\u00bb): la risposta non \u00e8 stata accettata.",
           "general": "Il modulo non \u00e8 stato accettato: {detail}.",
           "conflict": "Queste risposte sono diverse da quelle gi\u00e0 inviate da questa "
                       "pagina. Premere di nuovo Invia per registrarle come nuova risposta."},
}


def numbered(questionnaire: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """linkId -> (number, text) of every question the person answers, in the order shown."""
    found: dict[str, tuple[int, str]] = {}
    for item in walk_items(questionnaire.get("item", [])):
        if item.get("type") in ("group", "display") or item.get("readOnly"):
            continue
        found[item["linkId"]] = (len(found) + 1, str(item.get("text") or item["linkId"]))
    return found


def plain(exc: FhirError, questionnaire: dict[str, Any], lang: str) -> list[str]:
    """Each issue of a refusal in the person's words (the form already in their language)."""
    words = WORDS.get(lang, WORDS["en"])
    if exc.status == 409:
        return [words["conflict"]]
    items = numbered(questionnaire)
    out: list[str] = []
    for issue in exc.issues:
        text = issue.diagnostics
        link = _ITEM.search(text)
        if link and link.group(1) in items:
            n, shown = items[link.group(1)]
            key = "required" if _REQUIRED.match(text) else "other"
            line = words[key].format(n=n, text=shown)
        else:
            line = words["general"].format(detail=text)
        if line not in out:
            out.append(line)
    return out
