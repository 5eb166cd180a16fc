"""Content tests: the Questionnaires, CodeSystems and psychometric data the service publishes.

What a user relies on: every file is valid FHIR R4(B); every score the catalogue declares comes
out of its expression, in fhirpathpy and in the service's compiled scorer alike, with the value
the sample's `.expected.json` records (computed by hand from the scoring keys); codes resolve;
licensed wording is never shipped; the MIT forms are fully translated into Italian; every
psychometric number is cited. Conventions: docs/authoring.md, docs/instrument-sources.md,
docs/mit-forms.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy.models import models

from mit_fhir.fhir import fhirpath
from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.scoring import ScoringPlan, Weights, reference_evaluate
from mit_fhir.paths import PROFILE_DIR, QUESTIONNAIRE_DIR
from mit_fhir.usecases.catalogue import licensed_slots
from mit_fhir.vocabulary import (
    BASE,
    CS_INSTRUMENT,
    CS_MIT_FORMS,
    EXT_CALCULATED_EXPRESSION,
    EXT_ITEM_WEIGHT,
    EXT_LICENSED_TEXT_SLOT,
    EXT_TRANSLATION,
    EXT_VARIABLE,
    extension,
)
from tests.conftest import DATA, SAMPLES, load_json

Resource = dict[str, Any]

NOT_FHIR = {"psychometrics.json"}  # the psychometric data file is the project's own format
EXT_SOURCE_CITATION = f"{BASE}/StructureDefinition/source-citation"

QUESTIONNAIRES: dict[str, Resource] = {
    p.stem: load_json(p) for p in sorted(QUESTIONNAIRE_DIR.glob("*.json"))
}
FHIR_FILES = [
    p
    for d in (QUESTIONNAIRE_DIR, PROFILE_DIR)
    for p in sorted(d.glob("*.json"))
    if p.name not in NOT_FHIR
]

# The seven MIT forms (docs/mit-forms.md) and the nine outcome instruments
# (docs/instrument-sources.md). A new Questionnaire must be added to one of them.
MIT_FORMS = [
    "mit-episode",
    "mit-schema",
    "mit-contract",
    "mit-regulation-menu",
    "mit-experiment",
    "medication-plan",
    "crisis-contact-plan",
]
# What each instrument's `copyright` must name: the first author of its source citation, and,
# where the item wording is shipped, where that wording comes from (authoring.md: the copyright
# states "the citation of the source of the wording").
INSTRUMENT_CITATIONS: dict[str, tuple[str, ...]] = {
    "ders": ("Gratz", "2004"),
    "ders-16": ("Bjureberg", "2016"),
    "scl-90-r": ("Derogatis", "1994"),
    "bsl-23": ("Bohus", "2009"),
    "bpd-criteria": ("DSM-5", "APA"),
    "phq-9": ("Kroenke", "LOINC 44249-1"),
    "gad-7": ("Spitzer", "69737-5"),
    "cssrs-screener": ("Posner", "93373-9"),
    "mas-a": ("Lysaker",),
}
INSTRUMENTS = list(INSTRUMENT_CITATIONS)

# R4 (4.0.1) required code lists; fhir.resources does not enforce required bindings.
PUBLICATION_STATUS = {"draft", "active", "retired", "unknown"}
ITEM_TYPES = {  # QuestionnaireItemType without the abstract `question`
    "group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string",
    "text", "url", "choice", "open-choice", "attachment", "reference", "quantity",
}
ENABLE_WHEN_OPERATORS = {"exists", "=", "!=", ">", "<", ">=", "<="}
ENABLE_BEHAVIOR = {"all", "any"}
CODESYSTEM_CONTENT = {"not-present", "example", "fragment", "complete", "supplement"}
HIERARCHY_MEANING = {"grouped-by", "is-a", "part-of", "classified-with"}

NUMBER_TOLERANCE = 1e-9


# Helpers ---------------------------------------------------------------------------------------


def concepts(concept_list: list[Resource]) -> Iterator[Resource]:
    for c in concept_list:
        yield c
        yield from concepts(c.get("concept", []))


def codesystem(file_name: str) -> Resource:
    data: Resource = load_json(PROFILE_DIR / file_name)
    return data


CODESYSTEM_CODES: dict[str, dict[str, Resource]] = {
    cs["url"]: {c["code"]: c for c in concepts(cs.get("concept", []))}
    for cs in (codesystem("CodeSystem-instrument.json"), codesystem("CodeSystem-mit-forms.json"))
}


def codings(node: Any, path: str = "") -> Iterator[tuple[str, Resource]]:
    """Every Coding-shaped dict (system + code) anywhere in a resource, with its JSON path."""
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield path, node
        for key, value in node.items():
            yield from codings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from codings(value, f"{path}[{i}]")


def all_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from all_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from all_strings(value, f"{path}[{i}]")


def items(q: Resource) -> list[Resource]:
    return list(walk_items(q.get("item", [])))


def calc_expression(item: Resource) -> str | None:
    ext = extension(item, EXT_CALCULATED_EXPRESSION)
    return ext["valueExpression"]["expression"] if ext else None


def calculated_items(q: Resource) -> list[Resource]:
    return [it for it in items(q) if calc_expression(it) is not None]


def root_variables(q: Resource) -> list[tuple[str, str]]:
    return [
        (e["valueExpression"]["name"], e["valueExpression"]["expression"])
        for e in q.get("extension", ())
        if e.get("url") == EXT_VARIABLE
    ]


def all_expressions(node: Any, owner: str = "root") -> Iterator[tuple[str, str]]:
    """(label, text) of every FHIRPath valueExpression in a resource: variables, calculated,
    enableWhen and any other expression extension; label = owning linkId, extension, name."""
    if isinstance(node, dict):
        owner = node.get("linkId", owner)
        expr = node.get("valueExpression")
        if isinstance(expr, dict) and expr.get("language") == "text/fhirpath":
            kind = str(node.get("url", "")).rsplit("/", 1)[-1]
            yield " ".join(x for x in (owner, kind, expr.get("name")) if x), expr["expression"]
        for value in node.values():
            yield from all_expressions(value, owner)
    elif isinstance(node, list):
        for value in node:
            yield from all_expressions(value, owner)


STRING_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
STARTS_WITH = re.compile(r"startsWith\(\s*'((?:[^'\\]|\\.)*)'\s*\)")


def weight_ext(element: Resource) -> float | None:
    ext = extension(element, EXT_ITEM_WEIGHT)
    if ext is None:
        return None
    value = ext.get("valueDecimal", ext.get("valueInteger"))
    return float(value) if value is not None else None


def scored_link_ids(q: Resource) -> set[str]:
    """linkIds of non-calculated items that some score expression reads."""
    texts = [expr for _name, expr in root_variables(q)]
    texts += [e for it in calculated_items(q) if (e := calc_expression(it))]
    literals = {lit for t in texts for lit in STRING_LITERAL.findall(t)}
    prefixes = {p for t in texts for p in STARTS_WITH.findall(t)}
    return {
        it["linkId"]
        for it in items(q)
        if calc_expression(it) is None
        and (it["linkId"] in literals or any(it["linkId"].startswith(p) for p in prefixes))
    }


def translations(element: Resource | None, lang: str = "it") -> list[str]:
    if not element:
        return []
    out = []
    for ext in element.get("extension", ()):
        if ext.get("url") != EXT_TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", ())}
        if parts.get("lang", {}).get("valueCode") == lang:
            out.append(parts.get("content", {}).get("valueString", ""))
    return out


def plain(v: Any) -> Any:
    data = getattr(v, "data", v)
    return float(data) if type(data).__name__ == "Decimal" else data


def assert_score(actual: list[Any], expected: Any, where: str) -> None:
    """`expected` None = not computed; numbers within 1e-9; a band by its code (the score is
    the band item's own answerOption Coding, which is what LHC-Forms can show)."""
    if expected is None:
        assert actual == [], f"{where}: expected no value (not computable), got {actual!r}"
        return
    assert len(actual) == 1, f"{where}: expected {expected!r}, got {actual!r}"
    value = actual[0]
    if isinstance(expected, bool):
        assert value is expected, f"{where}: expected {expected!r}, got {value!r}"
    elif isinstance(expected, int | float):
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"{where}: expected the number {expected!r}, got {value!r}"
        )
        assert math.isclose(value, expected, rel_tol=0.0, abs_tol=NUMBER_TOLERANCE), (
            f"{where}: expected {expected!r}, got {value!r}"
        )
    else:
        assert isinstance(value, dict) and value.get("code") == expected, (
            f"{where}: expected the Coding {expected!r}, got {value!r}"
        )


# 1. Every file is a valid FHIR R4B resource ----------------------------------------------------


def test_classification_covers_every_questionnaire():
    """Each Questionnaire is either an MIT form or an outcome instrument, never neither."""
    assert sorted(QUESTIONNAIRES) == sorted(MIT_FORMS + INSTRUMENTS)
    for qid in MIT_FORMS:
        assert [c.get("system") for c in QUESTIONNAIRES[qid]["code"]] == [CS_MIT_FORMS], qid


@pytest.mark.parametrize("path", FHIR_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_parses_as_r4b_model(path: Path):
    data = load_json(path)
    rtype = data.get("resourceType")
    assert rtype in {"Questionnaire", "CodeSystem", "ValueSet", "StructureDefinition"}, rtype
    model = get_fhir_model_class(rtype)
    model.model_validate(data)  # raises pydantic.ValidationError with the offending paths


@pytest.mark.parametrize("qid", QUESTIONNAIRES)
def test_questionnaire_codes_are_in_r4_code_lists(qid: str):
    q = QUESTIONNAIRES[qid]
    assert q.get("status") in PUBLICATION_STATUS, f"status {q.get('status')!r}"
    bad = []
    for it in items(q):
        if it.get("type") not in ITEM_TYPES:
            bad.append(f"{it['linkId']}: type {it.get('type')!r}")
        for ew in it.get("enableWhen", ()):
            if ew.get("operator") not in ENABLE_WHEN_OPERATORS:
                bad.append(f"{it['linkId']}: enableWhen operator {ew.get('operator')!r}")
        if "enableBehavior" in it and it["enableBehavior"] not in ENABLE_BEHAVIOR:
            bad.append(f"{it['linkId']}: enableBehavior {it['enableBehavior']!r}")
    assert not bad, bad


CODESYSTEM_FILES = sorted(PROFILE_DIR.glob("CodeSystem-*.json"))


@pytest.mark.parametrize("path", CODESYSTEM_FILES, ids=lambda p: p.stem)
def test_codesystem_header_and_codes(path: Path):
    cs = load_json(path)
    assert cs["resourceType"] == "CodeSystem"
    assert path.stem == f"CodeSystem-{cs['id']}"
    assert cs["url"] == f"{BASE}/CodeSystem/{cs['id']}"
    assert cs.get("status") in PUBLICATION_STATUS, f"status {cs.get('status')!r}"
    assert cs.get("content") in CODESYSTEM_CONTENT, f"content {cs.get('content')!r}"
    if "hierarchyMeaning" in cs:
        assert cs["hierarchyMeaning"] in HIERARCHY_MEANING
    codes = [c["code"] for c in concepts(cs.get("concept", []))]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    assert not duplicates, f"duplicate codes {duplicates}"
    if "count" in cs:
        assert cs["count"] == len(codes), f"count {cs['count']} but {len(codes)} concepts"


# 2. Questionnaire shape, codes and weights ----------------------------------------------------


@pytest.mark.parametrize("qid", QUESTIONNAIRES)
def test_questionnaire_header(qid: str):
    q = QUESTIONNAIRES[qid]
    assert q["resourceType"] == "Questionnaire"
    assert q.get("id") == qid, "id must equal the file name"
    assert q.get("url") == f"{BASE}/Questionnaire/{qid}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", q.get("version", "")), f"version {q.get('version')!r}"
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", q.get("name", "")), f"name {q.get('name')!r}"
    assert q.get("title", "").strip()
    assert q.get("copyright", "").strip()
    assert q.get("code") and all(c.get("system") and c.get("code") for c in q["code"])


@pytest.mark.parametrize("qid", QUESTIONNAIRES)
def test_link_ids_unique(qid: str):
    link_ids = [it["linkId"] for it in items(QUESTIONNAIRES[qid])]
    duplicates = sorted({x for x in link_ids if link_ids.count(x) > 1})
    assert not duplicates


@pytest.mark.parametrize("qid", QUESTIONNAIRES)
def test_every_question_has_a_code_and_displays_have_none(qid: str):
    q = QUESTIONNAIRES[qid]
    uncoded = [it["linkId"] for it in items(q) if it["type"] != "display" and not it.get("code")]
    coded_display = [it["linkId"] for it in items(q) if it["type"] == "display" and it.get("code")]
    assert not uncoded, f"non-display items without code: {uncoded}"
    assert not coded_display, f"display items with a code (R4 forbids): {coded_display}"


@pytest.mark.parametrize("qid", QUESTIONNAIRES)
def test_project_codes_exist_in_their_codesystem(qid: str):
    missing = [
        f"{path}: {c['system']}|{c['code']}"
        for path, c in codings(QUESTIONNAIRES[qid])
        if c["system"] in CODESYSTEM_CODES and c["code"] not in CODESYSTEM_CODES[c["system"]]
    ]
    assert not missing, missing


@pytest.mark.parametrize("qid", QUESTIONNAIRES)
def test_no_grouping_concept_used_as_a_code(qid: str):
    """`group-*` concepts of the mit-forms CodeSystem are notSelectable."""
    used = [
        f"{path}: {c['code']}"
        for path, c in codings(QUESTIONNAIRES[qid])
        if c["system"] == CS_MIT_FORMS and c["code"].startswith("group-")
    ]
    assert not used, used


SCORED_INSTRUMENTS = [qid for qid in INSTRUMENTS if calculated_items(QUESTIONNAIRES[qid])]


@pytest.mark.parametrize("qid", SCORED_INSTRUMENTS)
def test_scored_answer_options_carry_equal_item_weights(qid: str):
    q = QUESTIONNAIRES[qid]
    scored = scored_link_ids(q)
    assert scored, "no scored items found"
    problems = []
    for it in items(q):
        if it["linkId"] not in scored or it["type"] not in ("choice", "open-choice"):
            continue
        if not it.get("answerOption"):
            problems.append(f"{it['linkId']}: scored choice item without answerOption")
        for opt in it.get("answerOption", ()):
            coding = opt.get("valueCoding", {})
            on_opt, on_coding = weight_ext(opt), weight_ext(coding)
            where = f"{it['linkId']} {coding.get('code')}"
            if on_opt is None or on_coding is None:
                problems.append(f"{where}: itemWeight option={on_opt} coding={on_coding}")
            elif on_opt != on_coding:
                problems.append(f"{where}: itemWeight differs ({on_opt} vs {on_coding})")
    assert not problems, problems


# 3. Score expressions ---------------------------------------------------------------------------


def expected_samples() -> list[tuple[str, str]]:
    return [
        (qid, p.name.removesuffix(".expected.json"))
        for qid in QUESTIONNAIRES
        for p in sorted((SAMPLES / qid).glob("*.expected.json"))
    ]


EXPECTED = expected_samples()
EXPECTED_IDS = [f"{qid}/{name}" for qid, name in EXPECTED]


def test_every_scored_questionnaire_has_expected_samples():
    with_samples = {qid for qid, _ in EXPECTED}
    assert set(SCORED_INSTRUMENTS) <= with_samples, set(SCORED_INSTRUMENTS) - with_samples


def load_case(qid: str, name: str) -> tuple[Resource, Resource, dict[str, Any]]:
    qr = load_json(SAMPLES / qid / f"{name}.json")
    expected = load_json(SAMPLES / qid / f"{name}.expected.json")
    return QUESTIONNAIRES[qid], qr, expected


ALL_SAMPLES = [
    (qid, p.stem)
    for qid in QUESTIONNAIRES
    for p in sorted((SAMPLES / qid).glob("*.json"))
    if not p.name.endswith(".expected.json")
]


@pytest.mark.parametrize(("qid", "name"), ALL_SAMPLES, ids=[f"{q}/{n}" for q, n in ALL_SAMPLES])
def test_sample_is_a_response_to_its_questionnaire(qid: str, name: str):
    """The answers the expected values were computed from are answers the form offers."""
    q = QUESTIONNAIRES[qid]
    qr = load_json(SAMPLES / qid / f"{name}.json")
    assert qr["resourceType"] == "QuestionnaireResponse"
    assert qr.get("questionnaire", "").partition("|")[0] == q["url"]
    expected_file = SAMPLES / qid / f"{name}.expected.json"
    if expected_file.exists():
        calculated = {it["linkId"] for it in calculated_items(q)}
        assert set(load_json(expected_file)) == calculated, (
            "the expected file must list exactly the calculated items"
        )
    by_link = {it["linkId"]: it for it in items(q)}
    problems = []
    for ans_item in walk_items(qr.get("item", [])):
        q_item = by_link.get(ans_item["linkId"])
        if q_item is None:
            problems.append(f"{ans_item['linkId']}: not in the Questionnaire")
            continue
        options = {
            (o["valueCoding"].get("system"), o["valueCoding"]["code"])
            for o in q_item.get("answerOption", ())
            if "valueCoding" in o
        }
        for ans in ans_item.get("answer", ()):
            coding = ans.get("valueCoding")
            if coding is not None and options:
                if (coding.get("system"), coding.get("code")) not in options:
                    problems.append(f"{ans_item['linkId']}: answer {coding} is not an option")
    assert not problems, problems


def reference_scores(q: Resource, qr: Resource) -> dict[str, list[Any]]:
    """Root variables in order, then each calculatedExpression, all through fhirpathpy."""
    weights = Weights(q)
    # SDC binds %questionnaire to the form (https://hl7.org/fhir/uv/sdc/expressions.html).
    variables: dict[str, list[Any]] = {"questionnaire": [q]}
    for name, text in root_variables(q):
        variables[name] = reference_evaluate(qr, text, variables, weights)
    return {
        it["linkId"]: reference_evaluate(qr, calc_expression(it) or "", variables, weights)
        for it in calculated_items(q)
    }


@pytest.mark.parametrize(("qid", "name"), EXPECTED, ids=EXPECTED_IDS)
def test_fhirpathpy_scores_match_expected(qid: str, name: str):
    q, qr, expected = load_case(qid, name)
    actual = reference_scores(q, qr)
    for link_id, value in expected.items():
        assert link_id in actual, f"{link_id}: no calculated item"
        assert_score(actual[link_id], value, f"{qid}/{name} {link_id} (fhirpathpy)")


@pytest.mark.parametrize(("qid", "name"), EXPECTED, ids=EXPECTED_IDS)
def test_service_scores_match_expected(qid: str, name: str):
    q, qr, expected = load_case(qid, name)
    scores = {s.item.link_id: s for s in ScoringPlan(q).evaluate(qr)}
    for link_id, value in expected.items():
        assert link_id in scores, f"{link_id}: not scored by the service"
        got = scores[link_id]
        actual = [] if got.value is None else [got.value]
        assert_score(actual, value, f"{qid}/{name} {link_id} (ScoringPlan, reason {got.reason!r})")
        if value is not None:
            assert got.reason is None


@pytest.mark.parametrize(("qid", "name"), EXPECTED, ids=EXPECTED_IDS)
def test_band_results_are_answer_options_of_the_band(qid: str, name: str):
    """A band the expression returns is the very Coding of one of the band item's options."""
    q, qr, expected = load_case(qid, name)
    scores = {s.item.link_id: s.value for s in ScoringPlan(q).evaluate(qr)}
    for it in calculated_items(q):
        value = expected.get(it["linkId"])
        if it["type"] != "choice" or value is None:
            continue
        options = {o["valueCoding"]["code"]: o["valueCoding"] for o in it.get("answerOption", ())}
        assert value in options, f"{it['linkId']}: {value!r} not among {sorted(options)}"
        assert scores[it["linkId"]] == options[value]


# Least to most severe (authoring.md "Band items"; cut-offs in docs/instrument-sources.md). The
# service calls a change of band better or worse from this order.
BAND_ORDER = {
    "phq-9-severity": ["phq-9-minimal", "phq-9-mild", "phq-9-moderate",
                       "phq-9-moderately-severe", "phq-9-severe"],
    "gad-7-severity": ["gad-7-minimal", "gad-7-mild", "gad-7-moderate", "gad-7-severe"],
    "bsl-23-severity": ["bsl-23-none-low", "bsl-23-mild", "bsl-23-moderate", "bsl-23-high",
                        "bsl-23-very-high", "bsl-23-extreme"],
    "bpd-criteria-threshold": ["bpd-threshold-not-met", "bpd-threshold-met"],
    # LOINC LL465-6 (low, moderate, high); "none" has no LOINC answer.
    "cssrs-screener-triage": ["cssrs-triage-none", "LA9194-7", "LA6751-7", "LA9193-9"],
}
BAND_ITEMS = [
    (qid, it)
    for qid in INSTRUMENTS
    for it in calculated_items(QUESTIONNAIRES[qid])
    if it["type"] == "choice"
]


@pytest.mark.parametrize(("qid", "item"), BAND_ITEMS, ids=[it["linkId"] for _q, it in BAND_ITEMS])
def test_band_options_run_from_least_to_most_severe(qid: str, item: Resource):
    assert item["linkId"] in BAND_ORDER, "new band item: add its severity order to BAND_ORDER"
    codes = [o["valueCoding"]["code"] for o in item.get("answerOption", ())]
    assert codes == BAND_ORDER[item["linkId"]]


def catalogue_expressions() -> list[tuple[str, str, str]]:
    return [
        (qid, where, text)
        for qid, q in QUESTIONNAIRES.items()
        for where, text in all_expressions(q)
    ]


CATALOGUE_EXPRESSIONS = catalogue_expressions()


@pytest.mark.parametrize(
    ("qid", "where", "text"),
    CATALOGUE_EXPRESSIONS,
    ids=[f"{qid}: {where}" for qid, where, _t in CATALOGUE_EXPRESSIONS],
)
def test_expression_is_in_the_compiled_subset(qid: str, where: str, text: str):
    try:
        fhirpath.compile_expression(text)
    except fhirpath.Unsupported as exc:
        pytest.fail(f"{qid} {where}: {exc}\n{text}")


FORM_ITEM = re.compile(r"%questionnaire\.item\.where\(linkId = '[^']+'\)")


@pytest.mark.parametrize("qid", SCORED_INSTRUMENTS)
def test_no_expression_reads_a_calculated_item(qid: str):
    """authoring.md rule 1: scores depend on answers to non-calculated items and variables only."""
    q = QUESTIONNAIRES[qid]
    calculated = {it["linkId"] for it in calculated_items(q)}
    texts = [(f"variable {n}", t) for n, t in root_variables(q)]
    texts += [(f"item {it['linkId']}", calc_expression(it) or "") for it in calculated_items(q)]
    problems = []
    for where, text in texts:
        # Picking a band item's own answerOption Coding reads the form, not a response.
        text = FORM_ITEM.sub("", text)
        read = calculated & set(STRING_LITERAL.findall(text))
        read |= {c for p in STARTS_WITH.findall(text) for c in calculated if c.startswith(p)}
        if read:
            problems.append(f"{where} reads calculated item(s) {sorted(read)}")
    assert not problems, problems


# 4. Licences ------------------------------------------------------------------------------------


def answerable(q: Resource) -> list[Resource]:
    return [
        it
        for it in items(q)
        if it["type"] not in ("display", "group") and calc_expression(it) is None
    ]


def test_scl_90_r_ships_no_item_wording():
    q = QUESTIONNAIRES["scl-90-r"]
    problems = []
    questions = answerable(q)
    assert len(questions) == 90
    for it in questions:
        n = it["linkId"].removeprefix("scl-90-r-")
        if not re.fullmatch(r"SCL-90-R item \d+", it.get("text", "")):
            problems.append(f"{it['linkId']}: text {it.get('text')!r}")
        elif it["text"] != f"SCL-90-R item {n}":
            problems.append(f"{it['linkId']}: text {it['text']!r} names another item")
        slot = extension(it, EXT_LICENSED_TEXT_SLOT)
        if not (slot and slot.get("valueBoolean") is True):
            problems.append(f"{it['linkId']}: no licensed-text-slot extension")
        for c in it.get("code", ()):
            if c.get("display") not in (None, f"SCL-90-R item {n}"):
                problems.append(f"{it['linkId']}: code display {c['display']!r}")
        for key in ("prefix", "definition"):
            if key in it:
                problems.append(f"{it['linkId']}: has {key}")
    # Beyond the slots, only score labels: no instructions, no translated wording.
    for it in items(q):
        if it["type"] == "display":
            problems.append(f"{it['linkId']}: display item {it.get('text')!r}")
        elif calc_expression(it) is not None and not it.get("text", "").startswith("SCL-90-R "):
            problems.append(f"{it['linkId']}: score label {it.get('text')!r}")
    for path, _ in all_strings(q):
        if "._text" in path or "._display" in path or "._title" in path:
            problems.append(f"translation at {path}")
    assert not problems, problems


def test_licensed_slot_codes_carry_no_wording_in_the_codesystem():
    """The instrument CodeSystem's display for a slot item is the slot label, nothing more."""
    cs = CODESYSTEM_CODES[CS_INSTRUMENT]
    problems = []
    for qid in INSTRUMENTS:
        q = QUESTIONNAIRES[qid]
        slots = set(licensed_slots(q))
        for it in items(q):
            if it["linkId"] not in slots:
                continue
            for c in it.get("code", ()):
                concept = cs.get(c["code"]) if c.get("system") == CS_INSTRUMENT else None
                if concept and concept.get("display") != it.get("text"):
                    problems.append(f"{qid} {c['code']}: CS display {concept.get('display')!r}")
                if concept and concept.get("definition"):
                    problems.append(f"{qid} {c['code']}: CS definition present")
    assert not problems, problems


@pytest.mark.parametrize(
    "qid", [qid for qid in INSTRUMENTS if licensed_slots(QUESTIONNAIRES[qid])]
)
def test_licensed_slots_hold_placeholders_only(qid: str):
    """A slot's text is '<instrument> item N' for its own N; the site loads the wording."""
    problems = []
    for it in items(QUESTIONNAIRES[qid]):
        if it["linkId"] not in licensed_slots(QUESTIONNAIRES[qid]):
            continue
        n = it["linkId"].rsplit("-", 1)[-1]
        if not re.fullmatch(rf"[A-Z0-9-]+ item {n}", it.get("text", "")):
            problems.append(f"{it['linkId']}: {it.get('text')!r}")
        if translations(it.get("_text")):
            problems.append(f"{it['linkId']}: translated slot text")
    assert not problems, problems


# Distinctive phrases of the DSM-5 BPD criteria (APA copyright); none may appear.
DSM5_BPD_PHRASES = [
    "frantic efforts",
    "real or imagined abandonment",
    "idealization and devaluation",
    "extremes of idealization",
    "markedly and persistently unstable",
    "self-image or sense of self",
    "potentially self-damaging",
    "spending, sex, substance abuse",
    "reckless driving",
    "binge eating",
    "recurrent suicidal behavior",
    "suicidal behavior, gestures, or threats",
    "self-mutilating behavior",
    "marked reactivity of mood",
    "episodic dysphoria",
    "rarely more than a few days",
    "chronic feelings of emptiness",
    "inappropriate, intense anger",
    "difficulty controlling anger",
    "frequent displays of temper",
    "recurrent physical fights",
    "transient, stress-related paranoid ideation",
    "severe dissociative symptoms",
    "pervasive pattern of instability",
]


def normalise(text: str) -> str:
    text = text.lower().replace("behaviour", "behavior").replace("idealisation", "idealization")
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def test_bpd_criteria_labels_are_short_and_not_dsm_text():
    q = QUESTIONNAIRES["bpd-criteria"]
    criteria = [it for it in answerable(q) if re.fullmatch(r"bpd-criteria-\d", it["linkId"])]
    assert len(criteria) == 9
    problems = [
        f"{it['linkId']}: label of {len(it.get('text', ''))} chars"
        for it in criteria
        if not 0 < len(it.get("text", "")) <= 60
    ]
    phrases = [normalise(p) for p in DSM5_BPD_PHRASES]
    for path, text in all_strings(q):
        found = [p for p in phrases if p in normalise(text)]
        if found:
            problems.append(f"{path}: DSM-5 phrase(s) {found}")
    assert not problems, problems


def item_texts(it: Resource) -> Iterator[tuple[str, str]]:
    """The wording an item shows: text, its translations, prefix, answer labels."""
    for key in ("text", "prefix"):
        if key in it:
            yield f"{it['linkId']}.{key}", it[key]
        for i, translated in enumerate(translations(it.get(f"_{key}"))):
            yield f"{it['linkId']}._{key}[it {i}]", translated
    for opt in it.get("answerOption", ()):
        coding = opt.get("valueCoding", {})
        if "display" in coding:
            yield f"{it['linkId']} answer {coding.get('code')}", coding["display"]
        if "valueString" in opt:
            yield f"{it['linkId']} answer", opt["valueString"]


def test_mas_a_ships_scores_only():
    q = QUESTIONNAIRES["mas-a"]
    long_texts = [
        f"{where}: {len(text)} chars"
        for it in items(q)
        for where, text in item_texts(it)
        if len(text) > 80
    ]
    assert not long_texts, long_texts
    assert not [it["linkId"] for it in items(q) if it["type"] == "display"], "no manual text"


@pytest.mark.parametrize(
    "qid", [qid for qid in INSTRUMENTS if licensed_slots(QUESTIONNAIRES[qid])]
)
def test_copyright_says_items_are_licensed_text_slots(qid: str):
    copyright_text = QUESTIONNAIRES[qid]["copyright"].lower()
    assert re.search(r"licen[cs]ed[- ]text slot", copyright_text), copyright_text


@pytest.mark.parametrize("qid", INSTRUMENTS)
def test_instrument_copyright_names_its_source(qid: str):
    q = QUESTIONNAIRES[qid]
    citation = extension(q, EXT_SOURCE_CITATION)
    assert citation and re.search(r"\b(19|20)\d\d\b", citation.get("valueString", "")), (
        "source-citation extension with a dated citation"
    )
    missing = [token for token in INSTRUMENT_CITATIONS[qid] if token not in q["copyright"]]
    assert not missing, f"copyright does not name {missing}: {q['copyright']!r}"


# 5. MIT forms in Italian ---------------------------------------------------------------------


@pytest.mark.parametrize("qid", MIT_FORMS)
def test_mit_form_is_translated_into_italian(qid: str):
    q = QUESTIONNAIRES[qid]
    missing = []
    if not [t for t in translations(q.get("_title")) if t.strip()]:
        missing.append("title")
    for it in items(q):
        if "text" in it and not [t for t in translations(it.get("_text")) if t.strip()]:
            missing.append(f"{it['linkId']}.text")
        for opt in it.get("answerOption", ()):
            coding = opt.get("valueCoding")
            if coding and "display" in coding:
                if not [t for t in translations(coding.get("_display")) if t.strip()]:
                    missing.append(f"{it['linkId']} answer {coding.get('code')}.display")
    assert not missing, missing


@pytest.mark.parametrize("qid", MIT_FORMS)
def test_mit_form_link_id_is_its_item_code(qid: str):
    wrong = [
        it["linkId"]
        for it in items(QUESTIONNAIRES[qid])
        if it["type"] != "display"
        and [(c.get("system"), c.get("code")) for c in it.get("code", ())]
        != [(CS_MIT_FORMS, it["linkId"])]
    ]
    assert not wrong, wrong


# 6. Psychometric data file ----------------------------------------------------------------------

PSYCHOMETRICS = load_json(PROFILE_DIR / "psychometrics.json")


def numbers(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, number, citation) for every value-dict, and bare numbers with citation None."""
    if isinstance(node, dict):
        if "value" in node:
            yield path, node["value"], node.get("citation")
        for key, value in node.items():
            if key == "value":
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                yield f"{path}.{key}", value, None
            else:
                yield from numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, f"{path}[{i}]")


PSYCHOMETRIC_NUMBERS = list(numbers(PSYCHOMETRICS["instruments"], "instruments"))


@pytest.mark.parametrize(
    ("path", "value", "citation"),
    PSYCHOMETRIC_NUMBERS,
    ids=[p.removeprefix("instruments.") for p, _v, _c in PSYCHOMETRIC_NUMBERS],
)
def test_psychometric_number_has_a_citation(path: str, value: Any, citation: Any):
    assert isinstance(citation, str) and citation.strip(), f"{path} = {value!r} has no citation"


PSYCHOMETRIC_SCORES = [
    (qid, link_id)
    for qid, instrument in PSYCHOMETRICS["instruments"].items()
    for link_id in [*instrument["scores"], instrument.get("default_score")]
    if link_id
]


@pytest.mark.parametrize(
    ("qid", "link_id"), PSYCHOMETRIC_SCORES, ids=[f"{q}:{s}" for q, s in PSYCHOMETRIC_SCORES]
)
def test_psychometric_score_is_a_calculated_item(qid: str, link_id: str):
    assert qid in QUESTIONNAIRES, f"no questionnaire {qid}"
    calculated = {it["linkId"] for it in calculated_items(QUESTIONNAIRES[qid])}
    assert link_id in calculated, f"{qid} has no calculated item {link_id}"


# 7. The LHC-Forms PHQ-9 (LOINC form, ordinalValue, item-level variables) ---------------------

LHC = DATA / "lhc-forms"


def sdc_fhirpathpy_scores(q: Resource, qr: Resource) -> dict[str, list[Any]]:
    """Every calculatedExpression as an SDC renderer evaluates it, with fhirpathpy: variables of
    the root, the ancestors and the item itself in scope; %resource, %questionnaire."""
    base = {"resource": qr, "context": qr, "questionnaire": q}
    results: dict[str, list[Any]] = {}

    def run(text: str, env: dict[str, list[Any]]) -> list[Any]:
        return [plain(v) for v in
                fhirpathpy.evaluate(qr, text, {**base, **env}, model=models["r4"])]

    def visit(element: Resource, env: dict[str, list[Any]]) -> None:
        env = dict(env)
        for ext in element.get("extension", ()):
            if ext.get("url") == EXT_VARIABLE:
                expr = ext["valueExpression"]
                env[expr["name"]] = run(expr["expression"], env)
        text = calc_expression(element) if "linkId" in element else None
        if text is not None:
            results[element["linkId"]] = run(text, env)
        for child in element.get("item", ()):
            visit(child, env)

    visit(q, {})
    return results


def test_lhc_forms_phq9_fhirpathpy_score_matches_expected():
    q, qr = load_json(LHC / "phq-9-loinc.json"), load_json(LHC / "phq-9-loinc.response.json")
    expected = load_json(LHC / "phq-9-loinc.expected.json")
    actual = sdc_fhirpathpy_scores(q, qr)
    for link_id, value in expected.items():
        assert_score(actual.get(link_id, []), value, f"LHC PHQ-9 {link_id} (fhirpathpy)")


def test_lhc_forms_phq9_service_score_matches_fhirpathpy():
    q, qr = load_json(LHC / "phq-9-loinc.json"), load_json(LHC / "phq-9-loinc.response.json")
    expected = load_json(LHC / "phq-9-loinc.expected.json")
    reference = sdc_fhirpathpy_scores(q, qr)
    scores = {s.item.link_id: s for s in ScoringPlan(q).evaluate(qr)}
    for link_id, value in expected.items():
        got = scores[link_id]
        actual = [] if got.value is None else [got.value]
        assert_score(actual, value, f"LHC PHQ-9 {link_id} (ScoringPlan, reason {got.reason!r})")
        assert_score(actual, reference[link_id][0], f"LHC PHQ-9 {link_id} vs fhirpathpy")


def test_ders_wording_is_shipped_and_the_ders16_items_are_ders_items():
    """Issue 13: the DERS items carry their wording; the DERS-16's are the DERS items its
    copyright names, word for word (docs/instrument-sources.md)."""
    ders = answerable(QUESTIONNAIRES["ders"])
    short = answerable(QUESTIONNAIRES["ders-16"])
    assert len(ders) == 36 and len(short) == 16
    assert not licensed_slots(QUESTIONNAIRES["ders"])
    assert not licensed_slots(QUESTIONNAIRES["ders-16"])
    for it in ders + short:
        assert not re.search(r"item \d+$", it["text"]) and it["text"].endswith("."), it["text"]
        assert "\u2019" not in it["text"] and "  " not in it["text"]
    named = re.search(r"DERS items ([\d, ]+)", QUESTIONNAIRES["ders-16"]["copyright"])
    assert named is not None
    numbers = [int(n) for n in named.group(1).replace(" ", "").strip(",").split(",")]
    assert [it["text"] for it in short] == [ders[n - 1]["text"] for n in numbers]
    assert "Gratz" in QUESTIONNAIRES["ders"]["copyright"]
    assert "Bjureberg" in QUESTIONNAIRES["ders-16"]["copyright"]
