"""Medication and crisis plan responses -> R4 MedicationRequest, CarePlan and CareTeam dicts."""

from __future__ import annotations

import copy
import html
import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mit_fhir.fhir.answers import value_of
from mit_fhir.fhir.urls import CS_MIT_FORMS, RXNORM, UCUM, US_CORE_CAREPLAN_CATEGORY

Resource = dict[str, Any]
Item = dict[str, Any]
Value = tuple[str, Any]

COMPLETED = ("completed", "amended")
MEDICATION_STATUS = ("active", "stopped", "on-hold")
STOPPABLE = ("active", "on-hold", "stopped")
PLAN_STATUS = ("active", "completed")
MAX_KEY = 255  # resource.business_key column (mit_fhir/store/schema.py)
# US Core CarePlan slices category on this code (us-core-careplan, category:AssessPlan).
ASSESS_PLAN = {"system": US_CORE_CAREPLAN_CATEGORY, "code": "assess-plan",
               "display": "Assessment and Plan of Treatment"}
CRISIS_PLAN = {"system": CS_MIT_FORMS, "code": "crisis-plan", "display": "Crisis and safety plan"}
CARE_TEAM_NAME = "Crisis contacts"
# A crisis line or emergency department is a service, not a person: its PractitionerRole has an
# organization and no practitioner. A trusted person is not a clinician: RelatedPerson.
SERVICE_ROLES = ("role-crisis-line", "role-emergency-department")
PERSON_ROLES = ("role-trusted-person",)
# R4 CarePlan.author targets; a reference to anything else is left out rather than made invalid.
AUTHOR_TYPES = ("Patient", "Practitioner", "PractitionerRole", "Device", "RelatedPerson",
                "Organization", "CareTeam")
DAY = {"value": 1, "unit": "day", "system": UCUM, "code": "d"}
FHIR_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?)?)?")


class PlanError(ValueError):
    """A response that cannot become a plan; the message names linkIds, never answers."""

    def __init__(self, link_id: str, problem: str) -> None:
        super().__init__(f"{link_id}: {problem}")
        self.link_id = link_id


@dataclass(frozen=True)
class Planned:
    """A resource without id/meta and the key that stays the same across plan versions."""

    business_key: str
    resource: Resource


# --- answers -------------------------------------------------------------------------------

def _values(items: list[Item], link_id: str) -> list[Value]:
    """Every answer value for link_id among items and their descendants, in order."""
    found: list[Value] = []
    for item in items:
        answers = item.get("answer", [])
        if item.get("linkId") == link_id:
            found.extend(v for v in map(value_of, answers) if v is not None)
        found.extend(_values(item.get("item", []), link_id))
        for answer in answers:
            found.extend(_values(answer.get("item", []), link_id))
    return found


def _value(items: list[Item], link_id: str, key: str | None = None) -> Any:
    """The first answer's value (of element `key` when given), or None."""
    for found_key, val in _values(items, link_id):
        if key is None or found_key == key:
            return (val.strip() or None) if isinstance(val, str) else val
    return None


def _required(items: list[Item], link_id: str, key: str | None = None) -> Any:
    val = _value(items, link_id, key)
    if val is None:
        raise PlanError(link_id, f"a required answer{f' ({key})' if key else ''} is missing")
    return val


def _strings(items: list[Item], link_id: str) -> list[str]:
    return [v.strip() for k, v in _values(items, link_id) if k == "valueString" and v.strip()]


def _groups(items: list[Item], link_id: str) -> list[list[Item]]:
    """The child items of each repeat of a root group (R4 repeats a group as sibling items)."""
    return [item.get("item", []) for item in items if item.get("linkId") == link_id]


def _form_items(items: list[Item]) -> dict[str, Item]:
    by_link: dict[str, Item] = {}
    for item in items:
        by_link[item["linkId"]] = item
        by_link.update(_form_items(item.get("item", [])))
    return by_link


def _coding(coding: Resource, form_item: Item | None) -> Resource:
    """system/code/display of an answer coding; display from the form's option if absent."""
    out = {k: coding[k] for k in ("system", "code", "display") if coding.get(k)}
    if "display" not in out:
        for option in (form_item or {}).get("answerOption", []):
            known = option.get("valueCoding", {})
            if known.get("code") == out.get("code") and known.get("display"):
                out["display"] = known["display"]
    return out


def _concept(value: Value, form_item: Item | None) -> Resource:
    """An open-choice answer: the coding, or free text as CodeableConcept.text."""
    key, val = value
    if key == "valueCoding":
        return {"coding": [_coding(val, form_item)]}
    return {"text": " ".join(str(val).split())}


def _code(items: list[Item], link_id: str, allowed: tuple[str, ...]) -> str:
    # fhir.resources checks no bindings; a status outside the required value set stops here.
    code = _required(items, link_id, "valueCoding").get("code")
    if code not in allowed:
        raise PlanError(link_id, f"the answer must be one of {', '.join(allowed)}")
    return str(code)


def _check_form(qr: Resource, questionnaire: Resource, form: str) -> str:
    """The patient id, after checking the response is a completed answer to this form."""
    if not any(c.get("system") == CS_MIT_FORMS and c.get("code") == form
               for c in questionnaire.get("code", [])):
        raise PlanError("Questionnaire.code", f"the Questionnaire is not the {form} form")
    if str(qr.get("questionnaire", "")).partition("|")[0] != questionnaire.get("url"):
        raise PlanError("QuestionnaireResponse.questionnaire", "does not name this Questionnaire")
    if qr.get("status") not in COMPLETED:
        raise PlanError("QuestionnaireResponse.status", "only a completed response is a plan")
    parts = str((qr.get("subject") or {}).get("reference", "")).split("/")
    if len(parts) < 2 or parts[-2] != "Patient" or not parts[-1]:
        raise PlanError("QuestionnaireResponse.subject", "must reference the Patient")
    return parts[-1]


def _key(key: str) -> str:
    if len(key) > MAX_KEY:
        raise PlanError("medplan-med-drug", f"the business key is longer than {MAX_KEY}")
    return key


# --- medication plan -----------------------------------------------------------------------

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
    quantity = _required(items, "medplan-med-daily-dose", "valueQuantity")
    if quantity.get("code") != "mg" or quantity.get("system", UCUM) != UCUM:
        raise PlanError("medplan-med-daily-dose", "the dose must be in UCUM mg")
    dose = Decimal(str(quantity.get("value", 0)))
    if dose <= 0:
        raise PlanError("medplan-med-daily-dose", "the dose must be above zero")
    return dose


def _route_words(route: Resource) -> str:
    if "text" in route:
        return str(route["text"])
    coding = route["coding"][0]
    display = str(coding.get("display") or coding.get("code", ""))
    return display.removesuffix(" route").lower()


def _dosage(items: list[Item], form: dict[str, Item]) -> Resource:
    daily = _daily_dose(items)
    times = _required(items, "medplan-med-times-per-day", "valueInteger")
    if not isinstance(times, int) or times < 1:
        raise PlanError("medplan-med-times-per-day", "must be a whole number from 1")
    text = f"{_number(daily)} mg per day in {times} dose{'s' if times > 1 else ''}"
    repeat: Resource = {"frequency": times, "period": 1, "periodUnit": "d"}
    bounds = {name: _value(items, link_id, "valueDate")
              for name, link_id in (("start", "medplan-med-start"), ("end", "medplan-med-stop"))}
    if any(bounds.values()):
        repeat["boundsPeriod"] = {k: v for k, v in bounds.items() if v}
    dosage: Resource = {"text": text, "timing": {"repeat": repeat}}
    route = next(iter(_values(items, "medplan-med-route")), None)
    if route is not None:
        dosage["route"] = _concept(route, form.get("medplan-med-route"))
        dosage["text"] = f"{text}, {_route_words(dosage['route'])}"
    dosage["doseAndRate"] = [{"doseQuantity": _mg(daily / times)}]
    dosage["maxDosePerPeriod"] = {"numerator": _mg(daily), "denominator": dict(DAY)}
    return dosage


def _requester(items: list[Item]) -> Resource:
    name = _required(items, "medplan-prescriber-name", "valueString")
    ref = _value(items, "medplan-prescriber-ref", "valueReference")
    return {**ref, "display": name} if ref else {"display": name}


def _medication_request(qr: Resource, items: list[Item], form: dict[str, Item],
                        qr_ref: Resource) -> Resource:
    root = qr.get("item", [])
    request: Resource = {
        "resourceType": "MedicationRequest",
        "status": _code(items, "medplan-med-status", MEDICATION_STATUS),
        "intent": "plan",
        "medicationCodeableConcept": _concept(_values(items, "medplan-med-drug")[0],
                                              form.get("medplan-med-drug")),
        "subject": dict(qr["subject"]),
    }
    if qr.get("encounter"):
        request["encounter"] = dict(qr["encounter"])
    request["authoredOn"] = _required(root, "medplan-date", "valueDate")
    request["requester"] = _requester(root)
    reasons = [_concept(v, form.get("medplan-med-reason"))
               for v in _values(items, "medplan-med-reason")]
    if reasons:
        request["reasonCode"] = reasons
    notes = _value(items, "medplan-med-notes", "valueString")
    if notes:
        request["note"] = [{"text": notes}]
    request["dosageInstruction"] = [_dosage(items, form)]
    request["supportingInformation"] = [dict(qr_ref)]
    return request


def medication_requests(qr: Resource, questionnaire: Resource, qr_ref: Resource) -> list[Planned]:
    """One MedicationRequest (intent plan) per medicine of a completed medication plan."""
    patient = _check_form(qr, questionnaire, "medication-plan")
    form = _form_items(questionnaire.get("item", []))
    planned: list[Planned] = []
    seen: dict[str, int] = {}
    for number, items in enumerate(_groups(qr.get("item", []), "medplan-medication"), start=1):
        drug = next(iter(_values(items, "medplan-med-drug")), None)
        if drug is None:
            raise PlanError("medplan-med-drug", f"missing in medplan-medication repeat {number}")
        key = _key(f"medication-plan/{patient}/{_drug_key(drug)}")
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


# --- crisis plan ---------------------------------------------------------------------------

def _period(items: list[Item]) -> Resource:
    period = {"start": _required(items, "crisis-start", "valueDate")}
    end = _value(items, "crisis-review", "valueDate")
    if end:
        period["end"] = end
    return period


def _steps(questionnaire: Resource) -> list[Item]:
    """The safety-plan step groups, in form order: root groups with a `<linkId>-entry` item."""
    return [item for item in questionnaire.get("item", [])
            if item.get("type") == "group"
            and any(c.get("linkId") == f"{item['linkId']}-entry" for c in item.get("item", []))]


def _step_code(step: Item) -> Resource:
    codings = step.get("code") or [{"system": CS_MIT_FORMS, "code": step["linkId"],
                                    "display": step.get("text")}]
    return {"coding": [{k: v for k, v in c.items() if k in ("system", "code", "display")}
                       for c in codings]}


def _narrative(title: str, period: Resource, sections: list[tuple[str, list[str]]],
               status: str) -> Resource:
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    when = f"from {period['start']}" + (f" to {period['end']}" if "end" in period else "")
    parts = [f"<p><b>{esc(title)}</b> ({esc(status)}, {esc(when)})</p>"]
    for heading, entries in sections:
        items = "".join(f"<li>{esc(entry)}</li>" for entry in entries)
        parts.append(f"<p>{esc(heading)}</p><ul>{items}</ul>")
    if not sections:
        parts.append("<p>No safety-plan steps recorded.</p>")
    div = f'<div xmlns="http://www.w3.org/1999/xhtml">{"".join(parts)}</div>'
    return {"status": "generated", "div": div}


def _care_plan(qr: Resource, questionnaire: Resource, status: str, period: Resource,
               refs: tuple[Resource, Resource]) -> Resource:
    items = qr.get("item", [])
    activity_status = "in-progress" if status == "active" else "completed"
    activities, sections = [], []
    for step in _steps(questionnaire):
        entries = _strings(items, f"{step['linkId']}-entry")
        if entries:
            activities.append({"detail": {"code": _step_code(step), "status": activity_status,
                                          "description": "\n".join(entries)}})
            sections.append((str(step.get("text", step["linkId"])), entries))
    title = str(questionnaire.get("title") or CRISIS_PLAN["display"])
    plan: Resource = {
        "resourceType": "CarePlan",
        "text": _narrative(title, period, sections, status),
        "status": status,
        "intent": "plan",
        "category": [{"coding": [dict(ASSESS_PLAN)]}, {"coding": [dict(CRISIS_PLAN)]}],
        "title": title,
        "subject": dict(qr["subject"]),
        "period": period,
    }
    if qr.get("encounter"):
        plan["encounter"] = dict(qr["encounter"])
    if qr.get("authored"):
        plan["created"] = qr["authored"]
    author = qr.get("author") or {}
    if author and str(author.get("reference", "")).split("/")[0] in ("", *AUTHOR_TYPES):
        plan["author"] = dict(author)
    qr_ref, care_team_ref = refs
    plan["careTeam"] = [dict(care_team_ref)]
    menu = _value(items, "crisis-step-self-coping-menu-ref", "valueReference")
    plan["supportingInfo"] = [dict(qr_ref), *([dict(menu)] if menu else [])]
    if activities:
        plan["activity"] = activities
    return plan


def _contact_resources(cid: str, role: Resource, contact: dict[str, Any],
                       subject: Resource) -> list[Resource]:
    """The contained resource(s) for one contact; the first is the participant's member."""
    name, ref = contact["name"], contact["ref"] or {}
    ref_type = str(ref.get("reference", "")).split("/")[0]
    telecom = [{"system": "phone", "value": contact["phone"]}]
    if role.get("code") in PERSON_ROLES:
        return [{"resourceType": "RelatedPerson", "id": cid, "patient": dict(subject),
                 "name": [{"text": name}], "telecom": telecom}]
    member: Resource = {"resourceType": "PractitionerRole", "id": cid,
                        "code": [{"coding": [role]}], "telecom": telecom}
    if contact["availability"]:
        member["availabilityExceptions"] = contact["availability"]
    if ref_type == "Organization":
        member["organization"] = {**ref, "display": name}
    if role.get("code") not in SERVICE_ROLES:
        member["practitioner"] = {**ref, "display": name} if ref_type == "Practitioner" else {
            "display": name}
        return [member]
    if "organization" in member:
        return [member]
    organization = {"resourceType": "Organization", "id": f"{cid}-organization", "name": name}
    member["organization"] = {"reference": f"#{cid}-organization", "display": name}
    return [member, organization]


def _contact(items: list[Item]) -> dict[str, Any]:
    return {
        "name": _required(items, "crisis-contact-name", "valueString"),
        "phone": _required(items, "crisis-contact-phone", "valueString"),
        "ref": _value(items, "crisis-contact-ref", "valueReference"),
        "availability": _value(items, "crisis-contact-availability", "valueString"),
        "conditions": _value(items, "crisis-contact-conditions", "valueString"),
    }


def _care_team(qr: Resource, questionnaire: Resource, status: str,
               period: Resource) -> Resource:
    form = _form_items(questionnaire.get("item", []))
    groups = _groups(qr.get("item", []), "crisis-contact")
    if not groups:
        raise PlanError("crisis-contact", "the plan lists no crisis contact")
    roles = [_coding(_required(items, "crisis-contact-role", "valueCoding"),
                     form.get("crisis-contact-role")) for items in groups]
    repeated = Counter(r.get("code") for r in roles)
    contained, participants, notes = [], [], []
    for number, (items, role) in enumerate(zip(groups, roles, strict=True), start=1):
        cid, contact = f"contact-{number}", _contact(items)
        contained.extend(_contact_resources(cid, role, contact, qr["subject"]))
        participants.append({"role": [{"coding": [role]}],
                             "member": {"reference": f"#{cid}", "display": contact["name"]}})
        # Notes name the role, not the person; the number tells two contacts of one role apart.
        label = str(role.get("display") or role.get("code"))
        if repeated[role.get("code")] > 1:
            label += f" (contact {number})"
        if contact["availability"] and role.get("code") in PERSON_ROLES:
            notes.append({"text": f"{label}, availability: {contact['availability']}"})
        if contact["conditions"]:
            notes.append({"text": f"{label}: {contact['conditions']}"})
    team: Resource = {
        "resourceType": "CareTeam",
        "contained": contained,
        "status": "active" if status == "active" else "inactive",
        "name": CARE_TEAM_NAME,
        "subject": dict(qr["subject"]),
        "period": period,
        "participant": participants,
    }
    if notes:
        team["note"] = notes
    return team


def crisis_plan(qr: Resource, questionnaire: Resource, qr_ref: Resource,
                care_team_ref: Resource) -> tuple[Planned, Planned]:
    """(CarePlan, CareTeam) of a completed crisis contact and safety plan."""
    patient = _check_form(qr, questionnaire, "crisis-contact-plan")
    items = qr.get("item", [])
    status = _code(items, "crisis-status", PLAN_STATUS)
    period = _period(items)
    plan = _care_plan(qr, questionnaire, status, period, (qr_ref, care_team_ref))
    team = _care_team(qr, questionnaire, status, period)
    return Planned(f"crisis-plan/{patient}", plan), Planned(f"crisis-team/{patient}", team)
