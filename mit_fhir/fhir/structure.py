"""Structural checks of a FHIR JSON resource: datatypes, cardinalities, JSON primitive types.

fhir.resources (R4B models) checks datatypes and cardinalities, but its pydantic models coerce
JSON strings into numbers and booleans (`"valueInteger": "5"` passes), while the service reads
the JSON itself, not the model: so the JSON types of the primitives it reads are checked here
too (https://hl7.org/fhir/R4/json.html#primitive). Issues name the element as a FHIRPath
location and never carry the offending value.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from mit_fhir.errors import InvalidRequest, Issue

MAX_ISSUES = 20
# FHIR integer is a signed 32-bit number (https://hl7.org/fhir/R4/datatypes.html#integer).
INT32 = 2**31
_INTEGER_SUFFIXES = ("Integer", "UnsignedInt", "PositiveInt")
_BOOLEAN_FIELDS = frozenset({"required", "repeats", "readOnly", "experimental", "doNotPerform",
                             "active", "deceasedBoolean", "multipleBirthBoolean"})
_INTEGER_FIELDS = frozenset({"maxLength", "frequency", "frequencyMax", "count", "countMax",
                             "rank", "sequence"})
_DECIMAL_FIELDS = frozenset({"period", "periodMax", "duration", "durationMax", "factor"})
# pydantic reads a number as a Unix time where a date belongs ("authored": 5 passed).
_TEMPORAL_SUFFIXES = ("Date", "DateTime", "Instant", "Time", "On")
_TEMPORAL_FIELDS = frozenset({"authored", "date", "issued", "start", "end", "lastUpdated",
                              "recorded", "birthDate"})


# Validator messages (value_error) may quote the value, and pydantic's "Invalid JSON" for a
# string where an object belongs misleads: these say only what is wrong.
_MESSAGES = {"value_error": "the value does not match its FHIR datatype",
             "json_invalid": "must be a JSON object"}


def _kind(key: str) -> str | None:
    """The JSON type a primitive element must have in FHIR JSON, from its name."""
    if key.endswith(_TEMPORAL_SUFFIXES) or key in _TEMPORAL_FIELDS:
        return "temporal"
    if key.endswith("Boolean") or key in _BOOLEAN_FIELDS:
        return "boolean"
    if key.endswith(_INTEGER_SUFFIXES) or key in _INTEGER_FIELDS:
        return "integer"
    if key.endswith("Decimal") or key in _DECIMAL_FIELDS:
        return "decimal"
    return None


def _fits(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "temporal":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "integer":
        return isinstance(value, int) and -INT32 <= value < INT32
    return math.isfinite(value)


def json_type_issues(resource: dict[str, Any], root: str) -> list[Issue]:
    """Issues for numbers and booleans spelled as other JSON types (iterative walk)."""
    issues: list[Issue] = []
    stack: list[tuple[Any, str]] = [(resource, root)]
    while stack and len(issues) < MAX_ISSUES:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if not isinstance(key, str) or key.startswith("_"):
                continue
            here = f"{path}.{key}"
            # JSON null is never a FHIR value; in an array it only aligns primitives with the
            # extensions of their `_name` twin (https://hl7.org/fhir/R4/json.html#primitive).
            if value is None or (isinstance(value, list) and None in value
                                 and f"_{key}" not in node):
                issues.append(Issue(f"{here[len(root) + 1:]} must not be null in FHIR JSON",
                                    code="structure", expression=(here,)))
                continue
            kind = _kind(key)
            if kind is None or isinstance(value, dict | list):
                stack.append((value, here))
            elif not _fits(kind, value):
                what = {"integer": "a 32-bit integer", "decimal": "a finite number",
                        "boolean": "true or false", "temporal": "a string"}[kind]
                issues.append(Issue(f"{here[len(root) + 1:]} must be {what} in FHIR JSON",
                                    code="structure", expression=(here,)))
    return issues


def model_issues(resource: dict[str, Any], model: type[Any], *,
                 tolerate: frozenset[tuple[str, str]] = frozenset()) -> list[Issue]:
    """Issues fhir.resources finds; `tolerate` holds (last path element, error type) pairs."""
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_input=False):
            loc = err["loc"]
            if loc and (str(loc[-1]), err["type"]) in tolerate:
                continue
            msg = _MESSAGES.get(err["type"], err["msg"])
            dotted = ".".join(str(p) for p in loc)
            issues.append(Issue(f"{dotted}: {msg}"[:300], code="structure",
                                expression=(_fhirpath(model.__name__, loc),)))
            if len(issues) == MAX_ISSUES:
                break
        return issues
    return []


def check_structure(resource: dict[str, Any], model: type[Any], *,
                    tolerate: frozenset[tuple[str, str]] = frozenset()) -> None:
    """Validate datatypes, cardinalities and JSON primitive types (400 when broken)."""
    issues = model_issues(resource, model, tolerate=tolerate)
    issues += json_type_issues(resource, model.__name__)
    if issues:
        raise InvalidRequest("the resource is not valid FHIR R4", issues[:MAX_ISSUES])


def _fhirpath(root: str, loc: tuple[int | str, ...]) -> str:
    # pydantic's ("item", 0, "answer", 0, "valueDecimal") -> item[0].answer[0].valueDecimal
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith("_"):
            path += f".{part}"
    return path
