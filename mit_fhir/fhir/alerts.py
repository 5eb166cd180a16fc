"""Risk alerts of a response: the answers its Questionnaire marks critical (critical-answer).

Which answers are critical, at which level and with which message lives in the Questionnaire
(extension `critical-answer` on the item, profiles/StructureDefinition-critical-answer.json),
never here. An answered item is read from the response; a calculated item (the C-SSRS triage)
from the service's own score, since an EHR's response need not carry calculated values. The
alerts of a stored response live on its panel Observation: one `answer-alert` extension each
and interpretation AA (critical) or A (warning) from v3 ObservationInterpretation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mit_fhir.fhir.answers import same_coding
from mit_fhir.vocabulary import (
    BASE,
    EXT_CALCULATED_EXPRESSION,
    EXT_TRANSLATION,
    INTERPRETATION,
    extension,
)

Resource = dict[str, Any]
EXT_CRITICAL_ANSWER = f"{BASE}/StructureDefinition/critical-answer"
EXT_ANSWER_ALERT = f"{BASE}/StructureDefinition/answer-alert"
LEVELS = ("warning", "critical")  # least to most severe
# https://terminology.hl7.org/CodeSystem-v3-ObservationInterpretation.html
_INTERPRETATION = {
    "warning": {"system": INTERPRETATION, "code": "A", "display": "Abnormal"},
    "critical": {"system": INTERPRETATION, "code": "AA", "display": "Critical abnormal"},
}


@dataclass(frozen=True)
class Alert:
    """One critical answer: the item and answer as the patient saw them, and what it means."""

    level: str
    link_id: str
    item: str
    answer: Resource
    message: str

    def as_json(self) -> dict[str, str]:
        """The shape the form page and the outcomes document carry."""
        return {"level": self.level, "item": self.item,
                "answer": str(self.answer.get("display") or self.answer.get("code", "")),
                "message": self.message}


def _parts(ext: Resource) -> dict[str, list[Resource]]:
    out: dict[str, list[Resource]] = {}
    for sub in ext.get("extension", ()):
        if isinstance(sub, dict):
            out.setdefault(str(sub.get("url")), []).append(sub)
    return out


def _translated(element: Resource, key: str, lang: str | None) -> str:
    """element[key] in `lang` when a translation extension gives it, else as written."""
    for ext in (element.get(f"_{key}") or {}).get("extension", ()) if lang else ():
        if ext.get("url") == EXT_TRANSLATION:
            parts = _parts(ext)
            if [p.get("valueCode") for p in parts.get("lang", [])] == [lang]:
                for content in parts.get("content", []):
                    return str(content.get("valueString", element.get(key, "")))
    return str(element.get(key, ""))


def _answers(items: list[Resource]) -> Iterator[tuple[str, Resource]]:
    """(linkId, Coding) of every coded answer of a response, nested answers included."""
    for item in items:
        for answer in item.get("answer", ()) or ():
            if isinstance(answer.get("valueCoding"), dict):
                yield item.get("linkId", ""), answer["valueCoding"]
            yield from _answers(answer.get("item", ()) or [])
        yield from _answers(item.get("item", ()) or [])


def _marked(items: Any) -> Iterator[tuple[Resource, Resource]]:
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        for ext in item.get("extension", ()) if isinstance(item.get("extension"), list) else ():
            if isinstance(ext, dict) and ext.get("url") == EXT_CRITICAL_ANSWER:
                yield item, ext
        yield from _marked(item.get("item", []))


@dataclass(frozen=True)
class Mark:
    """One well-formed critical-answer extension: its level, answers and message part."""

    level: str
    answers: tuple[Resource, ...]
    message: Resource


def _mark(ext: Resource) -> Mark | str:
    """The extension read as a Mark, or what is wrong with it."""
    parts = _parts(ext) if isinstance(ext.get("extension"), list) else {}
    levels = [p.get("valueCode") for p in parts.get("level", [])]
    if len(levels) != 1 or levels[0] not in LEVELS:
        return f"needs one 'level' part whose valueCode is one of {', '.join(LEVELS)}"
    messages = parts.get("message", [])
    if len(messages) != 1 or not isinstance(messages[0].get("valueString"), str):
        return "needs one 'message' part with a valueString"
    answers = parts.get("answer", [])
    codings = tuple(c for p in answers if isinstance(c := p.get("valueCoding"), dict)
                    and isinstance(c.get("code"), str))
    if not codings or len(codings) != len(answers):
        return "needs at least one 'answer' part, each a valueCoding with a code"
    return Mark(str(levels[0]), codings, messages[0])


def mark_problems(questionnaire: Resource) -> list[tuple[str, str]]:
    """(linkId, what is wrong) of every malformed critical-answer of a Questionnaire."""
    out = []
    for item, ext in _marked(questionnaire.get("item", [])):
        problem = _mark(ext)
        if isinstance(problem, str):
            out.append((str(item.get("linkId", ""))[:64], f"critical-answer {problem}"))
    return out


def alerts(questionnaire: Resource, qr: Resource,
           scores: Mapping[str, Any] | None = None) -> list[Alert]:
    """The alerts of a response, in Questionnaire order; `scores` maps a calculated item's
    linkId to the service's value for it (a Coding for a band)."""
    given: dict[str, list[Resource]] = {}
    for link_id, coding in _answers(qr.get("item", []) or []):
        given.setdefault(link_id, []).append(coding)
    lang = qr.get("language") if isinstance(qr.get("language"), str) else None
    out: list[Alert] = []
    for item, ext in _marked(questionnaire.get("item", [])):
        link_id = str(item.get("linkId", ""))
        found = _mark(ext)
        if isinstance(found, str):
            continue  # refused where a form is loaded (mark_problems); never raised on here
        if extension(item, EXT_CALCULATED_EXPRESSION) is not None:
            value = (scores or {}).get(link_id)
            chosen = [value] if isinstance(value, dict) else []
        else:
            chosen = given.get(link_id, [])
        for coding in chosen:
            if not any(same_coding(coding, c) for c in found.answers):
                continue
            option = next((o["valueCoding"] for o in item.get("answerOption", ())
                           if isinstance(o, dict) and isinstance(o.get("valueCoding"), dict)
                           and same_coding(coding, o["valueCoding"])), coding)
            answer = {k: option[k] for k in ("system", "code") if k in option}
            answer["display"] = _translated(option, "display", lang) or option.get("code", "")
            out.append(Alert(found.level, link_id, _translated(item, "text", lang), answer,
                             _translated(found.message, "valueString", lang)))
    return out


def most_severe(found: list[Alert]) -> str | None:
    """The highest level among the alerts, or None."""
    return max((a.level for a in found), key=LEVELS.index, default=None)


def mark(panel: Resource, found: list[Alert]) -> None:
    """Record the alerts on a panel Observation: extensions and its interpretation."""
    if not found:
        return
    extensions = panel.setdefault("extension", [])
    for a in found:
        extensions.append({"url": EXT_ANSWER_ALERT, "extension": [
            {"url": "level", "valueCode": a.level},
            {"url": "linkId", "valueString": a.link_id},
            {"url": "item", "valueString": a.item},
            {"url": "answer", "valueCoding": dict(a.answer)},
            {"url": "message", "valueString": a.message},
        ]})
    level = most_severe(found)
    panel["interpretation"] = [{"coding": [dict(_INTERPRETATION[str(level)])]}]


def recorded(panel: Resource) -> list[Alert]:
    """The alerts mark() recorded on a panel Observation."""
    out = []
    for ext in panel.get("extension", ()):
        if ext.get("url") != EXT_ANSWER_ALERT:
            continue
        parts = {p.get("url"): p for p in ext.get("extension", ())}
        try:
            alert = Alert(parts["level"]["valueCode"], parts["linkId"]["valueString"],
                          parts["item"]["valueString"], dict(parts["answer"]["valueCoding"]),
                          parts["message"]["valueString"])
        except (KeyError, TypeError, ValueError):
            continue  # not written by mark(): an EHR's copy edited by hand
        if alert.level in LEVELS:
            out.append(alert)
    return out
