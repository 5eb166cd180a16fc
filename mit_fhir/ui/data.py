"""The outcomes page's data: mit_fhir.timeline's document in the shape the page's script reads.

    instrument: code, display, questionnaire, direction, range [low, high] or None,
                cutoffs [{value, label}], points [{date, value, observation, category,
                reliable, index, synthetic, band}]
    medication: display, code, source ("ehr" | "mit-plan"), periods [{start, stop, dose,
                status, synthetic}]

The timeline is the single source of the numbers (scores, cutoffs from psychometrics.json,
change verdicts the service stored); this module only renames and labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mit_fhir.context import Context
from mit_fhir.fhir.urls import EXT_RELIABLE_CHANGE

Resource = dict[str, Any]
CUTOFF_LABELS = {
    "published": "published clinical cutoff",
    "a": "clinical cutoff a (2 SD beyond the clinical mean)",
    "b": "clinical cutoff b (2 SD within the functional mean)",
    "c": "clinical cutoff c (between the two populations)",
}


def outcomes_document(context: Context, patient: str,
                      ehr_requests: Iterable[Resource] = ()) -> dict[str, Any]:
    """Scores over time and medication periods of one patient (see the module docstring)."""
    from mit_fhir.timeline import timeline_for

    warnings: list[str] = []
    return page_document(timeline_for(context, patient, list(ehr_requests), warnings))


def page_document(timeline: Resource) -> dict[str, Any]:
    """The timeline document renamed for outcomes.js."""
    instruments = []
    for ins in timeline["instruments"]:
        code = (ins.get("code") or {}).get("code") or ins["questionnaire"]["id"]
        rng = ins.get("range")
        bands = (ins.get("band") or {}).get("points", [])
        points = []
        for n, p in enumerate(ins["points"]):
            band = _band_at(bands, p["date"])
            points.append({
                "date": p["date"], "value": p["value"],
                "observation": p["observation"].rpartition("/")[2],
                "category": p["category"] or ("baseline" if n == 0 else None),
                "reliable": p["reliable"], "index": p["index"], "synthetic": p["synthetic"],
                "band": band,
            })
        instruments.append({
            "code": code, "display": ins["label"],
            "questionnaire": ins["questionnaire"].get("title") or ins["questionnaire"]["id"],
            "direction": ins.get("direction") or "lower-is-better",
            "range": [rng["low"], rng["high"]] if rng else None,
            "cutoffs": [{"value": c["value"],
                         "label": CUTOFF_LABELS.get(c["kind"], "clinical cutoff")
                         + ("" if c.get("verified", True) else " (norms unverified)")}
                        for c in ins.get("cutoffs", [])],
            "points": points,
        })
    medications = [{
        "display": m["drug"], "code": m.get("code"), "source": m["source"],
        "periods": [{"start": p["start"], "stop": p["stop"], "dose": p.get("dose") or "",
                     "status": p.get("status"), "synthetic": p.get("synthetic", False)}
                    for p in m["periods"]],
    } for m in timeline["medications"]]
    return {"patient": timeline["patient"], "instruments": instruments,
            "medications": medications, "warnings": timeline.get("warnings", [])}


def _band_at(bands: list[Resource], date: str) -> str | None:
    # The band (severity, threshold met) scored from the same response: same date.
    for band in bands:
        if band["date"] == date:
            return str(band.get("display") or band.get("code"))
    return None


def change_of(obs: Resource) -> dict[str, Any]:
    """The reliable-change verdict the service stored on a score Observation."""
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
