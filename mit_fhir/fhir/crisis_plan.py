"""Crisis contact plan responses -> a US Core CarePlan and a CareTeam."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from mit_fhir.fhir.plans import (
    Item,
    PlanError,
    Planned,
    Resource,
    answer_code,
    answer_groups,
    answer_strings,
    answer_value,
    form_coding,
    form_items,
    plan_patient,
    required_answer,
)
from mit_fhir.fhir.references import reference_type
from mit_fhir.vocabulary import CS_MIT_FORMS, US_CORE_CAREPLAN_CATEGORY

PLAN_STATUS = ("active", "completed")
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


def _period(items: list[Item]) -> Resource:
    period = {"start": required_answer(items, "crisis-start", "valueDate")}
    end = answer_value(items, "crisis-review", "valueDate")
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
        entries = answer_strings(items, f"{step['linkId']}-entry")
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
    if author and (not author.get("reference")
                   or reference_type(author["reference"]) in AUTHOR_TYPES):
        plan["author"] = dict(author)
    qr_ref, care_team_ref = refs
    plan["careTeam"] = [dict(care_team_ref)]
    menu = answer_value(items, "crisis-step-self-coping-menu-ref", "valueReference")
    plan["supportingInfo"] = [dict(qr_ref), *([dict(menu)] if menu else [])]
    if activities:
        plan["activity"] = activities
    return plan


def _contact_resources(cid: str, role: Resource, contact: dict[str, Any],
                       subject: Resource) -> list[Resource]:
    """The contained resource(s) for one contact; the first is the participant's member."""
    name, ref = contact["name"], contact["ref"] or {}
    ref_type = reference_type(ref.get("reference"))
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
        "name": required_answer(items, "crisis-contact-name", "valueString"),
        "phone": required_answer(items, "crisis-contact-phone", "valueString"),
        "ref": answer_value(items, "crisis-contact-ref", "valueReference"),
        "availability": answer_value(items, "crisis-contact-availability", "valueString"),
        "conditions": answer_value(items, "crisis-contact-conditions", "valueString"),
    }


def _care_team(qr: Resource, questionnaire: Resource, status: str,
               period: Resource) -> Resource:
    form = form_items(questionnaire.get("item", []))
    groups = answer_groups(qr.get("item", []), "crisis-contact")
    if not groups:
        raise PlanError("crisis-contact", "the plan lists no crisis contact")
    roles = [form_coding(required_answer(items, "crisis-contact-role", "valueCoding"),
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
    patient = plan_patient(qr, questionnaire, "crisis-contact-plan")
    items = qr.get("item", [])
    status = answer_code(items, "crisis-status", PLAN_STATUS)
    period = _period(items)
    plan = _care_plan(qr, questionnaire, status, period, (qr_ref, care_team_ref))
    team = _care_team(qr, questionnaire, status, period)
    return Planned(f"crisis-plan/{patient}", plan), Planned(f"crisis-team/{patient}", team)
