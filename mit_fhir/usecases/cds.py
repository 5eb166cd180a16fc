"""CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): the request schema, and cards built from a
patient's outcomes timeline (mit_fhir/usecases/timeline.py). No Flask here:
mit_fhir/api/cds_hooks.py
serves it.

One card per instrument whose score changed since the patient's baseline (two assessments or
more): indicator `warning` for a reliable deterioration (categories deteriorated, harmed) or a
band that got worse with no reliable-change verdict, otherwise `info`. And one card per
instrument whose most recent assessment raised risk alerts (answers its Questionnaire marks
critical, mit_fhir/fhir/alerts.py; e.g. PHQ-9 item 9 above 0, a C-SSRS moderate or high triage),
with the alerts' most severe level as its indicator (`warning` or `critical`), even at the
first assessment. Values that are synthetic demonstration data are marked so in the summary.

And one card per form with an overdue Task (mit_fhir/usecases/due.py), beside that form's change
card:
"DERS overdue by 3 weeks (last 2020-06-01)". `info` for an outcome measure, `warning` for a
risk screen (a form marking answers critical): a suicide-risk reassessment that did not
happen is worth interrupting for, a late symptom scale is not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from mit_fhir.fhir.alerts import LEVELS as ALERT_LEVELS
from mit_fhir.fhir.search import date_key
from mit_fhir.vocabulary import FHIR_ID as FHIR_ID_PATTERN

Resource = dict[str, Any]
SERVICE_ID = "mit-outcomes"
HOOK = "patient-view"
SUMMARY_MAX = 140  # characters, CDS Hooks Card.summary
WORSE_CATEGORIES = frozenset({"deteriorated", "harmed"})
_PHRASES = {
    "recovered": "reliable improvement, recovered",
    "improved": "reliable improvement",
    "unchanged": "no reliable change",
    "deteriorated": "reliable deterioration",
    "harmed": "reliable deterioration into the clinical range",
}
# The FHIR id of fhir/references, anchored with \Z: marshmallow's Regexp uses match(), and a
# `$` there would let "B\n" through.
FHIR_ID = FHIR_ID_PATTERN.pattern + r"\Z"


def discovery() -> Resource:
    """The discovery document (GET /cds-services)."""
    return {"services": [{
        "hook": HOOK,
        "id": SERVICE_ID,
        "title": "MIT outcomes",
        "description": "Change since baseline of the patient's MIT outcome scores (DERS, "
                       "SCL-90-R, BPD criteria, PHQ-9, GAD-7, BSL-23, C-SSRS screener...) with "
                       "reliable-change verdicts, the forms overdue, and a link to the "
                       "outcomes view beside the medication timeline.",
        "usageRequirements": "Send a bearer JWT from the hospital's identity provider granting "
                             "Observation search for the patient (e.g. user/Observation.rs); "
                             "with Task search too (user/Task.rs) the cards say which forms "
                             "are overdue.",
    }]}


# --- the request -----------------------------------------------------------------------------

class FhirAuthorizationSchema(Schema):
    """Accepted as the specification defines it, never used or stored: the service reads its own
    store, not the EHR's FHIR server."""

    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True, validate=validate.Range(min=0))
    scope = fields.String(required=True)
    subject = fields.String(required=True)
    patient = fields.String()


class PatientViewContextSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    userId = fields.String(required=True, validate=validate.Length(min=1, max=256))  # noqa: N815
    patientId = fields.String(required=True, validate=validate.Regexp(FHIR_ID))  # noqa: N815
    encounterId = fields.String(validate=validate.Regexp(FHIR_ID))  # noqa: N815


class HookRequestSchema(Schema):
    """A CDS Hooks request to the patient-view service."""

    class Meta:
        unknown = EXCLUDE  # `extension` and fields of later versions are ignored

    hook = fields.String(required=True, validate=validate.Equal(HOOK))
    hookInstance = fields.String(required=True, validate=validate.Length(min=1, max=256))  # noqa: N815
    fhirServer = fields.Url(require_tld=False, schemes={"http", "https"})  # noqa: N815
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema)  # noqa: N815
    context = fields.Nested(PatientViewContextSchema, required=True)
    prefetch = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))

    @validates_schema
    def authorization_needs_server(self, data: Resource, **_: Any) -> None:
        if "fhirAuthorization" in data and "fhirServer" not in data:
            raise ValidationError("fhirAuthorization requires fhirServer", "fhirAuthorization")


def validation_messages(exc: ValidationError) -> list[str]:
    """marshmallow's messages as 'field.path: message' lines (field names, never values)."""
    lines: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            lines.extend(f"{path}: {m}" for m in node if isinstance(m, str))
            for m in node:
                if not isinstance(m, str):
                    walk(m, path)
        else:
            lines.append(f"{path}: {node}")

    walk(exc.messages, "")
    return lines


# --- the cards -------------------------------------------------------------------------------

def _value(point: Resource) -> str:
    number = point["value"]
    text = f"{int(number)}" if float(number).is_integer() else f"{number:g}"
    return f"{text} (synthetic)" if point.get("synthetic") else text


def _band_words(display: str | None, code: str) -> str:
    words = (display or code).split(" (")[0]
    return words[:1].lower() + words[1:] if words[1:2].islower() else words


def _band_change(band: Resource | None, marked: bool = True) -> tuple[str, str | None] | None:
    """(phrase, interpretation) of the latest band against the baseline band; `marked` says
    whether a synthetic latest band needs its own label (not when the value beside it has one)."""
    if not band or len(band["points"]) < 2:
        return None
    first, last = band["points"][0], band["points"][-1]
    if first["code"] == last["code"]:
        return f"still {_band_words(last['display'], last['code'])}", None
    mark = " (synthetic)" if marked and last.get("synthetic") else ""
    return (f"{_band_words(first['display'], first['code'])} -> "
            f"{_band_words(last['display'], last['code'])}{mark}", last.get("interpretation"))


def _summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1].rstrip() + "\u2026"


def _detail(instrument: Resource) -> str:
    lines = []
    points = instrument["points"]
    if points:
        first, last = points[0], points[-1]
        lines.append(f"Baseline {_value(first)} on {first['date'][:10]}, latest {_value(last)} "
                     f"on {last['date'][:10]} ({len(points)} assessments).")
        if last.get("index") is not None:
            lines.append(f"Reliable change index {last['index']:.2f}.")
        for cutoff in instrument["cutoffs"]:
            caveat = "" if cutoff["verified"] else " (its norms are not all verified)"
            lines.append(f"Clinical cutoff {cutoff['value']:g}{caveat}.")
    band = instrument.get("band")
    if band and band["points"]:
        latest = band["points"][-1]
        lines.append(f"Latest band: {latest['display'] or latest['code']} "
                     f"({latest['date'][:10]}).")
    if any(p.get("synthetic") for p in points + (band["points"] if band else [])):
        lines.append("Includes synthetic demonstration data (not from a patient).")
    return " ".join(lines)


def _card(instrument: Resource, hook_instance: str, launch_url: str) -> Resource | None:
    points, band = instrument["points"], instrument.get("band")
    label = instrument["label"]
    band_points = band["points"] if band else []
    latest_band = band_points[-1] if band_points else None
    topic: Resource = instrument.get("code") or (band or {}).get("code") or {}
    warning = False
    if len(points) >= 2:
        first, last = points[0], points[-1]
        head = f"{label} {_value(first)} -> {_value(last)} since {first['date'][:7]}"
        if last.get("category"):
            phrase = _PHRASES.get(last["category"], last["category"])
            warning = warning or last["category"] in WORSE_CATEGORIES
        elif (change := _band_change(band, marked=False)) is not None:
            phrase, interpretation = change
            warning = warning or interpretation == "W"
        else:
            phrase = "no reliable-change parameters for this score"
        summary = f"{head}: {phrase}"
    elif (change := _band_change(band)) is not None and latest_band is not None:
        phrase, interpretation = change
        warning = warning or interpretation == "W"
        summary = f"{label} since {band_points[0]['date'][:7]}: {phrase}"
    else:
        return None
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL,
                               f"{hook_instance}/{instrument['questionnaire']['url']}")),
        "summary": _summary(summary),
        "detail": _detail(instrument),
        "indicator": "warning" if warning else "info",
        "source": {"label": "MIT outcomes (mit-fhir)", "topic": dict(topic)},
        "links": [{"label": "Open the outcomes view", "url": launch_url, "type": "smart"}],
    }


def _alert_card(instrument: Resource, hook_instance: str, launch_url: str) -> Resource | None:
    """The card of the risk alerts of the instrument's most recent assessment, if any."""
    band = instrument.get("band") or {}
    # By instant, as the timeline orders: the strings' offsets differ between senders (an EHR's
    # +01:00, the form page's Z), so "2024-03-02T00:30+14:00" is earlier than "2024-03-01T12:00Z".
    latest = max(instrument["points"] + band.get("points", []),
                 key=lambda p: date_key(p["date"]) or "", default=None)
    if latest is None or not latest.get("alerts"):
        return None
    found = latest["alerts"]
    level = max((a["level"] for a in found), key=ALERT_LEVELS.index)
    first = max(found, key=lambda a: ALERT_LEVELS.index(a["level"]))
    mark = " (synthetic)" if latest.get("synthetic") else ""
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    lines = [f"{a['level'].capitalize()}: \u201c{a['item']}\u201d answered "
             f"\u201c{a['answer']}\u201d. {a['message']}" for a in found]
    lines.append(f"Assessment of {latest['date'][:10]}{mark}.")
    topic: Resource = instrument.get("code") or band.get("code") or {}
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{hook_instance}/alerts/"
                                                   f"{instrument['questionnaire']['url']}")),
        "summary": _summary(f"{instrument['label']} {latest['date'][:10]}{mark}: "
                            f"{first['message']}{more}"),
        "detail": " ".join(lines),
        "indicator": level,
        "source": {"label": "MIT outcomes (mit-fhir)", "topic": dict(topic)},
        "links": [{"label": "Open the outcomes view", "url": launch_url, "type": "smart"}],
    }


def _due_words(row: Resource) -> str:
    last = row.get("last")
    if last is None:
        return "never completed"
    return f"last {last['date'][:10]}" + (", synthetic" if last.get("synthetic") else "")


def _due_card(row: Resource, topic: Resource, hook_instance: str,
              launch_url: str) -> Resource | None:
    """The card of a form whose Task is overdue (a row of due.summarise), if it is."""
    if not row["overdue"]:
        return None
    late = row["overdue"][0]  # the longest overdue
    who = ("the patient (self-report)" if row["owner"] == "patient" else "the clinician")
    lines = [f"{row['questionnaire']['title']}: due {late['due'][:10]}, to be completed by "
             f"{who}."]
    if len(row["overdue"]) > 1:
        lines.append(f"{len(row['overdue'])} open Tasks for this form are overdue.")
    last = row.get("last")
    if last is None:
        lines.append("Never completed.")
    else:
        mark = " (synthetic demonstration data, not from a patient)" if last["synthetic"] else ""
        lines.append(f"Last completed {last['date'][:10]}{mark}.")
    if row.get("riskScreen"):
        lines.append("This form screens for risk: the reassessment is overdue.")
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL,
                               f"{hook_instance}/due/{row['questionnaire']['url']}")),
        "summary": _summary(f"{row['label']} overdue by {late['by']} ({_due_words(row)})"),
        "detail": " ".join(lines),
        "indicator": "warning" if row.get("riskScreen") else "info",
        "source": {"label": "MIT outcomes (mit-fhir)", "topic": dict(topic)},
        "links": [{"label": "Open the outcomes view", "url": launch_url, "type": "smart"}],
    }


def outcome_cards(timeline: Resource, hook_instance: str, launch_url: str,
                  due: Iterable[Resource] = ()) -> Resource:
    """The CDS Hooks response for a patient's timeline document and what is due (rows of
    mit_fhir.usecases.due.summarise): {"cards": [...]}, the risk alerts first (CDS Hooks leaves the
    order to the service; the EHR shows them in order), then per form its change card and its
    overdue card, then the overdue forms never scored."""
    alerts = [c for i in timeline["instruments"]
              if (c := _alert_card(i, hook_instance, launch_url)) is not None]
    alerts.sort(key=lambda c: -ALERT_LEVELS.index(c["indicator"]))
    due_of = {row["questionnaire"]["url"]: row for row in due}
    cards = []
    for instrument in timeline["instruments"]:
        if (card := _card(instrument, hook_instance, launch_url)) is not None:
            cards.append(card)
        row = due_of.pop(instrument["questionnaire"]["url"], None)
        topic = instrument.get("code") or (instrument.get("band") or {}).get("code") or {}
        if row is not None and (card := _due_card(row, topic, hook_instance,
                                                  launch_url)) is not None:
            cards.append(card)
    cards += [c for row in due_of.values()
              if (c := _due_card(row, {}, hook_instance, launch_url)) is not None]
    return {"cards": alerts + cards}
