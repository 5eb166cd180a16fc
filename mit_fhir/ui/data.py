"""The outcomes page's data: one adapter over the patient timeline, plus medication periods.

`outcomes_document()` is the only place the page's JavaScript contract meets the service:
it returns {"patient", "instruments": [...], "medications": [...]} with

    instrument: code, display, questionnaire, direction, range [low, high] or None,
                cutoffs [{value, label}], points [{date, value, observation, category,
                reliable, index, synthetic}]
    medication: display, code, source ("ehr" | "mit-plan"), periods [{start, stop, dose,
                status}]

It uses `mit_fhir.timeline.patient_timeline` when that module is installed, and otherwise
builds the same shape from the stored score Observations (the default score of each instrument
in the psychometric data file) and the MedicationRequests it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mit_fhir.context import Context
from mit_fhir.fhir.change import numeric
from mit_fhir.fhir.urls import EXT_RELIABLE_CHANGE
from mit_fhir.store import repository
from mit_fhir.store.repository import Criterion

Resource = dict[str, Any]
# Tags that mark demonstration data (ours, and HL7 ActReason HTEST "test health data").
SYNTHETIC_TAGS = {"synthetic", "HTEST"}
# Scores charted without psychometric parameters: the DSM-5 threshold is their cutoff.
THRESHOLD_SCORES = {"bpd-criteria": ("bpd-criteria-count", 5.0, "DSM-5 threshold: 5 of 9")}


def outcomes_document(context: Context, patient: str,
                      ehr_requests: Iterable[Resource] = ()) -> dict[str, Any]:
    """Scores over time and medication periods of one patient (see the module docstring)."""
    ehr_requests = list(ehr_requests)
    try:
        from mit_fhir.timeline import patient_timeline
    except ImportError:
        patient_timeline = None
    if patient_timeline is not None:
        raw = patient_timeline(context, patient, ehr_medication_requests=ehr_requests)
        return normalised(patient, raw)
    with context.store.transaction() as conn:
        plan = repository.search(conn, "MedicationRequest",
                                 [Criterion("patient", "eq", (f"Patient/{patient}",))])
        instruments = [_instrument(conn, context, patient, qid)
                       for qid in context.scorer.parameters.instruments()]
        instruments += [_threshold_instrument(conn, context, patient, qid)
                        for qid in THRESHOLD_SCORES if context.catalogue.get(qid)]
    return {
        "patient": patient,
        "instruments": [i for i in instruments if i["points"]],
        "medications": medications([(r, "ehr") for r in ehr_requests]
                                   + [(r, "mit-plan") for r in plan]),
    }


# ---------------------------------------------------------------- the timeline's document

def _first(mapping: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in mapping:
            return mapping[name]
    return default


def normalised(patient: str, raw: Any) -> dict[str, Any]:
    """The timeline module's document in the page's key names (tolerant of spelling)."""
    raw = dict(raw) if isinstance(raw, dict) else {"instruments": list(raw or [])}
    instruments = []
    for ins in _first(raw, "instruments", "scores", default=[]):
        cutoffs = _first(ins, "cutoffs", default=[]) or []
        instruments.append({
            "code": ins.get("code"), "display": _first(ins, "display", "name", default=""),
            "questionnaire": ins.get("questionnaire"), "direction": ins.get("direction"),
            "range": ins.get("range"),
            "cutoffs": [c if isinstance(c, dict) else {"value": c, "label": "clinical cutoff"}
                        for c in cutoffs],
            "points": [{
                "date": p.get("date"), "value": p.get("value"),
                "observation": _first(p, "observation", "observation_id", "observationId", "id"),
                "category": p.get("category"), "reliable": p.get("reliable"),
                "index": p.get("index"), "synthetic": bool(p.get("synthetic")),
            } for p in _first(ins, "points", default=[])],
        })
    meds = []
    for med in _first(raw, "medications", default=[]):
        meds.append({
            "display": _first(med, "display", "drug_display", "drug", default=""),
            "code": med.get("code"), "source": med.get("source"),
            "periods": [{"start": p.get("start"), "stop": _first(p, "stop", "end"),
                         "dose": _first(p, "dose", "dose_text", "doseText", default=""),
                         "status": p.get("status")}
                        for p in _first(med, "periods", default=[])],
        })
    return {"patient": patient, "instruments": instruments, "medications": meds}


# ---------------------------------------------------------------- built from the store

def _points(conn: Any, patient: str, score: str) -> tuple[list[dict[str, Any]], str, list[Any]]:
    """The patient's final Observations of one score as chart points, oldest first."""
    found = repository.search(conn, "Observation", [
        Criterion("patient", "eq", (f"Patient/{patient}",)),
        Criterion("code:code", "eq", (score,)),
        Criterion("status:code", "eq", ("final",)),
    ], sort="date")
    points: list[dict[str, Any]] = []
    display, cutoffs = score, []
    for obs in found:
        value = numeric(obs)
        if value is None:
            continue
        coding = (obs.get("code", {}).get("coding") or [{}])[0]
        display = obs.get("code", {}).get("text") or coding.get("display") or score
        change = change_of(obs)
        points.append({
            "date": obs.get("effectiveDateTime"), "value": value, "observation": obs["id"],
            "category": change["category"] or ("baseline" if not points else None),
            "reliable": change["reliable"], "index": change["index"],
            "synthetic": any(t.get("code") in SYNTHETIC_TAGS
                             for t in obs.get("meta", {}).get("tag", [])),
        })
        for rng in obs.get("referenceRange", [])[:1]:
            bound = rng.get("high") or rng.get("low") or {}
            if "value" in bound:
                cutoffs = [{"value": bound["value"], "label": "clinical cutoff"}]
    return points, display, cutoffs


def _instrument(conn: Any, context: Context, patient: str, qid: str) -> dict[str, Any]:
    score = context.scorer.parameters.default_score(qid)
    params = context.scorer.parameters.get(qid, score)
    points, display, cutoffs = _points(conn, patient, score)
    return {"code": score, "display": display,
            "questionnaire": (context.catalogue.get(qid) or {}).get("title") or qid,
            "direction": params.direction.value, "range": None, "cutoffs": cutoffs,
            "points": points}


def _threshold_instrument(conn: Any, context: Context, patient: str,
                          qid: str) -> dict[str, Any]:
    score, threshold, label = THRESHOLD_SCORES[qid]
    points, display, _ = _points(conn, patient, score)
    return {"code": score, "display": display,
            "questionnaire": (context.catalogue.get(qid) or {}).get("title") or qid,
            "direction": "lower-is-better", "range": None,
            "cutoffs": [{"value": threshold, "label": label}], "points": points}


def change_of(obs: Resource) -> dict[str, Any]:
    for ext in obs.get("extension", []):
        if ext.get("url") != EXT_RELIABLE_CHANGE:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        return {
            "category": parts.get("category", {}).get("valueCoding", {}).get("code"),
            "reliable": parts.get("reliable", {}).get("valueBoolean"),
            "index": parts.get("index", {}).get("valueDecimal"),
        }
    return {"category": None, "reliable": None, "index": None}


# ---------------------------------------------------------------- medications

def _drug(req: Resource) -> tuple[str, str | None]:
    concept = req.get("medicationCodeableConcept") or {}
    coding = (concept.get("coding") or [{}])[0]
    display = concept.get("text") or coding.get("display") or coding.get("code") or "medication"
    return str(display), coding.get("code")


def _period(req: Resource) -> dict[str, Any]:
    validity = req.get("dispenseRequest", {}).get("validityPeriod", {})
    dosage = (req.get("dosageInstruction") or [{}])[0]
    return {"start": validity.get("start") or req.get("authoredOn"),
            "stop": validity.get("end"), "dose": dosage.get("text", ""),
            "status": req.get("status")}


def medications(requests: Iterable[tuple[Resource, str]]) -> list[dict[str, Any]]:
    """MedicationRequests grouped by drug and source, each request one dated period."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for req, source in requests:
        if req.get("resourceType") != "MedicationRequest":
            continue
        display, code = _drug(req)
        entry = grouped.setdefault((code or display, source), {
            "display": display, "code": code, "source": source, "periods": []})
        entry["periods"].append(_period(req))
    out = list(grouped.values())
    for entry in out:
        entry["periods"].sort(key=lambda p: p["start"] or "")
    return sorted(out, key=lambda e: (e["periods"][0]["start"] or "", e["display"]))
