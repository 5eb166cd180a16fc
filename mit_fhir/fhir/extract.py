"""QuestionnaireResponse -> Observations: SDC observation-based extraction, US Core panel shape.

One panel Observation per completed response (code = Questionnaire.code, no value) whose
`hasMember` lists one Observation per calculated item marked `observationExtract`: numeric
scores as `valueQuantity`, bands as `valueCodeableConcept`, uncomputable scores with
`dataAbsentReason` and the score rule as its text (never a silent number). The panel carries
the response's risk alerts (mit_fhir/fhir/alerts.py).
https://hl7.org/fhir/uv/sdc/STU4/extraction.html#observation-based-extraction
https://hl7.org/fhir/us/core/STU8/StructureDefinition-us-core-observation-screening-assessment.html
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mit_fhir.fhir import alerts
from mit_fhir.fhir.answers import option_codings
from mit_fhir.fhir.references import reference_type
from mit_fhir.fhir.scoring import Score, ScoringPlan
from mit_fhir.vocabulary import (
    BASE,
    DATA_ABSENT_REASON,
    EXT_OBSERVATION_EXTRACT_CATEGORY,
    OBSERVATION_CATEGORY,
    UCUM,
    extension,
)

Resource = dict[str, Any]
IDENTIFIER_SYSTEM = f"{BASE}/identifier/observation"
SCORE_PROFILE = f"{BASE}/StructureDefinition/mit-score-observation"
PANEL_PROFILE = f"{BASE}/StructureDefinition/mit-score-panel"
EXTRACTABLE_STATUS = ("completed", "amended")
SURVEY = {"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}
# Where a response's data come from (profiles/CodeSystem-data-source.json): `synthetic` demo data
# or a published `case-report`. The label travels from the response to every Observation of it.
CS_DATA_SOURCE = f"{BASE}/CodeSystem/data-source"


@dataclass
class Extraction:
    """The panel and its members, with the Score behind each member."""

    panel: Resource
    members: list[tuple[Resource, Score]] = field(default_factory=list)

    def resources(self) -> list[Resource]:
        return [self.panel, *(obs for obs, _ in self.members)]


# Observation.performer may reference these (R4); a Device author is not a performer.
PERFORMER_TYPES = ("Practitioner", "PractitionerRole", "Organization", "CareTeam", "Patient",
                   "RelatedPerson")


def _category(questionnaire: Resource) -> list[Resource]:
    """`survey` always (US Core), plus any category the form asks for (SDC)."""
    categories = [{"coding": [dict(SURVEY)]}]
    ext = extension(questionnaire, EXT_OBSERVATION_EXTRACT_CATEGORY)
    extra = ext.get("valueCodeableConcept") if ext else None
    if extra and not any(c.get("code") == "survey" for c in extra.get("coding", [])):
        categories.append(extra)
    return categories


def _concept(codings: list[Resource], text: str | None) -> Resource:
    concept: Resource = {"coding": [dict(c) for c in codings]}
    if text:
        concept["text"] = text
    return concept


def _common(qr: Resource, qr_ref: Resource | None, questionnaire: Resource) -> Resource:
    """Fields every extracted Observation copies from the response (SDC extraction rules)."""
    obs: Resource = {"resourceType": "Observation", "status": "final"}
    obs["category"] = _category(questionnaire)
    obs["subject"] = dict(qr["subject"])
    if qr.get("encounter"):
        obs["encounter"] = dict(qr["encounter"])
    obs["effectiveDateTime"] = qr["authored"]
    if "T" in qr["authored"]:
        obs["issued"] = qr["authored"]
    author = qr.get("author") or {}
    if reference_type(author.get("reference")) in PERFORMER_TYPES:
        obs["performer"] = [dict(author)]
    for name in ("basedOn", "partOf"):
        if qr.get(name):
            obs[name] = [dict(r) for r in qr[name]]
    if qr_ref is not None:
        obs["derivedFrom"] = [dict(qr_ref)]
    return obs


def data_source_tags(resource: Resource) -> list[Resource]:
    """The resource's meta.tag codings of the data-source CodeSystem (synthetic, case-report)."""
    tags = (resource.get("meta") or {}).get("tag") or []
    return [dict(t) for t in tags if isinstance(t, dict) and t.get("system") == CS_DATA_SOURCE]


def _meta(profile: str, qr: Resource) -> Resource:
    meta: Resource = {"profile": [profile]}
    if tags := data_source_tags(qr):
        meta["tag"] = tags
    return meta


def _value(score: Score, obs: Resource) -> None:
    item, value = score.item, score.value
    if value is None:
        obs["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT_REASON, "code": "unknown", "display": "Unknown"}],
            "text": score.reason or "the score cannot be computed",
        }
        return
    if item.options:
        code = value.get("code") if isinstance(value, dict) else value
        # The option's own Coding first, then the other codes of the same band (the C-SSRS
        # triage's project codes beside LOINC's LL465-6 answers).
        match = next((codings for codings in map(option_codings, item.item.get("answerOption", ()))
                      if any(c.get("code") == code for c in codings)), None)
        if match is None:
            obs["dataAbsentReason"] = {
                "coding": [{"system": DATA_ABSENT_REASON, "code": "error", "display": "Error"}],
                "text": "the band expression gave a code that is not one of the item's options",
            }
        else:
            obs["valueCodeableConcept"] = _concept(match, match[0].get("display"))
        return
    if isinstance(value, bool):
        obs["valueBoolean"] = value
    elif isinstance(value, int | float):
        number: int | float = value
        if item.item.get("type") == "integer" and float(value).is_integer():
            number = int(value)
        unit = item.unit or {"system": UCUM, "code": "{score}", "display": "score"}
        obs["valueQuantity"] = {
            "value": number,
            "unit": unit.get("display", unit.get("code")),
            "system": unit.get("system", UCUM),
            "code": unit.get("code"),
        }
    else:
        obs["valueString"] = str(value)


def extract(
    qr: Resource,
    questionnaire: Resource,
    plan: ScoringPlan,
    qr_ref: Resource | None,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Extraction | None:
    """The Observations of a completed response, or None (drafts and forms without scores)."""
    if qr.get("status") not in EXTRACTABLE_STATUS:
        return None
    evaluated = plan.evaluate(qr)
    scores = [s for s in evaluated if s.item.extract]
    if not scores or not questionnaire.get("code"):
        return None
    qr_id = qr.get("id")
    panel = _common(qr, qr_ref, questionnaire)
    panel["id"] = new_id()
    panel["meta"] = _meta(PANEL_PROFILE, qr)
    if qr_id:
        panel["identifier"] = [{"system": IDENTIFIER_SYSTEM, "value": f"{qr_id}:panel"}]
    panel["code"] = _concept(questionnaire["code"], questionnaire.get("title"))
    # The response's risk alerts belong to the assessment as a whole: they go on its panel.
    alerts.mark(panel, alerts.alerts(questionnaire, qr,
                                     {s.item.link_id: s.value for s in evaluated}))
    extraction = Extraction(panel)
    for score in scores:
        obs = _common(qr, qr_ref, questionnaire)
        obs["id"] = new_id()
        obs["meta"] = _meta(SCORE_PROFILE, qr)
        if qr_id:
            obs["identifier"] = [
                {"system": IDENTIFIER_SYSTEM, "value": f"{qr_id}:{score.item.link_id}"}
            ]
        codes = score.item.item.get("code") or []
        obs["code"] = _concept(codes, score.item.item.get("text"))
        _value(score, obs)
        extraction.members.append((obs, score))
    panel["hasMember"] = [{"reference": f"Observation/{o['id']}"} for o, _ in extraction.members]
    return extraction


def transaction_bundle(resources: list[Resource]) -> Resource:
    """A transaction Bundle creating the resources; local ids become urn:uuid fullUrls."""
    local = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['id']}" for r in resources}
    entries = []
    for res in resources:
        body = _rewrite({k: v for k, v in res.items() if k != "id"}, local)
        request: Resource = {"method": "POST", "url": res["resourceType"]}
        ident = (res.get("identifier") or [None])[0]
        if ident:
            token = quote(f"{ident['system']}|{ident['value']}", safe="/:")
            request["ifNoneExist"] = f"identifier={token}"
        entries.append({"fullUrl": local[f"{res['resourceType']}/{res['id']}"],
                        "resource": body, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _rewrite(node: Any, local: dict[str, str]) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str) and node["reference"] in local:
            return {**node, "reference": local[node["reference"]]}
        return {k: _rewrite(v, local) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, local) for v in node]
    return node
