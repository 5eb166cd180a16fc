"""Load, validate and merge the psychometric parameter file (profiles/psychometrics.json).

The file holds one entry per (questionnaire id, score linkId); every number is an object
``{"value": ..., "citation": ..., "verified": ..., "note": ...}``. A site may give an override
file with the same shape: its instruments and scores are merged field by field over the
shipped ones (a field given there replaces the shipped field whole, citation included).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from mit_fhir.paths import PSYCHOMETRICS_FILE
from mit_fhir.psychometrics.reliable_change import (
    CutoffType,
    Direction,
    GroupStatistics,
    Method,
    ParameterError,
    ReliableChangeParameters,
)

DEFAULT_FILE = PSYCHOMETRICS_FILE

NUMBER_FIELDS = (
    "reliability",
    "sd",
    "critical_difference",
    "critical_difference_functional",
    "cutoff_value",
    "clinical_mean",
    "clinical_sd",
    "functional_mean",
    "functional_sd",
)
POSITIVE_FIELDS = frozenset(NUMBER_FIELDS) - {
    "reliability",
    "cutoff_value",
    "clinical_mean",
    "functional_mean",
}


class ParameterFileError(ParameterError):
    """The parameter file (or a site override) is unreadable or invalid."""


class CitedNumberSchema(Schema):
    class Meta:
        unknown = RAISE

    value = fields.Float(required=True, allow_nan=False)
    citation = fields.String(required=True, validate=validate.Length(min=1))
    verified = fields.Boolean(load_default=True)
    note = fields.String()


class ScoreSchema(Schema):
    class Meta:
        unknown = RAISE

    direction = fields.Enum(Direction, by_value=True, required=True)
    cutoff_type = fields.Enum(CutoffType, by_value=True)
    default_method = fields.Enum(Method, by_value=True, load_default=Method.JACOBSON_TRUAX)
    note = fields.String()
    reliability = fields.Nested(CitedNumberSchema)
    sd = fields.Nested(CitedNumberSchema)
    critical_difference = fields.Nested(CitedNumberSchema)
    critical_difference_functional = fields.Nested(CitedNumberSchema)
    cutoff_value = fields.Nested(CitedNumberSchema)
    clinical_mean = fields.Nested(CitedNumberSchema)
    clinical_sd = fields.Nested(CitedNumberSchema)
    functional_mean = fields.Nested(CitedNumberSchema)
    functional_sd = fields.Nested(CitedNumberSchema)

    @validates_schema
    def check_ranges(self, data: dict[str, Any], **_: Any) -> None:
        reliability = data.get("reliability")
        if reliability is not None and not 0 < reliability["value"] < 1:
            raise ValidationError("must be in (0, 1)", "reliability")
        for name in POSITIVE_FIELDS:
            number = data.get(name)
            if number is not None and number["value"] <= 0:
                raise ValidationError("must be greater than 0", name)


class InstrumentSchema(Schema):
    class Meta:
        unknown = RAISE

    default_score = fields.String(required=True)
    scores = fields.Dict(keys=fields.String(), values=fields.Nested(ScoreSchema), required=True)

    @validates_schema
    def check_default(self, data: dict[str, Any], **_: Any) -> None:
        if data["default_score"] not in data["scores"]:
            raise ValidationError("names no score of this instrument", "default_score")


class ParameterFileSchema(Schema):
    class Meta:
        unknown = RAISE

    description = fields.String()
    version = fields.String()
    instruments = fields.Dict(
        keys=fields.String(), values=fields.Nested(InstrumentSchema), required=True
    )


class OverrideFileSchema(ParameterFileSchema):
    """An override may give a subset of a score: its direction is then the shipped one."""


@dataclass(frozen=True)
class CitedValue:
    """One number with its provenance."""

    value: float
    citation: str
    verified: bool = True
    note: str | None = None


@dataclass(frozen=True)
class ScoreParameters:
    """Typed parameters of one score, as read from the file."""

    questionnaire_id: str
    link_id: str
    direction: Direction
    default_method: Method
    cutoff_type: CutoffType | None = None
    values: Mapping[str, CitedValue] = field(default_factory=dict)
    note: str | None = None

    def number(self, name: str) -> float | None:
        cited = self.values.get(name)
        return None if cited is None else cited.value

    def to_parameters(self, group: GroupStatistics | None = None) -> ReliableChangeParameters:
        """The maths-layer parameters; a clear error when the file lacks what is needed."""
        try:
            return ReliableChangeParameters(
                direction=self.direction,
                cutoff_type=self.cutoff_type,
                group=group,
                **{name: self.number(name) for name in NUMBER_FIELDS},
            )
        except ParameterError as exc:
            raise ParameterError(f"{self.questionnaire_id}/{self.link_id}: {exc}") from exc


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested messages as ``a.b.c: message`` lines naming the bad key."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            # Dict fields nest their value errors under "value": not a key of the file.
            wrapper = key == "value" and isinstance(value, dict)
            path = prefix if wrapper else (f"{prefix}.{key}" if prefix else str(key))
            lines.extend(_flatten(value, path))
        return lines
    if isinstance(messages, list):
        return [f"{prefix}: {message}" for message in messages]
    return [f"{prefix}: {messages}"]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ParameterFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ParameterFileError(f"{path}: not valid JSON ({exc})") from exc


def _validate(raw: Any, path: Path, schema: Schema) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema.load(raw)
    except ValidationError as exc:
        detail = "; ".join(_flatten(exc.messages))
        raise ParameterFileError(f"{path}: {detail}") from exc
    return result


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for instrument_id, instrument in override.get("instruments", {}).items():
        target = merged["instruments"].setdefault(instrument_id, {"scores": {}})
        if "default_score" in instrument:
            target["default_score"] = instrument["default_score"]
        for link_id, score in instrument.get("scores", {}).items():
            target["scores"].setdefault(link_id, {}).update(copy.deepcopy(score))
    return merged


def _lenient_override(raw: Any) -> Any:
    """An override score may omit ``direction``; fill it so the schema can check the rest."""
    if not isinstance(raw, dict):
        return raw
    checked = copy.deepcopy(raw)
    for instrument in (checked.get("instruments") or {}).values():
        if not isinstance(instrument, dict):
            continue
        scores = instrument.get("scores") or {}
        instrument.setdefault("default_score", next(iter(scores), ""))
        for score in scores.values():
            if isinstance(score, dict):
                score.setdefault("direction", Direction.LOWER_IS_BETTER.value)
    return checked


class ParameterSet:
    """All scores of the merged file, keyed by (questionnaire id, score linkId)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._instruments: dict[str, Any] = data["instruments"]

    def instruments(self) -> list[str]:
        return sorted(self._instruments)

    def default_score(self, questionnaire_id: str) -> str:
        return str(self._instrument(questionnaire_id)["default_score"])

    def get(self, questionnaire_id: str, link_id: str | None = None) -> ScoreParameters:
        instrument = self._instrument(questionnaire_id)
        link_id = link_id or instrument["default_score"]
        score = instrument["scores"].get(link_id)
        if score is None:
            known = ", ".join(sorted(instrument["scores"]))
            raise ParameterError(
                f"no parameters for score {link_id!r} of {questionnaire_id!r} (known: {known})"
            )
        values = {
            name: CitedValue(
                value=number["value"],
                citation=number["citation"],
                verified=number.get("verified", True),
                note=number.get("note"),
            )
            for name in NUMBER_FIELDS
            if (number := score.get(name)) is not None
        }
        return ScoreParameters(
            questionnaire_id=questionnaire_id,
            link_id=str(link_id),
            direction=score["direction"],
            default_method=score.get("default_method", Method.JACOBSON_TRUAX),
            cutoff_type=score.get("cutoff_type"),
            values=values,
            note=score.get("note"),
        )

    def _instrument(self, questionnaire_id: str) -> Any:
        instrument = self._instruments.get(questionnaire_id)
        if instrument is None:
            known = ", ".join(self.instruments())
            raise ParameterError(
                f"no psychometric parameters for instrument {questionnaire_id!r} (known: {known})"
            )
        return instrument


def load_parameters(
    override: Path | str | None = None, base: Path | str = DEFAULT_FILE
) -> ParameterSet:
    """Read the shipped file, merge a site override over it, validate both and the result."""
    base_path = Path(base)
    base_raw = _read(base_path)
    _validate(base_raw, base_path, ParameterFileSchema())
    merged_raw = base_raw
    if override is not None:
        override_path = Path(override)
        override_raw = _read(override_path)
        _validate(_lenient_override(override_raw), override_path, OverrideFileSchema())
        merged_raw = _merge(base_raw, override_raw)
        return ParameterSet(_validate(merged_raw, override_path, ParameterFileSchema()))
    return ParameterSet(_validate(merged_raw, base_path, ParameterFileSchema()))
