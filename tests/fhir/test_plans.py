"""Medication and crisis plans: golden resources, R4 and US Core shape, plan versions, errors."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from mit_fhir.fhir.crisis_plan import crisis_plan
from mit_fhir.fhir.medication_plan import medication_requests, stopped
from mit_fhir.fhir.plans import PlanError, Planned
from mit_fhir.fhir.validate import check_against
from mit_fhir.paths import PROFILE_DIR, QUESTIONNAIRE_DIR
from mit_fhir.vocabulary import CS_MIT_FORMS, RXNORM, US_CORE_CAREPLAN_CATEGORY
from tests.conftest import DATA, load_json, sample
from tests.fhir.test_extract import compare_golden

GOLDEN = DATA / "golden" / "plans"
MED_FORM = load_json(QUESTIONNAIRE_DIR / "medication-plan.json")
CRISIS_FORM = load_json(QUESTIONNAIRE_DIR / "crisis-contact-plan.json")
TEAM_REF = {"reference": "CareTeam/crisis-team"}
Resource = dict[str, Any]


def qr_ref(qr: Resource) -> Resource:
    return {"reference": f"QuestionnaireResponse/{qr['id']}"}


def meds(qr: Resource) -> list[Planned]:
    check_against(qr, MED_FORM)  # every variant below is an answer the form accepts
    return medication_requests(qr, MED_FORM, qr_ref(qr))


def crisis(qr: Resource) -> tuple[Planned, Planned]:
    check_against(qr, CRISIS_FORM)
    return crisis_plan(qr, CRISIS_FORM, qr_ref(qr), TEAM_REF)


def groups(qr: Resource, link_id: str) -> list[Resource]:
    return [item for item in qr["item"] if item["linkId"] == link_id]


def child(group: Resource, link_id: str) -> Resource:
    found: Resource = next(item for item in group["item"] if item["linkId"] == link_id)
    return found


def by_drug(planned: list[Planned]) -> dict[str, Planned]:
    return {p.resource["medicationCodeableConcept"]["coding"][0]["code"]: p for p in planned}


def as_golden(planned: list[Planned]) -> list[Resource]:
    return [{"business_key": p.business_key, "resource": p.resource} for p in planned]


def daily_mg(request: Resource) -> float:
    dosage = request["dosageInstruction"][0]
    per_dose = dosage["doseAndRate"][0]["doseQuantity"]
    assert per_dose["code"] == "mg" and dosage["maxDosePerPeriod"]["numerator"]["code"] == "mg"
    total = per_dose["value"] * dosage["timing"]["repeat"]["frequency"]
    assert total == dosage["maxDosePerPeriod"]["numerator"]["value"]
    return float(total)


def add_contact(qr: Resource, role: str, name: str, phone: str, **extra: str) -> None:
    display = {"role-crisis-line": "Crisis line", "role-trusted-person": "Trusted person"}[role]
    items = [
        {"linkId": "crisis-contact-role",
         "answer": [{"valueCoding": {"system": CS_MIT_FORMS, "code": role, "display": display}}]},
        {"linkId": "crisis-contact-name", "answer": [{"valueString": name}]},
        {"linkId": "crisis-contact-phone", "answer": [{"valueString": phone}]},
    ]
    items += [{"linkId": f"crisis-contact-{k}", "answer": [{"valueString": v}]}
              for k, v in extra.items()]
    last = max(i for i, item in enumerate(qr["item"]) if item["linkId"] == "crisis-contact")
    qr["item"].insert(last + 1, {"linkId": "crisis-contact", "item": items})


def wider_crisis_sample() -> Resource:
    """The case's plan plus a crisis line and a trusted person (every contained shape)."""
    qr = sample("crisis-contact-plan")
    add_contact(qr, "role-crisis-line", "Regional crisis line (fictitious)", "+39 000 000 0009",
                availability="24 hours")
    add_contact(qr, "role-trusted-person", "Sister (fictitious)", "+39 000 000 0003",
                availability="evenings", conditions="When I cannot reach the clinicians.")
    return qr


def all_resources() -> list[tuple[str, Resource]]:
    free_text = sample("medication-plan")
    child(groups(free_text, "medplan-medication")[0], "medplan-med-drug")["answer"] = [
        {"valueString": "quetiapine"}]
    completed = sample("crisis-contact-plan")
    completed["item"][2]["answer"] = [{"valueCoding": {
        "system": "http://hl7.org/fhir/request-status", "code": "completed"}}]
    planned = [*meds(sample("medication-plan")), *meds(sample("medication-plan", "changed")),
               *meds(free_text), *crisis(wider_crisis_sample()), *crisis(completed),
               *crisis(sample("crisis-contact-plan", "updated"))]
    old = by_drug(meds(sample("medication-plan")))["38404"].resource
    return [(p.business_key, p.resource) for p in planned] + [
        ("stopped", stopped(old, "2024-06-03"))]


# --- golden files ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["complete", "changed"])
def test_medication_plan_matches_golden(name: str) -> None:
    compare_golden(GOLDEN / f"medication-plan-{name}.json",
                   as_golden(meds(sample("medication-plan", name))))


@pytest.mark.parametrize("name", ["complete", "updated"])
def test_crisis_plan_matches_golden(name: str) -> None:
    compare_golden(GOLDEN / f"crisis-contact-plan-{name}.json",
                   as_golden(list(crisis(sample("crisis-contact-plan", name)))))


def test_new_plan_version_matches_golden() -> None:
    """v1 -> v2: the kept drug is re-planned under its key, the dropped one is stopped."""
    before = by_drug(meds(sample("medication-plan")))
    after = meds(sample("medication-plan", "changed"))
    dropped = sorted(set(before) - set(by_drug(after)))
    assert dropped == ["38404"]
    result = {"planned": as_golden(after),
              "stopped": [stopped(before[code].resource, "2024-06-03") for code in dropped]}
    compare_golden(GOLDEN / "medication-plan-v1-to-v2.json", result)


# --- medication plan -------------------------------------------------------------------------

def test_case_report_plan_is_topiramate_75_and_fluoxetine_60_a_day() -> None:
    planned = by_drug(meds(sample("medication-plan")))
    assert sorted(planned) == ["38404", "4493"]
    for code, mg in (("38404", 75), ("4493", 60)):
        request = planned[code].resource
        assert request["medicationCodeableConcept"]["coding"][0]["system"] == RXNORM
        assert (request["status"], request["intent"]) == ("active", "plan")
        assert daily_mg(request) == mg
        assert request["dosageInstruction"][0]["text"] == f"{mg} mg per day in 1 dose, oral"
        assert planned[code].business_key == f"medication-plan/example/{code}"


def test_doses_are_split_per_administration() -> None:
    qr = sample("medication-plan")
    child(groups(qr, "medplan-medication")[0], "medplan-med-times-per-day")["answer"] = [
        {"valueInteger": 2}]
    dosage = by_drug(meds(qr))["38404"].resource["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 37.5
    assert dosage["timing"]["repeat"]["frequency"] == 2
    assert dosage["text"] == "75 mg per day in 2 doses, oral"


def test_a_changed_dose_changes_only_that_request() -> None:
    qr = sample("medication-plan")
    before = by_drug(meds(qr))
    dose = child(groups(qr, "medplan-medication")[1], "medplan-med-daily-dose")
    dose["answer"][0]["valueQuantity"]["value"] = 40
    after = by_drug(meds(qr))
    assert after["38404"] == before["38404"]
    assert after["4493"].business_key == before["4493"].business_key
    assert after["4493"].resource != before["4493"].resource
    assert daily_mg(after["4493"].resource) == 40
    changed = {k for k in after["4493"].resource
               if after["4493"].resource[k] != before["4493"].resource[k]}
    assert changed == {"dosageInstruction"}


def test_the_next_plan_version_keeps_the_key_of_a_kept_drug() -> None:
    before = by_drug(meds(sample("medication-plan")))
    after = by_drug(meds(sample("medication-plan", "changed")))
    assert sorted(after) == ["4493"]
    assert after["4493"].business_key == before["4493"].business_key
    assert daily_mg(after["4493"].resource) == 40
    assert after["4493"].resource["authoredOn"] == "2024-06-03"


def test_a_free_text_drug_maps_to_text() -> None:
    qr = sample("medication-plan")
    child(groups(qr, "medplan-medication")[0], "medplan-med-drug")["answer"] = [
        {"valueString": "  Quetiapine   XR "}]
    planned = meds(qr)
    assert planned[0].resource["medicationCodeableConcept"] == {"text": "Quetiapine XR"}
    assert planned[0].business_key == "medication-plan/example/text:quetiapine xr"


def test_the_prescriber_name_alone_is_a_display_only_requester() -> None:
    qr = sample("medication-plan")
    qr["item"] = [i for i in qr["item"] if i["linkId"] != "medplan-prescriber-ref"]
    requester = meds(qr)[0].resource["requester"]
    assert requester == {"display": "Dr Paolo Esempio (fictitious psychiatrist)"}


@pytest.mark.parametrize("drug", [
    {"valueCoding": {"system": RXNORM, "code": "4493", "display": "fluoxetine"}},
    {"valueString": "Fluoxetine"},
])
def test_a_drug_listed_twice_is_an_error_that_names_no_drug_or_patient(drug: Resource) -> None:
    qr = sample("medication-plan")
    first, second = groups(qr, "medplan-medication")
    child(second, "medplan-med-drug")["answer"] = [drug]
    child(first, "medplan-med-drug")["answer"] = [copy.deepcopy(drug)]
    if "valueString" in drug:
        child(first, "medplan-med-drug")["answer"] = [{"valueString": " fluoxetine"}]
    with pytest.raises(PlanError) as caught:
        meds(qr)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError) and caught.value.link_id == "medplan-med-drug"
    assert "medplan-med-drug" in message
    for secret in ("fluoxetine", "Fluoxetine", "4493", "example", "Patient"):
        assert secret not in message


def test_stopped_ends_an_active_request_at_the_new_plan_date() -> None:
    request = by_drug(meds(sample("medication-plan")))["38404"].resource
    original = copy.deepcopy(request)
    result = stopped(request, "2024-06-03")
    assert request == original, "the stored resource must not be mutated"
    assert result["status"] == "stopped"
    assert result["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {
        "start": "2024-03-01", "end": "2024-06-03"}
    unchanged = {k for k in result if k not in ("status", "statusReason", "dosageInstruction")}
    assert all(result[k] == request[k] for k in unchanged)


def test_stopped_keeps_a_planned_stop_date_and_refuses_finished_requests() -> None:
    request = by_drug(meds(sample("medication-plan")))["4493"].resource
    request["status"] = "on-hold"
    request["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"] = "2024-05-01"
    result = stopped(request, "2024-06-03")
    assert result["status"] == "stopped"
    assert result["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"] == (
        "2024-05-01")
    with pytest.raises(PlanError):
        stopped({**request, "status": "completed"}, "2024-06-03")


@pytest.mark.parametrize(("change", "link_id"), [
    (lambda qr: qr.update(status="in-progress"), "QuestionnaireResponse.status"),
    (lambda qr: qr.update(questionnaire="https://mit-fhir.org/fhir/Questionnaire/phq-9"),
     "QuestionnaireResponse.questionnaire"),
    (lambda qr: qr.update(subject={"reference": "Group/example"}),
     "QuestionnaireResponse.subject"),
])
def test_a_response_that_is_not_a_completed_plan_is_refused(change: Any, link_id: str) -> None:
    qr = sample("medication-plan")
    change(qr)
    with pytest.raises(PlanError) as caught:
        medication_requests(qr, MED_FORM, qr_ref(qr))
    assert caught.value.link_id == link_id
    with pytest.raises(PlanError):
        crisis_plan(sample("medication-plan"), MED_FORM, qr_ref(qr), TEAM_REF)


# --- crisis plan -----------------------------------------------------------------------------

def test_one_activity_per_step_with_entries_in_form_order() -> None:
    qr = sample("crisis-contact-plan")
    groups(qr, "crisis-step-distraction")[0]["item"][0]["answer"] = [{"valueString": "  "}]
    qr["item"] = [i for i in qr["item"] if i["linkId"] != "crisis-step-warning-signs"]
    plan, _ = crisis(qr)
    codes = [a["detail"]["code"]["coding"][0]["code"] for a in plan.resource["activity"]]
    assert codes == ["crisis-step-self-coping", "crisis-step-support-people",
                     "crisis-step-professional-help", "crisis-step-safe-environment"]
    first = plan.resource["activity"][0]["detail"]
    assert first["status"] == "in-progress"
    assert first["description"] == "Slow breathing\nA brisk walk\nListening to music"


def test_care_plan_links_the_team_the_response_and_the_regulation_menu() -> None:
    plan, team = crisis(sample("crisis-contact-plan"))
    resource = plan.resource
    assert (plan.business_key, team.business_key) == ("crisis-plan/example", "crisis-team/example")
    assert resource["careTeam"] == [TEAM_REF]
    assert resource["supportingInfo"] == [
        {"reference": "QuestionnaireResponse/crisis-contact-plan-complete"},
        {"reference": "QuestionnaireResponse/mit-regulation-menu-complete"}]
    assert resource["period"] == {"start": "2024-03-01", "end": "2024-09-01"}
    assert resource["created"] == "2024-03-01T10:00:00+01:00"


def test_contacts_carry_role_name_phone_and_availability() -> None:
    _, team = crisis(sample("crisis-contact-plan"))
    contained = {r["id"]: r for r in team.resource["contained"]}
    seen = []
    for participant in team.resource["participant"]:
        member = contained[participant["member"]["reference"].removeprefix("#")]
        role = participant["role"][0]["coding"][0]
        seen.append((role["code"], participant["member"]["display"],
                     member["telecom"][0]["value"], member["availabilityExceptions"]))
        assert member["resourceType"] == "PractitionerRole"
        assert member["code"][0]["coding"][0] == role
    assert seen == [
        ("role-psychiatrist", "Dr Paolo Esempio (fictitious psychiatrist)", "+39 000 000 0001",
         "weekdays 9-18, subject to availability"),
        ("role-therapist", "Dr Anna Prova (fictitious therapist)", "+39 000 000 0002",
         "weekdays 9-18, subject to availability"),
    ]


def test_services_and_trusted_people_get_their_own_resource_types() -> None:
    _, team = crisis(wider_crisis_sample())
    contained = {r["id"]: r for r in team.resource["contained"]}
    line, person = contained["contact-3"], contained["contact-4"]
    assert line["resourceType"] == "PractitionerRole" and "practitioner" not in line
    assert line["organization"]["reference"] == "#contact-3-organization"
    assert contained["contact-3-organization"]["name"] == "Regional crisis line (fictitious)"
    assert line["availabilityExceptions"] == "24 hours"
    assert person["resourceType"] == "RelatedPerson"
    assert person["patient"] == {"reference": "Patient/example"}
    assert person["telecom"] == [{"system": "phone", "value": "+39 000 000 0003"}]
    notes = [n["text"] for n in team.resource["note"]]
    assert "Trusted person: When I cannot reach the clinicians." in notes
    assert "Trusted person, availability: evenings" in notes
    assert not any("Sister" in n or "Dr " in n for n in notes), "notes name roles, not people"


def test_the_narrative_escapes_what_the_patient_wrote() -> None:
    qr = sample("crisis-contact-plan")
    groups(qr, "crisis-step-warning-signs")[0]["item"][0]["answer"].append(
        {"valueString": "<script>alert('x')</script> & <b>"})
    plan, _ = crisis(qr)
    div = plan.resource["text"]["div"]
    assert plan.resource["text"]["status"] == "generated"
    assert "<script" not in div and "&lt;script&gt;" in div and "&amp; &lt;b&gt;" in div
    root = ET.fromstring(div)  # well-formed XHTML
    assert root.tag == "{http://www.w3.org/1999/xhtml}div"
    assert "Slow breathing" in "".join(root.itertext())


def test_a_completed_plan_has_completed_activities_and_an_inactive_team() -> None:
    qr = sample("crisis-contact-plan")
    groups(qr, "crisis-status")[0]["answer"] = [{"valueCoding": {
        "system": "http://hl7.org/fhir/request-status", "code": "completed"}}]
    plan, team = crisis(qr)
    assert plan.resource["status"] == "completed"
    assert {a["detail"]["status"] for a in plan.resource["activity"]} == {"completed"}
    assert team.resource["status"] == "inactive"


def test_an_updated_plan_changes_only_the_phone_and_the_changed_step() -> None:
    plan_1, team_1 = crisis(sample("crisis-contact-plan"))
    plan_2, team_2 = crisis(sample("crisis-contact-plan", "updated"))
    assert (plan_1.business_key, team_1.business_key) == (plan_2.business_key,
                                                          team_2.business_key)
    changed = [i for i, (a, b) in enumerate(zip(plan_1.resource["activity"],
                                                plan_2.resource["activity"], strict=True))
               if a != b]
    assert changed == [2]
    assert team_2.resource["contained"][1]["telecom"][0]["value"] == "+39 000 000 0004"
    assert team_1.resource["participant"] == team_2.resource["participant"]


# --- R4 and US Core shape --------------------------------------------------------------------

def validate(resource: Resource) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    for inner in resource.get("contained", []):
        get_fhir_model_class(inner["resourceType"]).model_validate(inner)
        # dom-3: every contained resource is referenced from within the container
        assert f'"#{inner["id"]}"' in json.dumps(resource)


@pytest.mark.parametrize(("key", "resource"), all_resources(), ids=lambda v: str(v)[:40])
def test_every_resource_is_valid_r4_and_follows_us_core(key: str, resource: Resource) -> None:
    validate(resource)
    assert "id" not in resource and "meta" not in resource
    assert resource["subject"] == {"reference": "Patient/example"}
    kind = resource["resourceType"]
    if kind == "MedicationRequest":
        assert resource["status"] in ("active", "stopped", "on-hold")
        assert resource["intent"] == "plan" and resource["medicationCodeableConcept"]
        assert resource["authoredOn"] and resource["requester"]["display"]
    elif kind == "CarePlan":
        assert resource["text"]["status"] == "generated"
        assert resource["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        categories = [c for cat in resource["category"] for c in cat["coding"]]
        assert {"system": US_CORE_CAREPLAN_CATEGORY, "code": "assess-plan"}.items() <= (
            categories[0].items())
        assert all(a["detail"]["status"] for a in resource.get("activity", []))
    else:
        assert kind == "CareTeam" and resource["participant"]
        for participant in resource["participant"]:
            assert participant["role"][0]["coding"] and participant["member"]["reference"]


def test_crisis_plan_category_is_the_code_system_concept() -> None:
    plan, _ = crisis(sample("crisis-contact-plan"))
    coding = plan.resource["category"][1]["coding"][0]
    cs = load_json(PROFILE_DIR / "CodeSystem-mit-forms.json")

    def concepts(nodes: list[Resource]) -> list[Resource]:
        return [c for n in nodes for c in (n, *concepts(n.get("concept", [])))]

    (concept,) = [c for c in concepts(cs["concept"]) if c["code"] == coding["code"]]
    assert (coding["system"], coding["display"]) == (cs["url"], concept["display"])


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (1e30, "at most 100000 mg"),  # Decimal could not quantize it: a 500 (issue 12, item 6)
        (10**40, "at most 100000 mg"),
        (100_000.001, "at most 100000 mg"),
        ("1e30", "at most 100000 mg"),
        ("a lot", "must be a number"),
        (True, "must be a number"),
        ([75], "must be a number"),
        (0, "above zero"),
        (-5, "above zero"),
    ],
)
def test_an_implausible_daily_dose_is_a_plan_error(value: Any, why: str) -> None:
    qr = sample("medication-plan")
    dose = child(groups(qr, "medplan-medication")[0], "medplan-med-daily-dose")
    dose["answer"][0]["valueQuantity"]["value"] = value
    with pytest.raises(PlanError, match=why) as caught:
        meds(qr)
    assert caught.value.link_id == "medplan-med-daily-dose"


def test_the_largest_plausible_daily_dose_is_accepted() -> None:
    qr = sample("medication-plan")
    dose = child(groups(qr, "medplan-medication")[0], "medplan-med-daily-dose")
    dose["answer"][0]["valueQuantity"]["value"] = 100_000
    assert daily_mg(by_drug(meds(qr))["38404"].resource) == 100_000
