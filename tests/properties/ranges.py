"""The range of each numeric score, derived from its Questionnaire (answer weights, min/max).

A score's expression names variables, which name the items they read (`linkId in ('a' | 'b')`
or `linkId = 'a'`). Each item contributes the weights of its answerOptions, or its
minValue..maxValue when the score reads the answer itself. The aggregate is read from the
expression: a ratio (`/`) is a mean of the item values, a `where($this > 0).count()` a count of
items, anything else a sum. An expression of any other shape fails loudly (ScoreShapeError),
so a new kind of score needs its range rule added here rather than passing unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mit_fhir.fhir.items import walk_items
from mit_fhir.vocabulary import (
    EXT_CALCULATED_EXPRESSION,
    EXT_ITEM_WEIGHT,
    EXT_MAX_VALUE,
    EXT_MIN_VALUE,
    extension,
)

EXT_VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
_VAR = re.compile(r"%([A-Za-z][A-Za-z0-9]*)")
_LINK_IDS = re.compile(r"linkId (?:in \(([^)]*)\)|= '([^']+)')")
_QUOTED = re.compile(r"'([^']+)'")


class ScoreShapeError(AssertionError):
    """A score expression none of the range rules covers."""


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low - 1e-9 <= value <= self.high + 1e-9


def _variables(questionnaire: dict[str, Any]) -> dict[str, str]:
    found = {}
    for element in [questionnaire, *walk_items(questionnaire.get("item", []))]:
        for ext in element.get("extension", []):
            if ext["url"] == EXT_VARIABLE:
                found[ext["valueExpression"]["name"]] = ext["valueExpression"]["expression"]
    return found


def resolved(expression: str, variables: dict[str, str]) -> str:
    """The expression with every %variable replaced by its own (resolved) expression."""
    for _ in range(10):
        expanded = _VAR.sub(
            lambda m: f"({variables[m.group(1)]})" if m.group(1) in variables else m.group(0),
            expression)
        if expanded == expression:
            return expression
        expression = expanded
    raise ScoreShapeError("variables nest too deeply")


def _weight(element: dict[str, Any]) -> float | None:
    for holder in (element, element.get("valueCoding", {})):
        ext = extension(holder, EXT_ITEM_WEIGHT)
        if ext:
            return float(ext["valueDecimal"])
    return None


def item_range(item: dict[str, Any], by_weight: bool) -> Range:
    """The values one item contributes: its option weights, or its answer bounds."""
    if by_weight:
        weights = [w for o in item.get("answerOption", []) if (w := _weight(o)) is not None]
        if not weights:
            raise ScoreShapeError(f"item {item['linkId']} has no weighted answerOption")
        return Range(min(weights), max(weights))
    low, high = extension(item, EXT_MIN_VALUE), extension(item, EXT_MAX_VALUE)
    if not low or not high:
        raise ScoreShapeError(f"item {item['linkId']} has no minValue/maxValue")
    value = next(k for k in low if k.startswith("value"))
    return Range(float(low[value]), float(high[value]))


def score_ranges(questionnaire: dict[str, Any]) -> dict[str, Range]:
    """linkId -> range of every numeric (integer or decimal) calculated score of the form."""
    variables = _variables(questionnaire)
    items = {i["linkId"]: i for i in walk_items(questionnaire.get("item", []))}
    out: dict[str, Range] = {}
    for item in items.values():
        ext = extension(item, EXT_CALCULATED_EXPRESSION)
        if not ext or item["type"] not in ("integer", "decimal"):
            continue
        text = resolved(ext["valueExpression"]["expression"], variables)
        link_ids = sorted({
            q for m in _LINK_IDS.finditer(text) for q in _QUOTED.findall(m.group(1) or "")
            + ([m.group(2)] if m.group(2) else [])})
        if not link_ids:
            raise ScoreShapeError(f"{item['linkId']}: the expression reads no item")
        by_weight = ".weight()" in text
        parts = [item_range(items[link], by_weight) for link in link_ids]
        if "/" in text:
            out[item["linkId"]] = Range(min(p.low for p in parts), max(p.high for p in parts))
        elif "where($this > 0).count()" in text:
            out[item["linkId"]] = Range(0, len(parts))
        elif ".sum()" in text:
            out[item["linkId"]] = Range(sum(p.low for p in parts), sum(p.high for p in parts))
        else:
            raise ScoreShapeError(f"{item['linkId']}: no range rule for {text[:120]!r}")
    return out
