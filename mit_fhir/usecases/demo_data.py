"""The demo data file (mit_fhir/data/demo.json): its schema, its loading, its data-source tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from mit_fhir import paths
from mit_fhir.fhir.extract import CS_DATA_SOURCE
from mit_fhir.vocabulary import FHIR_ID

Resource = dict[str, Any]
DATA_FILE = paths.CONTENT_ROOT / "data" / "demo.json"
# The displays are CodeSystem-data-source.json's own: one home for the wording of each tag.
TAGS = {c["code"]: c["display"] for c in json.loads(
    (paths.PROFILE_DIR / "CodeSystem-data-source.json").read_text(encoding="utf-8"))["concept"]}


class _Reference(Schema):
    class Meta:
        unknown = RAISE

    reference = fields.String(validate=validate.Regexp(rf"^Practitioner/{FHIR_ID.pattern}$"))
    display = fields.String(required=True)


class _Patient(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(rf"^{FHIR_ID.pattern}$"))
    display = fields.String(required=True)


class _Assessment(Schema):
    class Meta:
        unknown = RAISE

    questionnaire = fields.String(required=True)
    score = fields.String(required=True)
    value = fields.Float(required=True)
    authored = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(sorted(TAGS)))
    author = fields.String(load_default="patient", validate=validate.OneOf(["patient",
                                                                           "clinician"]))
    answers = fields.Dict(keys=fields.String(), values=fields.String())
    note = fields.String()


class _Medicine(Schema):
    class Meta:
        unknown = RAISE

    drug = fields.Dict(required=True)
    dailyDoseMg = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))  # noqa: N815
    timesPerDay = fields.Integer(required=True, validate=validate.Range(min=1))  # noqa: N815
    start = fields.String()
    stop = fields.String()
    status = fields.String(required=True, validate=validate.OneOf(["active", "stopped",
                                                                   "on-hold"]))
    reasons = fields.List(fields.String(), load_default=list)


class _Plan(Schema):
    class Meta:
        unknown = RAISE

    date = fields.String(required=True)
    authored = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(sorted(TAGS)))
    note = fields.String()
    medicines = fields.List(fields.Nested(_Medicine), required=True,
                            validate=validate.Length(min=1))


class _ScheduledForm(Schema):
    class Meta:
        unknown = RAISE

    questionnaire = fields.String(required=True)
    every = fields.Integer(required=True, validate=validate.Range(min=1))
    unit = fields.String(required=True, validate=validate.OneOf(["d", "wk", "mo"]))
    start = fields.Date()  # else the schedule's startDaysBeforeLoad
    end = fields.Date()
    count = fields.Integer(validate=validate.Range(min=1))


class _Schedule(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9\-]{1,32}$"))
    title = fields.String(required=True)
    created = fields.String()
    startDaysBeforeLoad = fields.Integer(validate=validate.Range(min=0))  # noqa: N815
    status = fields.String(required=True, validate=validate.OneOf(["active", "completed"]))
    source = fields.String(required=True, validate=validate.OneOf(sorted(TAGS)))
    note = fields.String()
    activities = fields.List(fields.Nested(_ScheduledForm), required=True,
                             validate=validate.Length(min=1))


class DemoSchema(Schema):
    """mit_fhir/data/demo.json."""

    class Meta:
        unknown = RAISE

    description = fields.String()
    patient = fields.Nested(_Patient, required=True)
    clinician = fields.Nested(_Reference, required=True)
    assessments = fields.List(fields.Nested(_Assessment), required=True)
    medicationPlans = fields.List(fields.Nested(_Plan), required=True)  # noqa: N815
    schedules = fields.List(fields.Nested(_Schedule), load_default=list)


class DemoError(ValueError):
    """The demo data do not fit the catalogue (a form changed): nothing further is loaded."""


def demo_data(path: Path = DATA_FILE) -> Resource:
    """The validated demo data file."""
    try:
        data: Resource = DemoSchema().load(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise DemoError(f"{path.name}: {exc}") from None
    return data


def source_tag(source: str) -> Resource:
    """The meta.tag saying whether a value is the case report's or synthetic."""
    return {"system": CS_DATA_SOURCE, "code": source, "display": TAGS[source]}


