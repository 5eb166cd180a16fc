"""Medication plan responses -> R4 MedicationRequest (intent plan), one per medicine."""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation

from mit_fhir.fhir.extract import data_source_tags
from mit_fhir.fhir.plans import (
    FHIR_DATE,
    Item,
    PlanError,
    Planned,
    Resource,
    Value,
    answer_code,
    answer_groups,
    answer_value,
    answer_values,
    checked_key,
    form_concept,
    form_items,
    plan_patient,
    required_answer,
)
from mit_fhir.vocabulary import RXNORM, UCUM

MEDICATION_STATUS = ("active", "stopped", "on-hold")
STOPPABLE = ("active", "on-hold", "stopped")
DAY = {"value": 1, "unit": "day", "system": UCUM, "code": "d"}
# No medicine is taken at 100 g a day; a larger number is a typing error, and beyond 28 digits
# Decimal cannot quantize it to the microgram (issue 12: 1e30 was a 500, not a 422).
MAX_DAILY_MG = 100_000


def _number(value: Decimal) -> int | float:
    # Thirds of a dose do not terminate; a microgram is finer than any oral mg dose is given.
    exact = value.quantize(Decimal("0.001")).normalize()
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def _mg(value: Decimal) -> Resource:
    return {"value": _number(value), "unit": "mg", "system": UCUM, "code": "mg"}


def _drug_key(drug: Value) -> str:
    key, val = drug
    if key == "valueCoding" and val.get("code"):
        system = val.get("system")
        return str(val["code"]) if system == RXNORM else f"{system}|{val['code']}"
    text = " ".join(str(val).split()).casefold() if key == "valueString" else ""
    if not text:
        raise PlanError("medplan-med-drug", "the answer must be a coding or free text")
    # Prefixed so that free text can never take the key of an RxNorm code.
    return f"text:{text}"


def _daily_dose(items: list[Item]) -> Decimal:
    quantity = required_answer(items, "medplan-med-daily-dose", "valueQuantity")
    if quantity.get("code") != "mg" or quantity.get("system", UCUM) != UCUM:
        raise PlanError("medplan-med-daily-dose", "the dose must be in UCUM mg")
    value = quantity.get("value", 0)
    try:
        dose = Decimal(str(value)) if _is_number(value) else Decimal("NaN")
    except InvalidOperation:  # a string that is no number
        dose = Decimal("NaN")
    if not dose.is_finite():
        raise PlanError("medplan-med-daily-dose", "the dose must be a number")
    if dose <= 0:
        raise PlanError("medplan-med-daily-dose", "the dose must be above zero")
    if dose > MAX_DAILY_MG:
        raise PlanError("medplan-med-daily-dose", f"the dose must be at most {MAX_DAILY_MG} mg")
    return dose


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _route_words(route: Resource) -> str:
    if "text" in route:
        return str(route["text"])
    coding = route["coding"][0]
    display = str(coding.get("display") or coding.get("code", ""))
    return display.removesuffix(" route").lower()


def _dosage(items: list[Item], form: dict[str, Item]) -> Resource:
    daily = _daily_dose(items)
    times = required_answer(items, "medplan-med-times-per-day", "valueInteger")
    if not isinstance(times, int) or times < 1:
        raise PlanError("medplan-med-times-per-day", "must be a whole number from 1")
    text = f"{_number(daily)} mg per day in {times} dose{'s' if times > 1 else ''}"
    repeat: Resource = {"frequency": times, "period": 1, "periodUnit": "d"}
    bounds = {name: answer_value(items, link_id, "valueDate")
              for name, link_id in (("start", "medplan-med-start"), ("end", "medplan-med-stop"))}
    if any(bounds.values()):
        repeat["boundsPeriod"] = {k: v for k, v in bounds.items() if v}
    dosage: Resource = {"text": text, "timing": {"repeat": repeat}}
    route = next(iter(answer_values(items, "medplan-med-route")), None)
    if route is not None:
        dosage["route"] = form_concept(route, form.get("medplan-med-route"))
        dosage["text"] = f"{text}, {_route_words(dosage['route'])}"
    dosage["doseAndRate"] = [{"doseQuantity": _mg(daily / times)}]
    dosage["maxDosePerPeriod"] = {"numerator": _mg(daily), "denominator": dict(DAY)}
    return dosage


def _requester(items: list[Item]) -> Resource:
    name = required_answer(items, "medplan-prescriber-name", "valueString")
    ref = answer_value(items, "medplan-prescriber-ref", "valueReference")
    return {**ref, "display": name} if ref else {"display": name}


def _medication_request(qr: Resource, items: list[Item], form: dict[str, Item],
                        qr_ref: Resource) -> Resource:
    root = qr.get("item", [])
    request: Resource = {
        "resourceType": "MedicationRequest",
        "status": answer_code(items, "medplan-med-status", MEDICATION_STATUS),
        "intent": "plan",
        "medicationCodeableConcept": form_concept(answer_values(items, "medplan-med-drug")[0],
                                              form.get("medplan-med-drug")),
        "subject": dict(qr["subject"]),
    }
    if qr.get("encounter"):
        request["encounter"] = dict(qr["encounter"])
    request["authoredOn"] = required_answer(root, "medplan-date", "valueDate")
    request["requester"] = _requester(root)
    reasons = [form_concept(v, form.get("medplan-med-reason"))
               for v in answer_values(items, "medplan-med-reason")]
    if reasons:
        request["reasonCode"] = reasons
    notes = answer_value(items, "medplan-med-notes", "valueString")
    if notes:
        request["note"] = [{"text": notes}]
    request["dosageInstruction"] = [_dosage(items, form)]
    request["supportingInformation"] = [dict(qr_ref)]
    if tags := data_source_tags(qr):  # a synthetic (demo) plan labels its requests too
        request["meta"] = {"tag": tags}
    return request


def medication_requests(qr: Resource, questionnaire: Resource, qr_ref: Resource) -> list[Planned]:
    """One MedicationRequest (intent plan) per medicine of a completed medication plan."""
    patient = plan_patient(qr, questionnaire, "medication-plan")
    form = form_items(questionnaire.get("item", []))
    planned: list[Planned] = []
    seen: dict[str, int] = {}
    medicines = answer_groups(qr.get("item", []), "medplan-medication")
    for number, items in enumerate(medicines, start=1):
        drug = next(iter(answer_values(items, "medplan-med-drug")), None)
        if drug is None:
            raise PlanError("medplan-med-drug", f"missing in medplan-medication repeat {number}")
        key = checked_key(f"medication-plan/{patient}/{_drug_key(drug)}")
        if key in seen:
            raise PlanError("medplan-med-drug", f"medplan-medication repeats {seen[key]} and "
                            f"{number} name the same medicine")
        seen[key] = number
        planned.append(Planned(key, _medication_request(qr, items, form, qr_ref)))
    if not planned:
        raise PlanError("medplan-medication", "the plan lists no medicine")
    return planned


def stopped(existing: Resource, when: str) -> Resource:
    """A copy of a request a new plan version no longer lists: stopped, bounded at `when`."""
    status = existing.get("status")
    if status not in STOPPABLE:
        raise PlanError("MedicationRequest.status", f"a {status} request cannot be stopped")
    if not FHIR_DATE.fullmatch(when):
        raise PlanError("medplan-date", "the stop date must be a FHIR date")
    result = copy.deepcopy(existing)
    if status != "stopped":
        result["status"] = "stopped"
        result.setdefault("statusReason", {"text": "No longer in the medication plan"})
    for dosage in result.get("dosageInstruction", []):
        repeat = dosage.setdefault("timing", {}).setdefault("repeat", {})
        # bounds[x] is a choice: a Duration or Range bound is left as the prescriber wrote it.
        if not any(k.startswith("bounds") and k != "boundsPeriod" for k in repeat):
            repeat.setdefault("boundsPeriod", {}).setdefault("end", when)
    return result
