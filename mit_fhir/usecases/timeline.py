"""A patient's outcomes over time beside their medication, as one JSON document (no Flask).

`patient_timeline()` reads the stored score Observations (values and the reliable-change flags
the service computed when they were stored) and the medication plan's history, merges in the
EHR's MedicationRequests when given, and returns the document `TimelineSchema` describes. The
psychiatrist's page and the CDS Hooks service consume it; `GET /outcomes/<patient>` serves it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Connection

from mit_fhir.fhir import alerts
from mit_fhir.fhir.answer_weights import score_range
from mit_fhir.fhir.change import EXT_BAND_CHANGE
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.extract import CS_DATA_SOURCE, data_source_tags
from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.medication_plan import medication_requests
from mit_fhir.fhir.plans import PlanError
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.fhir.search import date_key
from mit_fhir.psychometrics import reliable_change as rc
from mit_fhir.psychometrics.parameters import ParameterSet, load_parameters
from mit_fhir.store import repository
from mit_fhir.store.repository import Store
from mit_fhir.usecases.care_plans import IDENTIFIER_SYSTEMS
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.vocabulary import (
    EXT_CALCULATED_EXPRESSION,
    EXT_RELIABLE_CHANGE,
    RXNORM,
    extension,
    token,
)

if TYPE_CHECKING:
    from mit_fhir.usecases.context import Context

Resource = dict[str, Any]
MEDICATION_PLAN = "medication-plan"
CUTOFF_FIELDS = ("cutoff_value", "clinical_mean", "clinical_sd", "functional_mean", "functional_sd")
_WORDS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_ABBREVIATION = re.compile(r"\(([A-Z][A-Za-z0-9 -]*)\)\s*$")


# --- the document ----------------------------------------------------------------------------

class CodingSchema(Schema):
    system = fields.String()
    code = fields.String(required=True)
    display = fields.String()


class QuestionnaireRefSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    title = fields.String(required=True)


class RangeSchema(Schema):
    low = fields.Float(required=True)
    high = fields.Float(required=True)


class CutoffSchema(Schema):
    value = fields.Float(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["published", "a", "b", "c"]))
    functionalSide = fields.String(required=True, validate=validate.OneOf(["below", "above"]))  # noqa: N815
    verified = fields.Boolean(required=True)
    citations = fields.List(fields.String(), required=True)


class ReliableChangeRuleSchema(Schema):
    method = fields.String(required=True)
    criticalValue = fields.Float(required=True)  # noqa: N815
    criticalDifference = fields.Float(allow_none=True, required=True)  # noqa: N815
    reliability = fields.Float(allow_none=True, required=True)
    sd = fields.Float(allow_none=True, required=True)
    sediff = fields.Float(allow_none=True, required=True)
    verified = fields.Boolean(required=True)
    citations = fields.List(fields.String(), required=True)


class AlertSchema(Schema):
    level = fields.String(required=True, validate=validate.OneOf(["warning", "critical"]))
    item = fields.String(required=True)
    answer = fields.String(required=True)
    message = fields.String(required=True)


class PointSchema(Schema):
    date = fields.String(required=True)
    value = fields.Float(required=True)
    observation = fields.String(required=True)
    category = fields.String(allow_none=True, required=True)
    categoryDisplay = fields.String(allow_none=True, required=True)  # noqa: N815
    reliable = fields.Boolean(allow_none=True, required=True)
    index = fields.Float(allow_none=True, required=True)
    interpretation = fields.String(allow_none=True, required=True)
    synthetic = fields.Boolean(required=True)
    source = fields.String(allow_none=True, required=True)
    alerts = fields.List(fields.Nested(AlertSchema), required=True)


class BandPointSchema(Schema):
    date = fields.String(required=True)
    code = fields.String(required=True)
    display = fields.String(allow_none=True, required=True)
    baseline = fields.Nested(CodingSchema, allow_none=True, required=True)
    observation = fields.String(required=True)
    interpretation = fields.String(allow_none=True, required=True)
    synthetic = fields.Boolean(required=True)
    source = fields.String(allow_none=True, required=True)
    alerts = fields.List(fields.Nested(AlertSchema), required=True)


class BandSchema(Schema):
    code = fields.Nested(CodingSchema, required=True)
    options = fields.List(fields.Nested(CodingSchema), required=True)
    points = fields.List(fields.Nested(BandPointSchema), required=True)


class InstrumentSchema(Schema):
    questionnaire = fields.Nested(QuestionnaireRefSchema, required=True)
    label = fields.String(required=True)
    code = fields.Nested(CodingSchema, allow_none=True, required=True)
    unit = fields.String(allow_none=True, required=True)
    scoreType = fields.String(allow_none=True, required=True,  # noqa: N815
                              validate=validate.OneOf(["integer", "decimal"]))
    range = fields.Nested(RangeSchema, allow_none=True, required=True)
    direction = fields.String(allow_none=True, required=True)
    cutoffs = fields.List(fields.Nested(CutoffSchema), required=True)
    reliableChange = fields.Nested(ReliableChangeRuleSchema, allow_none=True,  # noqa: N815
                                   required=True)
    points = fields.List(fields.Nested(PointSchema), required=True)
    band = fields.Nested(BandSchema, allow_none=True, required=True)


class PeriodSchema(Schema):
    start = fields.String(allow_none=True, required=True)
    stop = fields.String(allow_none=True, required=True)
    dose = fields.String(allow_none=True, required=True)
    status = fields.String(required=True)
    ended = fields.String(allow_none=True, required=True,
                          validate=validate.OneOf(["dose-changed", "stopped", "not-in-plan"]))
    request = fields.String(allow_none=True, required=True)
    synthetic = fields.Boolean(required=True)
    source = fields.String(allow_none=True, required=True)


class MedicationSchema(Schema):
    drug = fields.String(required=True)
    code = fields.Nested(CodingSchema, allow_none=True, required=True)
    source = fields.String(required=True, validate=validate.OneOf(["ehr", "mit-plan"]))
    periods = fields.List(fields.Nested(PeriodSchema), required=True)


class TimelineSchema(Schema):
    """The document patient_timeline() returns (and GET /outcomes/<patient> serves)."""

    patient = fields.String(required=True)
    instruments = fields.List(fields.Nested(InstrumentSchema), required=True)
    medications = fields.List(fields.Nested(MedicationSchema), required=True)
    ehrMedications = fields.Boolean(required=True)  # noqa: N815
    warnings = fields.List(fields.String(), required=True)


# --- entry points ----------------------------------------------------------------------------

def timeline_for(context: Context, patient_id: str,
                 medications_from_ehr: list[Resource] | None = None,
                 warnings: list[str] | None = None) -> Resource:
    """patient_timeline() with an application's store, catalogue and psychometric parameters."""
    return patient_timeline(context.store, context.catalogue, patient_id, medications_from_ehr,
                            context.scorer.parameters, warnings, context.scorer.plan)


def patient_timeline(
    source: Store | Connection,
    catalogue: Catalogue,
    patient_id: str,
    medications_from_ehr: list[Resource] | None = None,
    parameters: ParameterSet | None = None,
    warnings: list[str] | None = None,
    plan_for: Callable[[Resource], ScoringPlan] = ScoringPlan,
) -> Resource:
    """The patient's scores per instrument and their medication rows (see TimelineSchema).

    `medications_from_ehr` are MedicationRequests read from the EHR
    (mit_fhir.ehr.readback.medication_requests); the EHR's copies of the MIT plan's own requests
    (synced by this service, recognised by its identifier) are left out, so no drug shows twice.
    `parameters` default to the shipped profiles/psychometrics.json; `plan_for` gives a form's
    compiled scoring (pass Scorer.plan to reuse the application's compiled plans).
    """
    params = parameters if parameters is not None else load_parameters()
    patient = f"Patient/{patient_id}"
    with _connection(source) as conn:
        observations = repository.search(
            conn, "Observation", [Criterion("patient", "eq", (patient,)),
                                  Criterion("status:code", "eq", ("final",))], sort="date")
        form = catalogue.get(MEDICATION_PLAN)
        plans = repository.search(conn, "QuestionnaireResponse", [
            Criterion("patient", "eq", (patient,)),
            Criterion("questionnaire", "eq", (str((form or {}).get("url")),))], sort="date")
        plan_rows, ours = _plan_medications(conn, catalogue, plans)
    ehr_rows = _ehr_medications(medications_from_ehr or [], ours)
    document = {
        "patient": patient_id,
        "instruments": with_alerts(_instruments(catalogue, params, observations, plan_for),
                                   observations),
        "medications": plan_rows + ehr_rows,
        "ehrMedications": medications_from_ehr is not None,
        "warnings": list(warnings or []),
    }
    dumped: Resource = TimelineSchema().dump(document)
    return dumped


def with_alerts(instruments: list[Resource], observations: list[Resource]) -> list[Resource]:
    """Every point gets the risk alerts of its response, as recorded on the response's panel
    Observation (mit_fhir/fhir/alerts.py); [] when it raised none."""
    response_of: dict[str, str] = {}
    by_response: dict[str, list[Resource]] = {}
    for obs in observations:
        responses = [r.get("reference") for r in obs.get("derivedFrom", ())
                     if str(r.get("reference", "")).startswith("QuestionnaireResponse/")]
        if not responses:
            continue
        response_of[f"Observation/{obs['id']}"] = str(responses[0])
        if "hasMember" in obs:
            by_response[str(responses[0])] = [a.as_json() for a in alerts.recorded(obs)]
    for instrument in instruments:
        for point in instrument["points"] + (instrument.get("band") or {}).get("points", []):
            point["alerts"] = by_response.get(response_of.get(point["observation"], ""), [])
    return instruments


@contextmanager
def _connection(source: Store | Connection) -> Iterator[Connection]:
    if isinstance(source, Store):
        with source.transaction() as conn:
            yield conn
    else:
        yield source


# --- scores ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ScoreDef:
    questionnaire: Resource
    item: Resource

    @property
    def coding(self) -> Resource:
        return dict(self.item["code"][0])


def _score_items(catalogue: Catalogue) -> dict[str, _ScoreDef]:
    """'system|code' of each extracted calculated item -> where it is defined."""
    found: dict[str, _ScoreDef] = {}
    for q in catalogue:
        for item in walk_items(q.get("item", [])):
            if extension(item, EXT_CALCULATED_EXPRESSION) and item.get("code"):
                c = item["code"][0]
                found.setdefault(f"{c.get('system', '')}|{c['code']}", _ScoreDef(q, item))
    return found


def _key(obs: Resource) -> str | None:
    codings = obs.get("code", {}).get("coding") or []
    return f"{codings[0].get('system', '')}|{codings[0]['code']}" if codings else None


def _source(res: Resource) -> tuple[bool, str | None]:
    codes = [t.get("code") for t in data_source_tags(res)]
    return "synthetic" in codes, (codes[0] if codes else None)


def _interpretation(obs: Resource) -> str | None:
    for concept in obs.get("interpretation", []):
        for coding in concept.get("coding", []):
            return str(coding.get("code"))
    return None


def _change(obs: Resource) -> dict[str, Any]:
    ext = extension(obs, EXT_RELIABLE_CHANGE)
    parts = {p["url"]: p for p in (ext or {}).get("extension", [])}
    category = parts.get("category", {}).get("valueCoding", {})
    return {
        "category": category.get("code"),
        "categoryDisplay": category.get("display"),
        "reliable": parts.get("reliable", {}).get("valueBoolean"),
        "index": parts.get("index", {}).get("valueDecimal"),
    }


def _point(obs: Resource) -> Resource:
    synthetic, origin = _source(obs)
    return {"date": obs["effectiveDateTime"], "value": obs["valueQuantity"]["value"],
            "observation": f"Observation/{obs['id']}", **_change(obs),
            "interpretation": _interpretation(obs), "synthetic": synthetic, "source": origin}


def _band_baseline(obs: Resource) -> Resource | None:
    """The baseline's band the service stored beside this band (the band-change extension)."""
    ext = extension(obs, EXT_BAND_CHANGE)
    parts = {p["url"]: p for p in (ext or {}).get("extension", [])}
    coding = parts.get("baselineValue", {}).get("valueCoding")
    return {k: coding[k] for k in ("system", "code", "display") if k in coding} \
        if coding else None


def _band_point(obs: Resource) -> Resource:
    synthetic, origin = _source(obs)
    coding = obs["valueCodeableConcept"]["coding"][0]
    return {"date": obs["effectiveDateTime"], "code": coding["code"],
            "display": coding.get("display"), "baseline": _band_baseline(obs),
            "observation": f"Observation/{obs['id']}",
            "interpretation": _interpretation(obs) if extension(obs, EXT_BAND_CHANGE) else None,
            "synthetic": synthetic, "source": origin}


def _headline(questionnaire: Resource, params: ParameterSet) -> Resource | None:
    """The instrument's main numeric score: the parameter file's default score, else the first
    numeric extracted score of the form."""
    qid = questionnaire["id"]
    wanted = params.default_score(qid) if qid in params.instruments() else None
    for item in walk_items(questionnaire.get("item", [])):
        numeric = item.get("type") in ("integer", "decimal") and not item.get("answerOption")
        if extension(item, EXT_CALCULATED_EXPRESSION) and numeric and item.get("code") and (
                wanted is None or item["linkId"] == wanted):
            return item
    return None


def _band_item(questionnaire: Resource) -> Resource | None:
    for item in walk_items(questionnaire.get("item", [])):
        if extension(item, EXT_CALCULATED_EXPRESSION) and item.get("answerOption") \
                and item.get("code"):
            return item
    return None


def _cutoffs(params: ParameterSet, qid: str, link_id: str) -> list[Resource]:
    if qid not in params.instruments():
        return []
    try:
        score = params.get(qid, link_id)
        maths = score.to_parameters()
        value = rc.cutoff(maths)
    except rc.ParameterError:
        return []
    used = [score.values[n] for n in CUTOFF_FIELDS if n in score.values
            and (n == "cutoff_value") == (maths.cutoff_value is not None)]
    lower_better = maths.direction is rc.Direction.LOWER_IS_BETTER
    return [{
        "value": round(value, 6),
        "kind": "published" if maths.cutoff_value is not None else str(maths.cutoff_type),
        "functionalSide": "below" if lower_better else "above",
        "verified": all(v.verified for v in used),
        "citations": list(dict.fromkeys(v.citation for v in used)),
    }]


def _rule(params: ParameterSet, qid: str, link_id: str) -> Resource | None:
    """How the stored verdicts judged reliable change: a published critical difference, or
    the index's critical value with the reliability and SD it divides by (S_diff)."""
    if qid not in params.instruments():
        return None
    try:
        score = params.get(qid, link_id)
        maths = score.to_parameters()
    except rc.ParameterError:
        return None
    published = maths.uses_published_difference
    names = ("critical_difference",) if published else ("reliability", "sd")
    used = [score.values[n] for n in names if n in score.values]
    sediff = None if published else rc.standard_error_of_difference(
        maths.sd, maths.reliability)  # type: ignore[arg-type]
    return {
        "method": str(score.default_method),
        "criticalValue": rc.critical_value(score.default_method),
        "criticalDifference": maths.critical_difference if published else None,
        "reliability": None if published else maths.reliability,
        "sd": None if published else maths.sd,
        "sediff": None if sediff is None else round(sediff, 6),
        "verified": all(v.verified for v in used),
        "citations": list(dict.fromkeys(v.citation for v in used)),
    }


def _label(questionnaire: Resource, item: Resource | None) -> str:
    """A short name for summaries: the title's abbreviation ("DERS", "SCL-90-R"), plus the
    score's own ("GSI") when the form has several."""
    title = str(questionnaire.get("title") or questionnaire["id"])
    m = _ABBREVIATION.search(title)
    # Without one, the computable name split into words ("BPDCriteria" -> "BPD Criteria").
    label = m.group(1) if m else _WORDS.sub(" ", str(questionnaire.get("name") or title))
    sub = _ABBREVIATION.search(str((item or {}).get("text", "")))
    return f"{label} {sub.group(1)}" if sub and sub.group(1) != label else label


def _instruments(catalogue: Catalogue, params: ParameterSet, observations: list[Resource],
                 plan_for: Callable[[Resource], ScoringPlan]) -> list[Resource]:
    defs = _score_items(catalogue)
    by_code: dict[str, list[Resource]] = {}
    for obs in observations:
        key = _key(obs)
        if key in defs and ("valueQuantity" in obs or "valueCodeableConcept" in obs):
            by_code.setdefault(key, []).append(obs)
    out = []
    for q in catalogue:
        headline, band = _headline(q, params), _band_item(q)
        numeric = by_code.get(_item_key(headline), []) if headline else []
        banded = by_code.get(_item_key(band), []) if band else []
        numeric = [o for o in numeric if "valueQuantity" in o]
        banded = [o for o in banded if "valueCodeableConcept" in o]
        if not numeric and not banded:
            continue
        out.append(_instrument(q, headline if numeric else None, band if banded else None,
                               numeric, banded, params, plan_for))
    return out


def _item_key(item: Resource | None) -> str:
    return token((item or {}).get("code", [{}])[0])


def _by_date(resources: Iterable[Resource]) -> list[Resource]:
    return sorted(resources, key=lambda o: (date_key(o.get("effectiveDateTime")) or "", o["id"]))


def _instrument(q: Resource, headline: Resource | None, band: Resource | None,
                numeric: list[Resource], banded: list[Resource], params: ParameterSet,
                plan_for: Callable[[Resource], ScoringPlan]) -> Resource:
    qid = q["id"]
    direction = None
    if headline is not None and qid in params.instruments():
        try:
            direction = str(params.get(qid, headline["linkId"]).direction)
        except rc.ParameterError:
            direction = None
    unit = None
    if numeric:
        unit = numeric[-1]["valueQuantity"].get("unit")
    found = score_range(q, plan_for(q), headline["linkId"]) if headline else None
    return {
        "questionnaire": {"id": qid, "url": q["url"], "title": q.get("title", qid)},
        "label": _label(q, headline),
        "code": _coding(headline) if headline else None,
        "unit": unit,
        "scoreType": headline.get("type") if headline else None,
        "range": {"low": found[0], "high": found[1]} if found else None,
        "direction": direction,
        "cutoffs": _cutoffs(params, qid, headline["linkId"]) if headline else [],
        "reliableChange": _rule(params, qid, headline["linkId"]) if headline else None,
        "points": [_point(o) for o in _by_date(numeric)],
        "band": {
            "code": _coding(band),
            "options": [{k: o["valueCoding"][k] for k in ("system", "code", "display")
                         if k in o["valueCoding"]} for o in band.get("answerOption", [])],
            "points": [_band_point(o) for o in _by_date(banded)],
        } if band else None,
    }


def _coding(item: Resource) -> Resource:
    c = item["code"][0]
    return {k: c[k] for k in ("system", "code", "display") if k in c}


# --- medication ------------------------------------------------------------------------------

def _drug(request: Resource) -> tuple[str, str, Resource | None]:
    """(merge key, display, coding) of a MedicationRequest's medicine."""
    concept = request.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        for c in concept.get("coding", []):
            if c.get("code"):
                key = c["code"] if c.get("system") == RXNORM else f"{c.get('system')}|{c['code']}"
                coding = {k: c[k] for k in ("system", "code", "display") if k in c}
                return key, str(c.get("display") or concept.get("text") or c["code"]), coding
        if concept.get("text"):
            text = " ".join(str(concept["text"]).split())
            return f"text:{text.casefold()}", text, None
    ref = request.get("medicationReference") or {}
    display = str(ref.get("display") or ref.get("reference") or "medication (not named)")
    return f"ref:{ref.get('reference') or display}", display, None


def _dosage(request: Resource) -> tuple[str | None, str | None, str | None]:
    """(dose text, bounds start, bounds end) of the first dosage instruction."""
    dosages = request.get("dosageInstruction") or [{}]
    dosage = dosages[0]
    repeat = dosage.get("timing", {}).get("repeat", {})
    bounds = repeat.get("boundsPeriod") or {}
    text = dosage.get("text")
    if not text and dosage.get("doseAndRate"):
        q = dosage["doseAndRate"][0].get("doseQuantity") or {}
        if "value" in q:
            times = repeat.get("frequency")
            text = f"{q['value']} {q.get('unit', q.get('code', ''))}".strip()
            if times and repeat.get("periodUnit") == "d":
                text += f" {times} time{'s' if times > 1 else ''} a day"
    return text, bounds.get("start"), bounds.get("end")


def _day(text: str | None) -> str | None:
    return text[:10] if text else None


def _period(start: str | None, stop: str | None, dose: str | None, status: str,
            ended: str | None, synthetic: bool, origin: str | None) -> Resource:
    return {"start": start, "stop": stop, "dose": dose, "status": status, "ended": ended,
            "request": None, "synthetic": synthetic, "source": origin}


def _plan_medications(conn: Connection, catalogue: Catalogue, responses: list[Resource]
                      ) -> tuple[list[Resource], set[str]]:
    """Rows of the MIT plan's medicines, one segment per dose, from the plan's versions; and the
    ids of the MedicationRequests the plan keeps (whose EHR copies are the same prescriptions)."""
    versions = []
    for qr in responses:
        q = catalogue.resolve(str(qr.get("questionnaire", "")))
        if q is None or q.get("id") != MEDICATION_PLAN or qr.get("status") not in (
                "completed", "amended"):
            continue
        try:
            planned = medication_requests(qr, q, {"reference": f"QuestionnaireResponse/{qr['id']}"})
        except PlanError:
            continue
        versions.append((str(planned[0].resource["authoredOn"]), qr, planned))
    versions.sort(key=lambda v: (v[0], date_key(v[1].get("authored")) or ""))
    rows: dict[str, Resource] = {}
    open_period: dict[str, Resource] = {}
    for when, qr, planned in versions:
        synthetic, origin = _source(qr)
        listed = set()
        for p in planned:
            key = p.business_key
            listed.add(key)
            _, display, coding = _drug(p.resource)
            row = rows.setdefault(key, {"drug": display, "code": coding, "source": "mit-plan",
                                        "periods": []})
            dose, start, end = _dosage(p.resource)
            status = str(p.resource["status"])
            current = open_period.get(key)
            if current is not None and current["dose"] == dose and status == current["status"]:
                current["stop"] = _day(end) or current["stop"]
                continue
            if status == "stopped":
                if current is not None:
                    current["stop"], current["ended"] = _day(end) or when, "stopped"
                    del open_period[key]
                elif not row["periods"]:  # first heard of as stopped: show when it ran
                    row["periods"].append(_period(_day(start), _day(end) or when, dose, status,
                                                  "stopped", synthetic, origin))
                continue
            begins = _day(start) or when
            if current is not None:
                if begins <= (current["start"] or ""):
                    begins = when  # the bounds still name the first start: the change is now
                if not current["stop"] or current["stop"] > begins:
                    current["stop"] = begins
                current["ended"] = "dose-changed"
            period = _period(begins, _day(end), dose, status, None, synthetic, origin)
            row["periods"].append(period)
            open_period[key] = period
        for key in [k for k in open_period if k not in listed]:
            period = open_period.pop(key)
            period["stop"] = period["stop"] or when
            period["ended"] = "not-in-plan"
    ours: set[str] = set()
    for key, row in rows.items():
        current_request = repository.read_by_key(conn, "MedicationRequest", key)
        if current_request is not None:
            ours.add(current_request["id"])
            for period in row["periods"]:
                period["request"] = f"MedicationRequest/{current_request['id']}"
    return sorted(rows.values(), key=_row_order), ours


def _row_order(row: Resource) -> tuple[str, str]:
    starts = [p["start"] or "" for p in row["periods"]]
    return (min(starts) if starts else "", row["drug"].casefold())


def _ehr_medications(requests: list[Resource], ours: set[str]) -> list[Resource]:
    """One row per medicine of the EHR's requests, one period per request (as recorded)."""
    own_system = IDENTIFIER_SYSTEMS["MedicationRequest"]
    rows: dict[str, Resource] = {}
    for request in requests:
        if request.get("status") == "entered-in-error":
            continue
        if any(i.get("system") == own_system and i.get("value") in ours
               for i in request.get("identifier", [])):
            continue  # our plan's own request, synced to the EHR: already in a mit-plan row
        key, display, coding = _drug(request)
        row = rows.setdefault(key, {"drug": display, "code": coding, "source": "ehr",
                                    "periods": []})
        dose, start, end = _dosage(request)
        validity = (request.get("dispenseRequest") or {}).get("validityPeriod") or {}
        synthetic, origin = _source(request)
        status = str(request.get("status", "unknown"))
        row["periods"].append({
            "start": _day(start or validity.get("start") or request.get("authoredOn")),
            "stop": _day(end or validity.get("end")),
            "dose": dose, "status": status,
            "ended": "stopped" if status in ("stopped", "cancelled", "completed") else None,
            "request": f"MedicationRequest/{request['id']}" if request.get("id") else None,
            "synthetic": synthetic, "source": origin,
        })
    for row in rows.values():
        row["periods"].sort(key=lambda p: p["start"] or "")
    return sorted(rows.values(), key=_row_order)


__all__ = ["CS_DATA_SOURCE", "TimelineSchema", "patient_timeline", "timeline_for"]
