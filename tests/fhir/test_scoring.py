"""The compiled evaluator gives exactly fhirpathpy's results, on many generated responses."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.vocabulary import EXT_CALCULATED_EXPRESSION, EXT_MAX_VALUE, EXT_MIN_VALUE, extension
from tests.conftest import DATA, load_json

INSTRUMENTS = [
    "ders", "ders-16", "scl-90-r", "bpd-criteria", "bsl-23", "phq-9", "gad-7",
    "cssrs-screener", "mas-a",
]


def random_response(q: dict[str, Any], rng: random.Random, skip: float) -> dict[str, Any]:
    """A response answering each input item at random, leaving some out with probability skip."""
    items = []
    for item in walk_items(q["item"]):
        if extension(item, EXT_CALCULATED_EXPRESSION) or item["type"] in ("group", "display"):
            continue
        if rng.random() < skip:
            continue
        if item.get("answerOption"):
            answer = {"valueCoding": dict(rng.choice(item["answerOption"])["valueCoding"])}
        elif item["type"] in ("decimal", "integer"):
            low = extension(item, EXT_MIN_VALUE) or {"valueDecimal": 0}
            high = extension(item, EXT_MAX_VALUE) or {"valueDecimal": 10}
            lo = next(v for k, v in low.items() if k.startswith("value"))
            hi = next(v for k, v in high.items() if k.startswith("value"))
            value = rng.randint(int(lo), int(hi))
            answer = {"valueInteger": value} if item["type"] == "integer" else {
                "valueDecimal": value + rng.choice([0, 0.5]) if value < hi else value}
        else:
            continue
        answer.get("valueCoding", {}).pop("extension", None)  # EHRs send bare codings
        items.append({"linkId": item["linkId"], "answer": [answer]})
    return {"resourceType": "QuestionnaireResponse", "id": "generated", "status": "completed",
            "subject": {"reference": "Patient/p"}, "authored": "2024-01-01", "item": items}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) < 1e-9
    return bool(a == b)


@pytest.mark.parametrize("qid", INSTRUMENTS)
def test_compiled_scores_equal_fhirpathpy_on_generated_responses(qid: str) -> None:
    q = load_json(QUESTIONNAIRE_DIR / f"{qid}.json")
    plan = ScoringPlan(q)
    rng = random.Random(f"equivalence-{qid}")
    # fhirpathpy takes ~0.2 s per SCL-90-R response: 12 responses keep this under a minute.
    for n in range(12):
        qr = random_response(q, rng, skip=0.0 if n < 8 else 0.05)
        fast = [(s.item.link_id, s.value) for s in plan.evaluate(qr)]
        ref = [(s.item.link_id, s.value) for s in plan.evaluate(qr, reference=True)]
        assert len(fast) == len(ref)
        for (link_id, a), (_, b) in zip(fast, ref, strict=True):
            assert same(a, b), f"{qid} {link_id}: compiled {a!r} != fhirpathpy {b!r}"


def test_lhc_forms_phq9_scores_with_both_engines() -> None:
    q = load_json(DATA / "lhc-forms" / "phq-9-loinc.json")
    qr = load_json(DATA / "lhc-forms" / "phq-9-loinc.response.json")
    expected = load_json(DATA / "lhc-forms" / "phq-9-loinc.expected.json")
    plan = ScoringPlan(q)
    for reference in (False, True):
        got = {s.item.link_id: s.value for s in plan.evaluate(qr, reference=reference)}
        assert got == expected
