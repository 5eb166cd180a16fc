"""The outcomes page's data: mit_fhir.usecases.timeline's document in the shape the page's script
reads.

    instrument: code, display, short (the summary's name), heading, questionnaire,
                questionnaireId, decimals, direction,
                range [low, high] or None, clinical {value, above, text} or None,
                bands [{from, to, label, display}], statistics [{name, value, source,
                verified}], points [{date, value, text, observation, category, reliable,
                index, synthetic, source, band, bandChange, alerts}],
                showIndex (whether the RCI column means anything for this score),
                levels [label] or None (a band-only instrument: the y axis's named levels)
    medication: display, code, source ("ehr" | "mit-plan"), periods [{start, stop, dose,
                status, ended, synthetic}]
    synthetic:  whether any value shown is synthetic (the page then says so at the top)
    riskScreens: the forms whose answers can raise a risk alert (a critical-answer extension
                in the Questionnaire), [{id, name}]: the summary says when none is on record
    due:        what is due (mit_fhir/usecases/due.py), the most overdue first: [{questionnaireId,
                name, title, due (day) or None, dueFrom ("task" | "schedule" | None), owner
                ("patient" | "clinician" | None), overdue [{task, due (day), by ("3 weeks")}],
                last {date (day), synthetic} or None}] of the forms with an open Task or a
                running schedule; [] when the caller may not see Tasks

The timeline is the single source of the numbers (scores, cutoffs from psychometrics.json,
change verdicts the service stored); this module only renames and labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mit_fhir.fhir.alerts import EXT_CRITICAL_ANSWER
from mit_fhir.fhir.items import walk_items
from mit_fhir.ui import clinical
from mit_fhir.usecases import due as due_summary
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.timeline import timeline_for
from mit_fhir.vocabulary import EXT_RELIABLE_CHANGE, extension

Resource = dict[str, Any]


def outcomes_document(context: Context, patient: str,
                      ehr_requests: Iterable[Resource] = (),
                      with_due: bool = True) -> dict[str, Any]:
    """Scores over time and medication periods of one patient (see the module docstring);
    `with_due` False leaves out what is due (a caller that may not search Tasks)."""

    warnings: list[str] = []
    document = page_document(timeline_for(context, patient, list(ehr_requests), warnings))
    document["riskScreens"] = risk_screens(context.catalogue)
    if with_due:
        with context.store.transaction() as conn:
            document["due"] = due_part(due_summary.summary(conn, context.catalogue, patient))
    return document


def due_part(rows: list[Resource]) -> list[Resource]:
    """due.summarise's rows as the page reads them (days, not instants: the page says dates),
    only the forms with an open Task or a running schedule: a form whose Tasks are all done or
    cancelled has nothing due to mark."""
    def day(text: str | None) -> str | None:
        return text[:10] if text else None

    return [{
        "questionnaireId": row["questionnaire"]["id"], "name": row["label"],
        "title": row["questionnaire"]["title"], "due": day(row["due"]),
        "dueFrom": row["dueFrom"], "owner": row["owner"],
        "overdue": [{"task": o["task"], "due": day(o["due"]), "by": o["by"]}
                    for o in row["overdue"]],
        "last": {"date": day(row["last"]["date"]), "synthetic": row["last"]["synthetic"]}
        if row["last"] else None,
    } for row in rows if row["dueFrom"] is not None]


def risk_screens(catalogue: Catalogue) -> list[Resource]:
    """The forms whose Questionnaire marks an answer critical: the risk screens on offer."""
    return [{"id": q["id"], "name": clinical.short_title(q.get("title") or q["id"])}
            for q in catalogue
            if any(extension(item, EXT_CRITICAL_ANSWER) for item in walk_items(q.get("item", [])))]


def page_document(timeline: Resource) -> dict[str, Any]:
    """The timeline document renamed and worded for outcomes.js."""
    instruments = [_instrument(ins) for ins in timeline["instruments"]]
    medications = [{
        "display": m["drug"], "code": m.get("code"), "source": m["source"],
        "periods": [{"start": p["start"], "stop": p["stop"], "dose": p.get("dose") or "",
                     "status": p.get("status"), "ended": p.get("ended"),
                     "synthetic": p.get("synthetic", False)}
                    for p in m["periods"]],
    } for m in timeline["medications"]]
    synthetic = any(p["synthetic"] for i in instruments for p in i["points"]) or any(
        p["synthetic"] for m in medications for p in m["periods"])
    return {"patient": timeline["patient"], "instruments": instruments,
            "medications": medications, "synthetic": synthetic,
            "warnings": timeline.get("warnings", []), "riskScreens": [], "due": []}


def _instrument(ins: Resource) -> Resource:
    if not ins["points"] and (ins.get("band") or {}).get("points"):
        return _band_only(ins)
    code = (ins.get("code") or {}).get("code") or ins["questionnaire"]["id"]
    rng = ins.get("range")
    band = ins.get("band") or {}
    band_points = band.get("points", [])
    integer = ins.get("scoreType") != "decimal"
    places = clinical.decimals([p["value"] for p in ins["points"]], integer)
    points = []
    for n, p in enumerate(ins["points"]):
        at = _band_at(band_points, p["date"])
        points.append({
            "date": p["date"], "value": p["value"], "text": clinical.number(p["value"], places),
            "observation": p["observation"].rpartition("/")[2],
            "category": p["category"] or ("baseline" if n == 0 else None),
            "reliable": p["reliable"], "index": p["index"], "synthetic": p["synthetic"],
            "source": p.get("source"),
            "band": (at.get("display") or at.get("code")) if at else None,
            "bandChange": clinical.band_change(at),
            "alerts": list(p.get("alerts") or []),
        })
    cutoffs = ins.get("cutoffs", [])
    title = ins["questionnaire"].get("title") or ins["questionnaire"]["id"]
    return {
        "code": code, "display": ins["label"], "short": clinical.short_label(ins["label"], title),
        "heading": clinical.heading(ins["label"], title),
        "questionnaire": title, "questionnaireId": ins["questionnaire"]["id"], "decimals": places,
        "direction": ins.get("direction") or "lower-is-better",
        "range": [rng["low"], rng["high"]] if rng else None,
        "clinical": clinical.clinical_range(cutoffs[0], integer, places) if cutoffs else None,
        "bands": clinical.bands(band.get("options", []), *((rng["low"], rng["high"]) if rng
                                                            else (None, None))),
        "statistics": clinical.statistics(cutoffs[0] if cutoffs else None,
                                          ins.get("reliableChange")),
        # A published critical difference (PHQ-9's 6) judges the raw change: an RCI column
        # beside it would be a second, unexplained yardstick.
        "showIndex": not (ins.get("reliableChange") or {}).get("criticalDifference"),
        "levels": None, "points": points,
    }


def _band_only(ins: Resource) -> Resource:
    """An instrument scored only as a band (the C-SSRS screener's triage): its options become
    the levels of the chart's y axis, in the Questionnaire's order (least to most severe)."""
    band = ins["band"]
    order = [o["code"] for o in band["options"]]
    title = ins["questionnaire"].get("title") or ins["questionnaire"]["id"]
    points = [{
        "date": p["date"], "value": order.index(p["code"]) if p["code"] in order else None,
        "text": clinical.short_band(p), "observation": p["observation"].rpartition("/")[2],
        "category": "baseline" if n == 0 else None, "reliable": None, "index": None,
        "synthetic": p["synthetic"], "source": p.get("source"),
        "band": p.get("display") or p["code"], "bandChange": clinical.band_change(p),
        "alerts": list(p.get("alerts") or []),
    } for n, p in enumerate(band["points"])]
    return {
        "code": band["code"]["code"], "display": ins["label"],
        "short": clinical.short_label(ins["label"], title),
        "heading": clinical.heading(ins["label"], title), "questionnaire": title,
        "questionnaireId": ins["questionnaire"]["id"], "decimals": 0,
        "direction": "lower-is-better", "range": [0, max(len(order) - 1, 1)],
        "clinical": None, "bands": [], "statistics": [], "showIndex": False,
        "levels": [clinical.short_band(o) for o in band["options"]],
        "points": [p for p in points if p["value"] is not None],
    }


def _band_at(bands: list[Resource], date: str) -> Resource | None:
    # The band (severity, threshold met) scored from the same response: same date.
    for band in bands:
        if band["date"] == date:
            return band
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
