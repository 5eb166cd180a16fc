"""A Questionnaire in another language, built from its FHIR translation extensions.

LHC-Forms renders `text` and `display` as they are, so the Italian form is made on the server:
every string that carries a translation extension for the language is replaced by it, and
`language` says what the form now is. Strings without a translation stay as they are.
"""

from __future__ import annotations

import copy
from typing import Any

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
LANGUAGES = {"en": "English", "it": "Italiano"}
# The form page's own words (LHC-Forms and the form bring theirs).
WORDS = {
    "en": {"save": "Save draft", "submit": "Submit", "scores": "Scores recorded",
           "copyright": "Copyright and licence", "outcomes": "See the outcomes chart"},
    "it": {"save": "Salva bozza", "submit": "Invia", "scores": "Punteggi registrati",
           "copyright": "Copyright e licenza", "outcomes": "Vedi il grafico degli esiti"},
}


def translation(element: Any, lang: str) -> str | None:
    """The `content` of the translation extension for `lang` on a primitive's _element."""
    if not isinstance(element, dict):
        return None
    for ext in element.get("extension", []):
        if ext.get("url") != TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        if parts.get("lang", {}).get("valueCode") == lang:
            content = parts.get("content", {}).get("valueString")
            if isinstance(content, str):
                return content
    return None


def _translate(node: Any, lang: str) -> int:
    count = 0
    if isinstance(node, dict):
        for key in [k for k in node if k.startswith("_") and k[1:] in node]:
            text = translation(node[key], lang)
            if text is not None and isinstance(node[key[1:]], str):
                node[key[1:]] = text
                count += 1
        for value in node.values():
            count += _translate(value, lang)
    elif isinstance(node, list):
        for value in node:
            count += _translate(value, lang)
    return count


def languages(questionnaire: dict[str, Any]) -> list[str]:
    """The form's own language and those its translations cover (at least its title)."""
    own = questionnaire.get("language", "en")
    found = [own]
    for lang in LANGUAGES:
        if lang != own and translation(questionnaire.get("_title"), lang) is not None:
            found.append(lang)
    return found


def translated(questionnaire: dict[str, Any], lang: str) -> dict[str, Any]:
    """The Questionnaire in `lang` (a copy), or as it is when that is its own language."""
    if lang == questionnaire.get("language", "en"):
        return questionnaire
    out = copy.deepcopy(questionnaire)
    _translate(out, lang)
    out["language"] = lang
    return out
