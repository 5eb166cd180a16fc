"""Test data for the SMART page tests: DERS responses by answer weight, EHR prescriptions."""

from __future__ import annotations

import functools
from typing import Any

from mit_fhir.fhir.extract import CS_DATA_SOURCE
from mit_fhir.fhir.items import walk_items
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.submissions import submit
from tests.conftest import load_json

DERS = load_json(QUESTIONNAIRE_DIR / "ders.json")
WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


def weight(option: dict[str, Any]) -> int:
    return int(next(e["valueDecimal"] for e in option["extension"] if e["url"] == WEIGHT))


def ders_items() -> list[dict[str, Any]]:
    """The 36 answered items (not the calculated scores)."""
    return [i for i in DERS["item"] if i.get("type") == "choice"]


def ders_response(patient: str, authored: str, weights: dict[str, int]) -> dict[str, Any]:
    """A completed DERS response whose item `linkId` has the answer of weight weights[linkId]."""
    items = []
    for item in ders_items():
        option = next(o for o in item["answerOption"] if weight(o) == weights[item["linkId"]])
        coding = {k: v for k, v in option["valueCoding"].items() if k != "extension"}
        items.append({"linkId": item["linkId"], "answer": [{"valueCoding": coding}]})
    return {"resourceType": "QuestionnaireResponse",
            "questionnaire": f"{DERS['url']}|{DERS['version']}", "status": "completed",
            "subject": {"reference": f"Patient/{patient}"}, "authored": authored,
            "item": items}


def submit_ders(context: Context, patient: str, authored: str, each: int,
                synthetic: bool = False) -> dict[str, Any]:
    """Store a DERS response with every item at weight `each` (total 36 x each); `synthetic`
    tags it as the demo loader tags its made-up points (the tag travels to its scores)."""
    weights = {i["linkId"]: each for i in ders_items()}
    qr = ders_response(patient, authored, weights)
    if synthetic:
        qr["meta"] = {"tag": [{"system": CS_DATA_SOURCE, "code": "synthetic"}]}
    return submit(context, qr)


def medication_request(patient: str, rxnorm: str, name: str, dose: str, start: str,
                       end: str | None, status: str) -> dict[str, Any]:
    validity = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "MedicationRequest", "status": status, "intent": "order",
        "subject": {"reference": f"Patient/{patient}"}, "authoredOn": start,
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm,
            "display": name}], "text": name},
        "dosageInstruction": [{"text": dose}],
        "dispenseRequest": {"validityPeriod": validity},
    }


@functools.cache
def answer_codes() -> dict[str, dict[int, str]]:
    """linkId -> weight -> answer code, for every weighted item of the catalogue."""
    found: dict[str, dict[int, str]] = {}
    for questionnaire in catalogue():
        for item in walk_items(questionnaire.get("item", [])):
            weighted = {weight(o): o["valueCoding"]["code"] for o in item.get("answerOption", [])
                        if "valueCoding" in o and any(e["url"] == WEIGHT
                                                      for e in o.get("extension", []))}
            if weighted:
                found[item["linkId"]] = weighted
    return found


def catalogue() -> Catalogue:
    return Catalogue.from_directory(QUESTIONNAIRE_DIR)
