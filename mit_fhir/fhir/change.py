"""Change flags on score Observations: reliable change against the patient's baseline.

Profile: profiles/StructureDefinition-mit-score-observation.json. For a numeric score that has
psychometric parameters, every Observation after the patient's first one of that code carries
the `reliable-change` extension (index, method, category, baseline, differences), the
v3 ObservationInterpretation B or W when the change is reliable, and `derivedFrom` the baseline.
Every score with a clinical cutoff carries it as `referenceRange`. Bands (severity, triage,
threshold) report a change of band against the baseline with B/W read from the option order.
No implementation guide defines a reliable change index; see docs and fhir-notes.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mit_fhir.fhir.answers import option_codings
from mit_fhir.fhir.scoring import Score
from mit_fhir.psychometrics import reliable_change as rc
from mit_fhir.psychometrics.parameters import ScoreParameters
from mit_fhir.vocabulary import (
    BASE,
    CS_CHANGE_CATEGORY,
    CS_RCI_METHOD,
    EXT_RELIABLE_CHANGE,
    INTERPRETATION,
)

Resource = dict[str, Any]
EXT_BAND_CHANGE = f"{BASE}/StructureDefinition/band-change"
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"

_INTERPRETATION = {
    "B": {"system": INTERPRETATION, "code": "B", "display": "Better"},
    "W": {"system": INTERPRETATION, "code": "W", "display": "Worse"},
}
_CATEGORY_DISPLAY = {
    "recovered": "Recovered",
    "improved": "Improved",
    "unchanged": "Unchanged",
    "deteriorated": "Deteriorated",
    "harmed": "Harmed",
}


def numeric(obs: Resource) -> float | None:
    """The numeric value of a score Observation, or None."""
    q = obs.get("valueQuantity")
    return float(q["value"]) if q and "value" in q else None


def _ref(obs: Resource) -> Resource:
    return {"reference": f"Observation/{obs['id']}"}


def _quantity(value: float, like: Resource) -> Resource:
    q = like["valueQuantity"]
    # Integer scores (DERS, PHQ-9) stay integers; means keep six decimals.
    number: float = round(value, 6)
    if isinstance(q.get("value"), int) and number.is_integer():
        number = int(number)
    return {"value": number, "unit": q.get("unit"), "system": q.get("system"),
            "code": q.get("code")}


def _sub(url: str, **value: Any) -> Resource:
    return {"url": url, **value}


def reference_range(obs: Resource, params: rc.ReliableChangeParameters) -> None:
    """The clinical cutoff as the Observation's referenceRange (functional side)."""
    try:
        value = rc.cutoff(params)
    except rc.ParameterError:
        return
    lower_better = params.direction is rc.Direction.LOWER_IS_BETTER
    bound = {"value": round(value, 6)}
    side = "below" if lower_better else "above"
    rng: Resource = {
        "type": {"coding": [{"system": REFERENCE_RANGE_MEANING, "code": "normal",
                             "display": "Normal Range"}]},
        "text": f"functional range: strictly {side} the clinical cutoff {value:g} "
        f"(cutoff {'published' if params.cutoff_value is not None else params.cutoff_type}); "
        "a score at the cutoff counts as clinical",
    }
    rng["high" if lower_better else "low"] = bound
    obs["referenceRange"] = [rng]


def reliable_change(
    obs: Resource,
    score: ScoreParameters,
    method: rc.Method,
    baseline: Resource | None,
    previous: Resource | None,
) -> rc.ChangeResult | None:
    """Annotate a numeric score Observation; returns the verdict, or None at baseline."""
    params = score.to_parameters()
    reference_range(obs, params)
    post, pre = numeric(obs), numeric(baseline) if baseline else None
    if post is None or baseline is None or pre is None:
        return None
    result = rc.classify(pre, post, params, method)
    parts = [
        _sub("method", valueCoding={"system": CS_RCI_METHOD, "code": str(method)}),
        _sub("index", valueDecimal=round(result.index, 4)),
        _sub("criticalValue", valueDecimal=result.critical_value),
        _sub("reliable", valueBoolean=result.reliable),
        _sub("category", valueCoding={"system": CS_CHANGE_CATEGORY,
                                      "code": str(result.category),
                                      "display": _CATEGORY_DISPLAY[str(result.category)]}),
        _sub("baseline", valueReference=_ref(baseline)),
        _sub("baselineValue", valueQuantity=_quantity(pre, obs)),
        _sub("changeFromBaseline", valueQuantity=_quantity(post - pre, obs)),
    ]
    if previous is not None and (prev := numeric(previous)) is not None:
        parts += [
            _sub("previous", valueReference=_ref(previous)),
            _sub("changeFromPrevious", valueQuantity=_quantity(post - prev, obs)),
        ]
    if result.smallest_reliable_change is not None:
        parts.append(_sub("smallestReliableChange",
                          valueQuantity=_quantity(result.smallest_reliable_change, obs)))
    if result.cutoff is not None:
        parts.append(_sub("cutoff", valueDecimal=round(result.cutoff, 6)))
    if score.cutoff_type and params.cutoff_value is None:
        # Only a cutoff computed from norms is "a", "b" or "c"; a published one is as published.
        parts.append(_sub("cutoffType",
                          valueCoding={"system": CS_RCI_METHOD,
                                       "code": f"cutoff-{score.cutoff_type}"}))
    verified = all(v.verified for v in score.values.values())
    parts.append(_sub("parametersVerified", valueBoolean=verified))
    obs.setdefault("extension", []).append({"url": EXT_RELIABLE_CHANGE, "extension": parts})
    if result.reliable:
        better = result.change_direction is rc.ChangeDirection.IMPROVEMENT
        obs["interpretation"] = [{"coding": [dict(_INTERPRETATION["B" if better else "W"])]}]
    obs.setdefault("derivedFrom", []).append(_ref(baseline))
    return result


def band_change(
    obs: Resource, score: Score, baseline: Resource | None, previous: Resource | None
) -> None:
    """Compare a band (severity, triage, threshold) with the baseline's band."""
    # Ranked by answerOption, any of an option's codes: a baseline stored under the C-SSRS
    # triage's project code still compares with today's LOINC one.
    rank = {c.get("code"): i for i, o in enumerate(score.item.item.get("answerOption", ()))
            for c in option_codings(o)}
    current = rank.get(_band(obs))
    if baseline is None or current is None:
        return
    base = rank.get(_band(baseline))
    if base is None:
        return
    parts = [
        _sub("baseline", valueReference=_ref(baseline)),
        _sub("baselineValue", valueCoding=_coding(baseline)),
    ]
    if previous is not None and rank.get(_band(previous)) is not None:
        parts += [_sub("previous", valueReference=_ref(previous)),
                  _sub("previousValue", valueCoding=_coding(previous))]
    obs.setdefault("extension", []).append({"url": EXT_BAND_CHANGE, "extension": parts})
    if current != base:
        better = current < base
        obs["interpretation"] = [{"coding": [dict(_INTERPRETATION["B" if better else "W"])]}]
    obs.setdefault("derivedFrom", []).append(_ref(baseline))


def _band(obs: Resource) -> str | None:
    codings: Sequence[Resource] = obs.get("valueCodeableConcept", {}).get("coding", [])
    return codings[0].get("code") if codings else None


def _coding(obs: Resource) -> Resource:
    return dict(obs["valueCodeableConcept"]["coding"][0])
