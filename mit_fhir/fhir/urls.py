"""Canonical URLs and extension URLs the project uses (see docs/authoring.md)."""

from __future__ import annotations

BASE = "https://mit-fhir.org/fhir"
CS_INSTRUMENT = f"{BASE}/CodeSystem/instrument"
CS_MIT_FORMS = f"{BASE}/CodeSystem/mit-forms"
CS_CHANGE_CATEGORY = f"{BASE}/CodeSystem/change-category"
CS_RCI_METHOD = f"{BASE}/CodeSystem/rci-method"

EXT_SCORE_RULE = f"{BASE}/StructureDefinition/score-rule"
EXT_LICENSED_TEXT_SLOT = f"{BASE}/StructureDefinition/licensed-text-slot"
EXT_RELIABLE_CHANGE = f"{BASE}/StructureDefinition/reliable-change"
# On an answerOption: another code of the same answer (the project's own, LOINC's form's).
EXT_EQUIVALENT_CODING = f"{BASE}/StructureDefinition/equivalent-coding"

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition"
EXT_CALCULATED_EXPRESSION = f"{SDC}/sdc-questionnaire-calculatedExpression"
EXT_OBSERVATION_EXTRACT = f"{SDC}/sdc-questionnaire-observationExtract"
EXT_OBSERVATION_EXTRACT_CATEGORY = f"{SDC}/sdc-questionnaire-observation-extract-category"
EXT_VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
EXT_ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
EXT_ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_QUESTIONNAIRE_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"


def extension(element: dict, url: str) -> dict | None:
    """The first extension with this URL on an element, or None."""
    for ext in element.get("extension", ()):
        if ext.get("url") == url:
            return ext
    return None


# Medication and crisis plans (mit_fhir/fhir/medication_plan.py, crisis_plan.py)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
US_CORE_CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
