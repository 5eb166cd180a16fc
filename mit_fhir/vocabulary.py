"""The one vocabulary: URLs, media types, id and date patterns, tokens, resource-type sets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Media types (FHIR R4 http.html#mime-type): the service answers FHIR JSON and accepts plain JSON.
FHIR_JSON = "application/fhir+json"
JSON = "application/json"
ACCEPTED_JSON = frozenset({FHIR_JSON, JSON})

# FHIR R4 datatypes.html#id and a resource type name (regexes of the specification; matched whole).
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")

# Resource types whose instances belong to one patient (their subject, or Task.for): a token with
# patient context reaches only that patient's instances (security/scopes.py, security/guard.py).
PATIENT_DATA = frozenset({
    "QuestionnaireResponse", "Observation", "MedicationRequest", "CarePlan", "CareTeam",
    "Provenance", "AuditEvent", "Task",
})
# Resource types the outbox sends to the host EHR (sync/), a subset of PATIENT_DATA.
SYNCED_TYPES = frozenset({
    "QuestionnaireResponse", "Observation", "MedicationRequest", "CarePlan", "CareTeam", "Task",
})


def token(coding: Mapping[str, Any], value_key: str = "code") -> str:
    """A coding's (or identifier's, value_key="value") search token `system|code`; `|code` when
    the system is missing, as FHIR search spells a code with no system."""
    return f"{coding.get('system') or ''}|{coding.get(value_key) or ''}"


def canonical(resource: Mapping[str, Any]) -> str:
    """A canonical resource's reference `url|version`, or its bare url when it has no version."""
    version = resource.get("version")
    return f"{resource['url']}|{version}" if version else str(resource["url"])

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
