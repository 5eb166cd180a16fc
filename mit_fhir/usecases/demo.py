"""The demonstration patient: the MIT case report's 18 months, loaded through the normal submit().

mit_fhir/data/demo.json holds the assessments (instrument, date, target score) and the
medication-plan versions. Each becomes a QuestionnaireResponse submitted like any client's, so
the service computes the Observations and their change flags itself. Licensed instruments (DERS,
SCL-90-R) are answered item by item with answers whose weights give exactly the stated score.
Every response carries a meta.tag of CodeSystem data-source: `case-report` for a value stated
in the report, `synthetic` for one chosen for the demonstration; the Observations inherit it.
The assessment schedules (demo_schedules.py) follow: the treatment's, whose every Task is
completed by the response of its date, and a follow-up one whose first forms are overdue.
Loading is idempotent: each response has a stable identifier and is skipped when present,
each schedule a business key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mit_fhir.fhir.answer_weights import answers_for_total, response, weighted_items
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.items import walk_items
from mit_fhir.store import repository
from mit_fhir.usecases.context import Context
from mit_fhir.usecases.demo_data import DemoError, demo_data, source_tag
from mit_fhir.usecases.demo_schedules import check_schedules, load_schedule
from mit_fhir.usecases.submissions import submit
from mit_fhir.vocabulary import BASE, UCUM

Resource = dict[str, Any]
IDENTIFIER_SYSTEM = f"{BASE}/identifier/demo"
TOLERANCE = 0.0005  # scores are compared at the precision the report gives (three decimals)


@dataclass
class LoadResult:
    """What one load did."""

    patient: str
    created: list[str] = field(default_factory=list)  # demo identifiers submitted now
    present: list[str] = field(default_factory=list)  # already loaded before
    schedules: list[str] = field(default_factory=list)  # schedule keys stored now
    schedules_present: list[str] = field(default_factory=list)


def _base(data: Resource, questionnaire: Resource, key: str, authored: str, source: str,
          author: Resource) -> Resource:
    patient = data["patient"]
    return {
        "resourceType": "QuestionnaireResponse",
        "meta": {"tag": [source_tag(source)]},
        "identifier": {"system": IDENTIFIER_SYSTEM, "value": key},
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient['id']}", "display": patient["display"]},
        "authored": authored,
        "author": author,
    }


def assessment_response(context: Context, data: Resource, assessment: Resource) -> Resource:
    """The response for one assessment, checked to give exactly its stated score."""
    q = context.catalogue.get(assessment["questionnaire"])
    if q is None:
        raise DemoError(f"no Questionnaire {assessment['questionnaire']} in the catalogue")
    plan = context.scorer.plan(q)

    def score_of(qr: Resource) -> Any:
        return next((s.value for s in plan.evaluate(qr) if s.item.link_id == assessment["score"]),
                    None)

    target = assessment["value"]
    if "answers" in assessment:
        candidates = [_coded_answers(q, assessment["answers"])]
    else:
        # A sum needs the target as its weight total, a mean the target times the item count.
        items = weighted_items(q)
        candidates = []
        for total in dict.fromkeys((round(target), round(target * len(items)))):
            try:
                candidates.append(response(q, answers_for_total(items, total)))
            except ValueError:
                continue
    found = next((c for c in candidates if isinstance(v := score_of(c), int | float)
                  and abs(float(v) - target) <= TOLERANCE), None)
    if found is None:
        raise DemoError(f"no answers to {q['id']} give {assessment['score']} = {target}")
    patient_author = {"reference": f"Patient/{data['patient']['id']}"}
    author = data["clinician"] if assessment["author"] == "clinician" else patient_author
    day = assessment["authored"][:10]
    key = f"{data['patient']['id']}/{q['id']}/{day}"
    return {**_base(data, q, key, assessment["authored"], assessment["source"], author),
            "item": found["item"]}


def _options(q: Resource) -> dict[tuple[str, str], Resource]:
    """(linkId, code) -> the option's coding (system, code, display)."""
    out = {}
    for item in walk_items(q.get("item", [])):
        for opt in item.get("answerOption", ()):
            c = opt.get("valueCoding")
            if c:
                out[(item["linkId"], c["code"])] = {k: c[k] for k in ("system", "code", "display")
                                                    if k in c}
    return out


def _coded_answers(q: Resource, answers: dict[str, str]) -> Resource:
    options = _options(q)
    chosen = {}
    for link_id, code in answers.items():
        if (link_id, code) not in options:
            raise DemoError(f"{q['id']}: {link_id} has no option {code}")
        chosen[link_id] = options[(link_id, code)]
    return response(q, chosen)


def plan_response(context: Context, data: Resource, plan: Resource) -> Resource:
    """A medication-plan response for one version of the plan."""
    q = context.catalogue.get("medication-plan")
    if q is None:
        raise DemoError("no Questionnaire medication-plan in the catalogue")
    options = _options(q)

    def coded(link_id: str, code: str) -> Resource:
        if (link_id, code) not in options:
            raise DemoError(f"medication-plan: {link_id} has no option {code}")
        return {"linkId": link_id, "answer": [{"valueCoding": options[(link_id, code)]}]}

    def answer(link_id: str, key: str, value: Any) -> Resource:
        return {"linkId": link_id, "answer": [{key: value}]}

    items: list[Resource] = [
        answer("medplan-date", "valueDate", plan["date"]),
        answer("medplan-prescriber-name", "valueString", data["clinician"]["display"]),
        answer("medplan-prescriber-ref", "valueReference", copy.deepcopy(data["clinician"])),
    ]
    for med in plan["medicines"]:
        drug = med["drug"]
        if (("medplan-med-drug", drug.get("code")) not in options):
            raise DemoError(f"medication-plan: medplan-med-drug has no option {drug.get('code')}")
        dose = med["dailyDoseMg"]
        group = [
            {"linkId": "medplan-med-drug",
             "answer": [{"valueCoding": options[("medplan-med-drug", drug["code"])]}]},
            answer("medplan-med-daily-dose", "valueQuantity",
                   {"value": int(dose) if float(dose).is_integer() else dose, "unit": "mg",
                    "system": UCUM, "code": "mg"}),
            answer("medplan-med-times-per-day", "valueInteger", med["timesPerDay"]),
            coded("medplan-med-route", "26643006"),
        ]
        group += [answer(f"medplan-med-{name}", "valueDate", med[name])
                  for name in ("start", "stop") if med.get(name)]
        group.append(coded("medplan-med-status", med["status"]))
        if med["reasons"]:
            group.append({"linkId": "medplan-med-reason", "answer": [
                {"valueCoding": coded("medplan-med-reason", r)["answer"][0]["valueCoding"]}
                for r in med["reasons"]]})
        items.append({"linkId": "medplan-medication", "item": group})
    key = f"{data['patient']['id']}/medication-plan/{plan['date']}"
    return {**_base(data, q, key, plan["authored"], plan["source"], data["clinician"]),
            "item": items}


def demo_responses(context: Context, data: Resource | None = None) -> list[Resource]:
    """Every response of the demo patient, in the order they happened."""
    data = data or demo_data()
    found = [assessment_response(context, data, a) for a in data["assessments"]]
    found += [plan_response(context, data, p) for p in data["medicationPlans"]]
    return sorted(found, key=lambda qr: (qr["authored"], qr["identifier"]["value"]))


def _present(context: Context, key: str) -> bool:
    with context.store.transaction() as conn:
        return bool(repository.search(conn, "QuestionnaireResponse", [
            Criterion("identifier", "eq", (f"{IDENTIFIER_SYSTEM}|{key}",))], limit=1))


def load_demo(context: Context, data: Resource | None = None,
              now: datetime | None = None) -> LoadResult:
    """Submit the demo patient's responses that are not stored yet, then store its schedules
    and their Tasks as of `now` (default: the present); idempotent."""
    data = data or demo_data()
    moment = now or datetime.now(UTC)
    responses = demo_responses(context, data)  # all built (and checked) before any is stored
    check_schedules(context, data, moment)
    result = LoadResult(data["patient"]["id"])
    for qr in responses:
        key = qr["identifier"]["value"]
        if _present(context, key):
            result.present.append(key)
            continue
        submit(context, qr)
        result.created.append(key)
    for sched in data["schedules"]:
        stored = load_schedule(context, data, sched, moment)
        (result.schedules if stored else result.schedules_present).append(sched["key"])
    return result
