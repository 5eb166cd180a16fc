"""Scores come only from the Questionnaire's weights (issue 12, item 2).

The weight of an answer is the form's weight of its coding (answerOption, its Coding, or a
concept of a contained answerValueSet); a weight the answer carries is never read, and one that
differs from the form's is a 422 naming the item. A score built on no weight at all is absent.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mit_fhir.errors import InvalidRequest, Unprocessable
from mit_fhir.fhir.extract import extract
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.paths import QUESTIONNAIRE_DIR
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.submissions import validated
from mit_fhir.vocabulary import EXT_CALCULATED_EXPRESSION, EXT_VARIABLE
from tests.conftest import DATA, load_json, sample

Resource = dict[str, Any]
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
CATALOGUE = Catalogue.from_directory(QUESTIONNAIRE_DIR)
PHQ9 = CATALOGUE.by_id["phq-9"]
LHC = DATA / "lhc-forms"
SYSTEM = "http://example.org/answers"


def weight_ext(value: Any, url: str = ITEM_WEIGHT, key: str = "valueDecimal") -> list[Resource]:
    return [{"url": url, key: value}]


def scores(plan: ScoringPlan, qr: Resource) -> list[dict[str, Any]]:
    """{linkId: value} from the compiled evaluator and from fhirpathpy (both must agree)."""
    return [{s.item.link_id: s.value for s in plan.evaluate(qr, reference=ref)}
            for ref in (False, True)]


def answer(qr: Resource, link_id: str) -> Resource:
    item = next(i for i in qr["item"] if i["linkId"] == link_id)
    found: Resource = item["answer"][0]
    return found


# --- the catalogue PHQ-9: a client cannot set its own score ---------------------------------


def test_tampered_phq9_is_rejected_naming_every_item_whose_weight_differs() -> None:
    """The issue's sample: every answer coding says itemWeight 3 (total 27); the form says 13."""
    qr = load_json(DATA / "weights" / "phq-9-tampered.json")
    expected = load_json(DATA / "weights" / "phq-9-tampered.expected.json")
    with pytest.raises(Unprocessable) as raised:
        validated(CATALOGUE, qr)
    assert raised.value.status == expected["status"]
    assert [i.expression[0] for i in raised.value.issues] == expected["expression"]
    for issue in raised.value.issues:
        assert "another version of the form" in issue.diagnostics
        assert issue.code == "business-rule"


def test_tampered_weights_never_reach_the_score() -> None:
    """Defence in depth: even unvalidated, the score is the form's 13, never the answers' 27."""
    qr = load_json(DATA / "weights" / "phq-9-tampered.json")
    for got in scores(ScoringPlan(PHQ9), qr):
        assert got["phq-9-total"] == load_json(DATA / "samples" / "phq-9" /
                                               "complete.expected.json")["phq-9-total"]
        assert got["phq-9-severity"]["code"] == "phq-9-moderate"


def _claim(link_id: str, on: str, ext: list[Resource]) -> Any:
    def change(qr: Resource) -> None:
        target = answer(qr, link_id)
        (target["valueCoding"] if on == "coding" else target)["extension"] = ext

    return change


# phq-9-1 answers "More than half the days" (weight 2) in the complete sample; the difficulty
# item is not scored (its options have no weight).
CLAIMS: dict[str, tuple[Any, bool]] = {
    "equal itemWeight on the coding": (_claim("phq-9-1", "coding", weight_ext(2)), True),
    "equal weight as valueInteger": (
        _claim("phq-9-1", "coding", weight_ext(2, key="valueInteger")), True),
    "equal ordinalValue (LHC-Forms)": (
        _claim("phq-9-1", "coding", weight_ext(2.0, ORDINAL_VALUE)), True),
    "equal weight on the answer": (_claim("phq-9-1", "answer", weight_ext(2)), True),
    "higher weight on the coding": (_claim("phq-9-1", "coding", weight_ext(3)), False),
    "lower ordinalValue on the coding": (
        _claim("phq-9-1", "coding", weight_ext(0, ORDINAL_VALUE)), False),
    "other weight on the answer": (_claim("phq-9-1", "answer", weight_ext(1)), False),
    "weight where the form has none": (
        _claim("phq-9-difficulty", "coding", weight_ext(0)), False),
    "weight that is not a number": (_claim("phq-9-1", "coding", weight_ext("2")), False),
    # Found by an outside attack: only the first weight extension used to be compared.
    "equal ordinalValue then a different itemWeight": (_claim(
        "phq-9-1", "coding", weight_ext(2, ORDINAL_VALUE) + weight_ext(3)), False),
    "equal weights twice": (_claim(
        "phq-9-1", "coding", weight_ext(2, ORDINAL_VALUE) + weight_ext(2)), True),
}


def test_a_weight_that_is_not_a_number_is_refused_as_broken_fhir() -> None:
    """valueDecimal "2" is not FHIR at all: the structure check names the element (400)
    before the weights are compared."""
    qr = sample("phq-9")
    CLAIMS["weight that is not a number"][0](qr)
    with pytest.raises(InvalidRequest) as raised:
        validated(CATALOGUE, qr)
    assert any("valueDecimal" in (i.expression or ("",))[0] for i in raised.value.issues)


@pytest.mark.parametrize("case", sorted(c for c in CLAIMS if c != "weight that is not a number"))
def test_weights_on_answers_must_equal_the_forms(case: str) -> None:
    change, accepted = CLAIMS[case]
    qr = sample("phq-9")
    change(qr)
    if accepted:
        assert validated(CATALOGUE, qr) is PHQ9
        return
    with pytest.raises(Unprocessable) as raised:
        validated(CATALOGUE, qr)
    (issue,) = raised.value.issues
    link_id = "phq-9-difficulty" if "none" in case else "phq-9-1"
    assert issue.expression[0].startswith(f"QuestionnaireResponse.item.where(linkId='{link_id}')")
    assert link_id in issue.diagnostics


def test_catalogue_codings_copied_with_their_weights_are_accepted_and_score_the_same() -> None:
    """A renderer that copies the catalogue's own Codings (weights included) is not refused."""
    qr = sample("phq-9")
    options = {i["linkId"]: i.get("answerOption", []) for i in PHQ9["item"]}
    for item in qr["item"]:
        code = item["answer"][0]["valueCoding"]["code"]
        opt = next(o for o in options[item["linkId"]] if o["valueCoding"]["code"] == code)
        item["answer"][0]["valueCoding"] = copy.deepcopy(opt["valueCoding"])
    validated(CATALOGUE, qr)
    assert scores(ScoringPlan(PHQ9), qr) == scores(ScoringPlan(PHQ9), sample("phq-9"))


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 3), st.none() | st.integers(-1, 30)),
                min_size=9, max_size=9))
def test_no_claimed_weight_changes_an_accepted_phq9_score(picks: list[tuple[int, Any]]) -> None:
    """Whatever weights the answers claim, a response is refused or scored by the form alone."""
    qr = sample("phq-9")
    items = [i for i in PHQ9["item"] if i["linkId"] in {f"phq-9-{n}" for n in range(1, 10)}]
    for item, (pick, claimed) in zip(items, picks, strict=True):
        coding = dict(item["answerOption"][pick]["valueCoding"])
        coding.pop("extension")
        if claimed is not None:
            coding["extension"] = weight_ext(claimed)
        answer(qr, item["linkId"])["valueCoding"] = coding
    total = sum(pick for pick, _ in picks)
    honest = all(claimed in (None, pick) for pick, claimed in picks)
    try:
        validated(CATALOGUE, qr)
    except Unprocessable:
        assert not honest
    else:
        assert honest
    for got in scores(ScoringPlan(PHQ9), qr):
        assert got["phq-9-total"] == total


# --- LHC-Forms: exports carry ordinalValue on every answer ----------------------------------


def test_lhc_forms_export_with_equal_ordinal_values_scores_as_without_them() -> None:
    q = load_json(LHC / "phq-9-loinc.json")
    plain = load_json(LHC / "phq-9-loinc.response.json")
    exported = load_json(LHC / "phq-9-loinc.response-ordinals.json")
    expected = load_json(LHC / "phq-9-loinc.expected.json")
    validated(CATALOGUE, exported, q)
    plan = ScoringPlan(q)
    for with_ordinals, without in zip(scores(plan, exported), scores(plan, plain), strict=True):
        assert with_ordinals == without
        assert {k: with_ordinals[k] for k in expected} == expected


def test_lhc_forms_export_with_one_changed_ordinal_value_is_refused() -> None:
    q = load_json(LHC / "phq-9-loinc.json")
    exported = load_json(LHC / "phq-9-loinc.response-ordinals.json")
    answer(exported, "/44259-0")["valueCoding"]["extension"] = weight_ext(0, ORDINAL_VALUE)
    with pytest.raises(Unprocessable) as raised:
        validated(CATALOGUE, exported, q)
    assert [i.expression for i in raised.value.issues] == [
        ("QuestionnaireResponse.item.where(linkId='/44259-0').answer[0].valueCoding",)]


# --- site forms: answerValueSet, weight() on answers, no weight -> absent --------------------


def coding(code: str) -> Resource:
    return {"system": SYSTEM, "code": code}


def weighted_options(*weights: float | None, on: str = "option") -> list[Resource]:
    """answerOptions a, b, c... with these weights (None: an option without a weight), on the
    answerOption (where SDC puts them) or on its Coding (older forms)."""
    options = []
    for n, w in enumerate(weights):
        opt: Resource = {"valueCoding": coding(chr(97 + n))}
        if w is not None:
            (opt if on == "option" else opt["valueCoding"])["extension"] = weight_ext(w)
        options.append(opt)
    return options


def site_form(expression: str, *items: Resource, contained: list[Resource] | None = None,
              variables: dict[str, str] | None = None) -> Resource:
    q: Resource = {
        "resourceType": "Questionnaire", "id": "site", "status": "active",
        "url": "https://site.example/Questionnaire/site", "version": "1",
        "code": [{"system": SYSTEM, "code": "panel"}],
        "extension": [{"url": EXT_VARIABLE, "valueExpression": {
            "name": name, "language": "text/fhirpath", "expression": text}}
            for name, text in (variables or {}).items()],
        "item": [*items, {
            "linkId": "total", "type": "decimal", "readOnly": True,
            "code": [{"system": SYSTEM, "code": "total"}],
            "extension": [{"url": EXT_CALCULATED_EXPRESSION, "valueExpression": {
                "language": "text/fhirpath", "expression": expression}}],
        }],
    }
    if contained:
        q["contained"] = contained
    return q


def choice(link_id: str, **element: Any) -> Resource:
    return {"linkId": link_id, "type": "choice", **element}


def response(**answers: str) -> Resource:
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "https://site.example/Questionnaire/site|1",
            "subject": {"reference": "Patient/p"}, "authored": "2024-01-01",
            "item": [{"linkId": k, "answer": [{"valueCoding": coding(v)}]}
                     for k, v in answers.items()]}


SUM = "%resource.repeat(item).answer.value.weight().sum()"


def value_set(vs_id: str, weights: dict[str, float], expansion: bool = False) -> Resource:
    concepts = [{"code": c, "extension": weight_ext(w)} for c, w in weights.items()]
    if expansion:
        # Nested contains: an expansion may group its codes.
        return {"resourceType": "ValueSet", "id": vs_id, "status": "active",
                "expansion": {"timestamp": "2024-01-01", "contains": [
                    {"abstract": True, "display": "group",
                     "contains": [{"system": SYSTEM, **c} for c in concepts]}]}}
    return {"resourceType": "ValueSet", "id": vs_id, "status": "active",
            "url": f"https://site.example/ValueSet/{vs_id}",
            "compose": {"include": [{"system": SYSTEM, "concept": concepts}]}}


ANSWER_VALUE_SETS: dict[str, tuple[Resource, float]] = {
    "compose concepts by #id": (
        site_form(SUM, choice("q1", answerValueSet="#vs1"), choice("q2", answerValueSet="#vs1"),
                  contained=[value_set("vs1", {"a": 0, "b": 2, "c": 5})]), 7),
    "expansion contains by #id": (
        site_form(SUM, choice("q1", answerValueSet="#vs2"), choice("q2", answerValueSet="#vs2"),
                  contained=[value_set("vs2", {"a": 1, "b": 4, "c": 9}, expansion=True)]), 13),
    "compose concepts by canonical url": (
        site_form(SUM, choice("q1", answerValueSet="https://site.example/ValueSet/vs3"),
                  choice("q2", answerValueSet="https://site.example/ValueSet/vs3"),
                  contained=[value_set("vs3", {"a": 0.5, "b": 1, "c": 1.5})]), 2.5),
}


@pytest.mark.parametrize("case", sorted(ANSWER_VALUE_SETS))
def test_weight_finds_weights_in_a_contained_answer_value_set(case: str) -> None:
    q, total = ANSWER_VALUE_SETS[case]
    qr = response(q1="b", q2="c")
    for got in scores(ScoringPlan(q), qr):
        assert got["total"] == pytest.approx(total)


def test_a_weight_claimed_on_an_answer_value_set_answer_must_match_the_value_set() -> None:
    q, _ = ANSWER_VALUE_SETS["compose concepts by #id"]
    qr = response(q1="b", q2="c")
    answer(qr, "q1")["valueCoding"]["extension"] = weight_ext(2)
    validated(CATALOGUE, qr, q)
    answer(qr, "q2")["valueCoding"]["extension"] = weight_ext(2)
    with pytest.raises(Unprocessable) as raised:
        validated(CATALOGUE, qr, q)
    assert "'q2'" in raised.value.issues[0].diagnostics


TWO_ITEMS = (choice("q1", answerOption=weighted_options(0, 1, 3)),
             choice("q2", answerOption=weighted_options(0, 2, 4, on="coding")))
# q1 = b (1), q2 = c (4)
WEIGHT_EXPRESSIONS: dict[str, tuple[str, float]] = {
    "on answers": ("%resource.repeat(item).answer.weight().sum()", 5),
    "on answer values": (SUM, 5),
    "on answer Codings": ("%resource.repeat(item).answer.valueCoding.weight().sum()", 5),
    "ordinal() alias": ("%resource.repeat(item).answer.ordinal().sum()", 5),
    "on one item's answer": ("%resource.item.where(linkId = 'q2').answer.weight()", 4),
    "on the form's own options": (
        "%questionnaire.item.where(linkId = 'q2').answerOption.weight().sum()", 6),
    # As fhirpath.js: a Coding of the form has only its own weight, an answerOption its own
    # or its Coding's.
    "on the form's own option Codings": (
        "%questionnaire.item.answerOption.valueCoding.weight().sum()", 6),
    "on the form's own options, either placement": (
        "%questionnaire.item.answerOption.weight().sum()", 10),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_EXPRESSIONS))
def test_weight_works_on_answers_and_codings_with_both_engines(case: str) -> None:
    expression, total = WEIGHT_EXPRESSIONS[case]
    q = site_form(expression, *TWO_ITEMS)
    for got in scores(ScoringPlan(q), response(q1="b", q2="c")):
        assert got["total"] == pytest.approx(total)


def test_weight_never_reads_the_weight_an_answer_carries() -> None:
    """A form without weights scores nothing, whatever its answers claim."""
    q = site_form(SUM, choice("q1", answerOption=weighted_options(None, None)))
    qr = response(q1="b")
    answer(qr, "q1")["extension"] = weight_ext(7)
    answer(qr, "q1")["valueCoding"]["extension"] = weight_ext(7)
    plan = ScoringPlan(q)
    for ref in (False, True):
        (score,) = plan.evaluate(qr, reference=ref)
        assert score.value is None


def test_a_score_from_answers_without_any_weight_is_absent_with_a_reason() -> None:
    """FHIRPath's sum() of nothing is 0: charted, it would read as "no symptoms"."""
    q = site_form(SUM, choice("q1", answerOption=weighted_options(None, None)),
                  choice("q2", answerOption=weighted_options(None, None)))
    qr = response(q1="a", q2="b")
    plan = ScoringPlan(q)
    for ref in (False, True):
        (score,) = plan.evaluate(qr, reference=ref)
        assert score.value is None
        assert score.reason and "weight" in score.reason
    extraction = extract(qr, q, plan, {"reference": "QuestionnaireResponse/x"})
    assert extraction is not None
    (obs, _), = extraction.members
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "weight" in obs["dataAbsentReason"]["text"]


def test_no_weight_through_a_variable_is_absent_too() -> None:
    q = site_form("%w.sum()", choice("q1", answerOption=weighted_options(None, None)),
                  variables={"w": SUM.removesuffix(".sum()")})
    for got in scores(ScoringPlan(q), response(q1="a")):
        assert got["total"] is None


def test_a_real_zero_from_weights_is_kept() -> None:
    q = site_form(SUM, *TWO_ITEMS)
    for got in scores(ScoringPlan(q), response(q1="a", q2="a")):
        assert got["total"] == 0


# Partially weighted answers (decided here, docs in fhir/scoring.py ScoringPlan.evaluate): an
# answer whose option has no weight is a missing answer. weight() leaves it out, the form's own
# missing-item rule decides; without one the other answers' weights are summed.
PARTIAL = (choice("q1", answerOption=weighted_options(0, 1, 3)),
           choice("q2", answerOption=weighted_options(0, None, 4)))
PARTIAL_CASES: dict[str, tuple[str, float | None]] = {
    "no missing-item rule: the weighted answers' sum": (SUM, 3),
    "a rule requiring both items: absent": (
        f"iif({SUM.removesuffix('.sum()')}.count() = 2, {SUM}, {{}})", None),
}


@pytest.mark.parametrize("case", sorted(PARTIAL_CASES))
def test_an_unweighted_answer_counts_as_a_missing_answer(case: str) -> None:
    expression, total = PARTIAL_CASES[case]
    for got in scores(ScoringPlan(site_form(expression, *PARTIAL)), response(q1="c", q2="b")):
        assert got["total"] == total


def test_a_weight_that_is_not_a_number_is_no_weight() -> None:
    """A site form spelling a weight as a string is scored as if it had none, not a 500."""
    options = weighted_options(1, 2)
    options[1]["extension"] = weight_ext("2")
    q = site_form(SUM, choice("q1", answerOption=options), choice("q2", answerOption=options))
    for got in scores(ScoringPlan(q), response(q1="a", q2="b")):
        assert math.isclose(got["total"], 1)


SAME_CODE = [{"valueCoding": {"code": "a"}, "extension": weight_ext(1)},
             {"valueCoding": {"system": SYSTEM, "code": "a"}, "extension": weight_ext(2)},
             {"valueCoding": {"system": "http://other.example", "code": "a"},
              "extension": weight_ext(3)}]
# One code in several systems: the option of the answer's own system wins; an option without a
# system matches any (LHC-Forms' LOINC panels give none), as the validator matches them.
SYSTEMS: dict[str, tuple[Resource, float | None]] = {
    "the answer's own system": ({"system": SYSTEM, "code": "a"}, 2),
    "another listed system": ({"system": "http://other.example", "code": "a"}, 3),
    "an unlisted system: the option without one": ({"system": "http://x.example", "code": "a"}, 1),
    "no system: the first option": ({"code": "a"}, 1),
}


@pytest.mark.parametrize("case", sorted(SYSTEMS))
def test_an_answer_is_weighted_by_its_system_and_code(case: str) -> None:
    answered, total = SYSTEMS[case]
    q = site_form(SUM, choice("q1", answerOption=SAME_CODE))
    qr = response(q1="a")
    answer(qr, "q1")["valueCoding"] = dict(answered)
    for got in scores(ScoringPlan(q), qr):
        assert got["total"] == total


def test_the_issue_names_a_nested_answer_by_its_linkid_path() -> None:
    q = site_form(SUM, {"linkId": "g", "type": "group", "item": [TWO_ITEMS[0]]})
    qr = response()
    qr["item"] = [{"linkId": "g", "item": [{"linkId": "q1", "answer": [
        {"valueCoding": {**coding("b"), "extension": weight_ext(3)}}]}]}]
    with pytest.raises(Unprocessable) as raised:
        validated(CATALOGUE, qr, q)
    assert [i.expression for i in raised.value.issues] == [(
        "QuestionnaireResponse.item.where(linkId='g').item.where(linkId='q1')"
        ".answer[0].valueCoding",)]
