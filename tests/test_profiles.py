"""The project's StructureDefinitions and ValueSets, and the Observations the service produces.

Every profiles/StructureDefinition-*.json and ValueSet-*.json must parse with fhir.resources R4B and
follow the naming rules; the Observations the service really stores (DERS and BPD criteria,
intake then end of treatment) must conform to the extension definitions and to the score and
panel profiles, as far as a small differential reader can check: cardinalities, fixed values,
patterns, types, target types, required bindings to the project's ValueSets and the FHIRPath
invariants (evaluated with fhirpathpy).
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.structuredefinition import StructureDefinition
from fhir.resources.R4B.valueset import ValueSet
from fhirpathpy import evaluate
from fhirpathpy.models import models

from mit_fhir.app import create_app
from mit_fhir.paths import PROFILE_DIR, QUESTIONNAIRE_DIR
from tests.conftest import fresh_database_url

PROFILES = PROFILE_DIR
QUESTIONNAIRES = QUESTIONNAIRE_DIR
SAMPLES = Path(__file__).resolve().parent / "data" / "samples"
BASE = "https://mit-fhir.org/fhir"
SD_BASE = f"{BASE}/StructureDefinition"
RC = f"{SD_BASE}/reliable-change"
BC = f"{SD_BASE}/band-change"
SCORE = f"{SD_BASE}/mit-score-observation"
PANEL = f"{SD_BASE}/mit-score-panel"
FHIR_JSON = "application/fhir+json"
PATIENT = "Patient/profiles-case"
R4 = models["r4"]
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

Resource = dict[str, Any]

SD_FILES = sorted(PROFILES.glob("StructureDefinition-*.json"))
VS_FILES = sorted(PROFILES.glob("ValueSet-*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


SDS: dict[str, Resource] = {sd["url"]: sd for sd in map(load, SD_FILES)}
VALUE_SETS: dict[str, Resource] = {vs["url"]: vs for vs in map(load, VS_FILES)}
CODE_SYSTEMS: dict[str, Resource] = {
    cs["url"]: cs for cs in map(load, sorted(PROFILES.glob("CodeSystem-*.json")))
}


# 1. The definitions themselves --------------------------------------------------------------


def test_the_expected_definitions_exist():
    ids = {p.name.removeprefix("StructureDefinition-").removesuffix(".json") for p in SD_FILES}
    assert {
        "reliable-change", "band-change", "mit-score-observation", "mit-score-panel",
        "score-rule", "licensed-text-slot", "source-citation",
    } <= ids


@pytest.mark.parametrize("path", SD_FILES, ids=lambda p: p.stem)
def test_structure_definition_parses_and_is_named_by_its_file(path: Path):
    raw = load(path)
    StructureDefinition.model_validate(raw)
    sd_id = path.stem.removeprefix("StructureDefinition-")
    assert raw["id"] == sd_id
    assert raw["url"] == f"{SD_BASE}/{sd_id}"
    assert raw["status"] == "active"
    assert raw["fhirVersion"] == "4.0.1"
    assert raw["derivation"] == "constraint"
    assert raw.get("description", "").strip()
    elements = raw["differential"]["element"]
    assert elements[0]["path"] == raw["type"], "the differential starts at the root"
    ids = [e["id"] for e in elements]
    assert len(ids) == len(set(ids)), "element ids are unique"
    for element in elements:
        assert element["id"].replace(":", ".").startswith(raw["type"])
        assert "constraint" not in element or all(
            c["key"] and c["expression"] and c["severity"] in ("error", "warning")
            for c in element["constraint"]
        )


@pytest.mark.parametrize(
    "path", [p for p in SD_FILES if load(p)["type"] == "Extension"], ids=lambda p: p.stem
)
def test_extension_definition_fixes_its_url_and_has_a_context(path: Path):
    raw = load(path)
    assert raw["kind"] == "complex-type"
    assert raw["baseDefinition"] == "http://hl7.org/fhir/StructureDefinition/Extension"
    assert raw["context"], "an extension says where it may be used"
    elements = {e["id"]: e for e in raw["differential"]["element"]}
    assert elements["Extension.url"]["fixedUri"] == raw["url"]


@pytest.mark.parametrize("path", VS_FILES, ids=lambda p: p.stem)
def test_value_set_parses_and_includes_known_codes(path: Path):
    raw = load(path)
    ValueSet.model_validate(raw)
    vs_id = path.stem.removeprefix("ValueSet-")
    assert raw["id"] == vs_id
    assert raw["url"] == f"{BASE}/ValueSet/{vs_id}"
    assert raw["status"] == "active"
    for include in raw["compose"]["include"]:
        system = CODE_SYSTEMS[include["system"]]
        known = {c["code"] for c in system["concept"]}
        listed = {c["code"] for c in include.get("concept", ())}
        assert listed <= known, f"{listed - known} not in {include['system']}"
    assert value_set_codes(raw["url"]), "the value set is not empty"


def test_every_binding_to_a_project_value_set_resolves():
    for sd in SDS.values():
        for element in sd["differential"]["element"]:
            vs = element.get("binding", {}).get("valueSet", "")
            if vs.startswith(BASE):
                assert vs in VALUE_SETS, f"{sd['id']} {element['id']}: {vs} has no file"


def value_set_codes(url: str) -> set[tuple[str, str]]:
    """(system, code) pairs of a project ValueSet (enumerated concepts or whole CodeSystems)."""
    codes: set[tuple[str, str]] = set()
    for include in VALUE_SETS[url]["compose"]["include"]:
        system = include["system"]
        concepts = include.get("concept") or CODE_SYSTEMS[system]["concept"]
        codes |= {(system, c["code"]) for c in concepts}
    return codes


# 2. A small reader of the differentials ------------------------------------------------------


def elements_of(sd: Resource) -> dict[str, Resource]:
    return {e["id"]: e for e in sd["differential"]["element"]}


def value_key(type_code: str) -> str:
    return "value" + type_code[0].upper() + type_code[1:]


def max_of(element: Resource, default: float = float("inf")) -> float:
    raw = element.get("max")
    if raw is None:
        return default
    return float("inf") if raw == "*" else int(raw)


def check_target(ref: Resource, type_: Resource, where: str) -> list[str]:
    """A literal reference's resource type must be one of the type's targetProfiles."""
    targets = type_.get("targetProfile") or []
    if not targets:
        return []
    allowed = set()
    for target in targets:
        if target.startswith("http://hl7.org/fhir/StructureDefinition/"):
            allowed.add(target.rsplit("/", 1)[1])
        elif target in SDS:
            allowed.add(SDS[target]["type"])
    kind = str(ref.get("reference", "")).split("/", 1)[0]
    return [] if kind in allowed else [f"{where}: reference {ref!r} is not one of {allowed}"]


def check_binding(value: Any, binding: Resource | None, where: str) -> list[str]:
    if not binding or binding.get("strength") != "required":
        return []
    url = binding["valueSet"]
    if url not in VALUE_SETS:
        return []
    codings = value.get("coding", []) if "coding" in value else [value]
    allowed = value_set_codes(url)
    bad = [c for c in codings if (c.get("system"), c.get("code")) not in allowed]
    return [f"{where}: {c} not in {url}" for c in bad]


def invariants(element: Resource, node: Any, resource: Resource, where: str) -> list[str]:
    problems = []
    for c in element.get("constraint", ()):
        result = evaluate(node, c["expression"], {"resource": resource}, R4)
        if result != [True]:
            problems.append(f"{where}: {c['key']} ({c['human']}) gave {result}")
    return problems


def complex_extension_problems(ext: Resource, sd: Resource, resource: Resource) -> list[str]:
    """Every sub-extension declared with its value type, cardinalities, bindings, invariants."""
    where = sd["id"]
    els = elements_of(sd)
    slices: dict[str, tuple[Resource, Resource]] = {}
    for element in els.values():
        if element["path"] == "Extension.extension" and element.get("sliceName"):
            url = els[f"{element['id']}.url"]["fixedUri"]
            slices[url] = (element, els[f"{element['id']}.value[x]"])
    problems = []
    if ext.get("url") != sd["url"]:
        problems.append(f"{where}: url {ext.get('url')}")
    if [k for k in ext if k.startswith("value")] and max_of(els["Extension.value[x]"]) == 0:
        problems.append(f"{where}: a complex extension has no value[x]")
    subs = ext.get("extension", [])
    counts = Counter(s.get("url") for s in subs)
    for s in subs:
        url = s.get("url")
        if url not in slices:
            problems.append(f"{where}: sub-extension {url!r} is not declared")
            continue
        _, value_el = slices[url]
        keys = [k for k in s if k.startswith("value")]
        types = {value_key(t["code"]): t for t in value_el["type"]}
        if len(keys) != 1 or keys[0] not in types:
            problems.append(f"{where}.{url}: {keys} is not one of {sorted(types)}")
            continue
        if s.get("extension"):
            problems.append(f"{where}.{url}: nested extensions are not declared")
        value = s[keys[0]]
        if keys[0] == "valueReference":
            problems += check_target(value, types[keys[0]], f"{where}.{url}")
        if isinstance(value, dict):
            problems += check_binding(value, value_el.get("binding"), f"{where}.{url}")
    for url, (slice_el, _) in slices.items():
        n = counts.get(url, 0)
        if not slice_el["min"] <= n <= max_of(slice_el):
            allowed = f"{slice_el['min']}..{slice_el['max']}"
            problems.append(f"{where}.{url}: {n} present, allowed {allowed}")
    problems += invariants(els["Extension"], ext, resource, where)
    return problems


def occurrences(resource: Resource, name: str) -> list[tuple[str, Any]]:
    """(json key, item) pairs of one top-level element; choice elements match value<Type>."""
    if name.endswith("[x]"):
        stem = name[:-3]
        pattern = re.compile(rf"{stem}[A-Z]\w*$")
        return [(k, v) for k, v in resource.items() if pattern.match(k)]
    value = resource.get(name)
    if value is None:
        return []
    return [(name, v) for v in (value if isinstance(value, list) else [value])]


def matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern[x]: every element of the pattern is present in the value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            matches_pattern(value.get(k), v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(matches_pattern(v, p) for v in value) for p in pattern
        )
    return value == pattern


def slice_members(element: Resource, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The items a slice takes, for the discriminators the profiles use."""
    if "patternCodeableConcept" in element:
        return [(k, v) for k, v in items if matches_pattern(v, element["patternCodeableConcept"])]
    types = element.get("type", [])
    if element["path"].endswith("[x]"):
        keys = {value_key(t["code"]) for t in types}
        stem = element["path"].rsplit(".", 1)[1][:-3]
        keys = {stem + k.removeprefix("value") for k in keys}
        return [(k, v) for k, v in items if k in keys]
    if types and types[0]["code"] == "Extension":
        urls = set(types[0].get("profile", []))
        return [(k, v) for k, v in items if v.get("url") in urls]
    if types and types[0]["code"] == "Reference":
        return [(k, v) for k, v in items if not check_target(v, types[0], "")]
    raise AssertionError(f"no discriminator reader for {element['id']}")


def profile_problems(resource: Resource, sd: Resource) -> list[str]:
    """Check a resource against the top-level elements and slices of a profile's differential."""
    els = elements_of(sd)
    root = sd["type"]
    problems = invariants(els[root], resource, resource, sd["id"])
    for element in els.values():
        parts = element["id"].split(".")
        if len(parts) < 2 or element["id"] == root:
            continue
        name, _, slice_name = parts[1].partition(":")
        items = occurrences(resource, name)
        where = f"{sd['id']} {element['id']}"
        if len(parts) == 2:
            if slice_name:
                items = slice_members(element, items)
            if not element.get("min", 0) <= len(items) <= max_of(element):
                problems.append(f"{where}: {len(items)} present, allowed "
                                f"{element.get('min', 0)}..{element.get('max', '*')}")
            if "slicing" in element and element["slicing"]["rules"] == "closed":
                sliced = set()
                for other in els.values():
                    if other["id"].startswith(f"{root}.{name}:") and other["id"].count(".") == 1:
                        members = slice_members(other, occurrences(resource, name))
                        sliced |= {id(v) for _, v in members}
                stray = [k for k, v in items if id(v) not in sliced]
                if stray:
                    problems.append(f"{where}: closed slicing, {stray} match no slice")
            for key, item in items:
                if "fixedCode" in element and item != element["fixedCode"]:
                    problems.append(f"{where}: {item!r} != fixed {element['fixedCode']!r}")
                types = element.get("type")
                if types and name.endswith("[x]"):
                    stem = name[:-3]
                    allowed = {stem + value_key(t["code"]).removeprefix("value") for t in types}
                    if key not in allowed:
                        problems.append(f"{where}: {key} is not one of {sorted(allowed)}")
                if types and types[0]["code"] == "Reference":
                    if not any(not check_target(item, t, "") for t in types):
                        problems.append(f"{where}: {item!r} has the wrong target type")
                if isinstance(item, dict):
                    problems += check_binding(item, element.get("binding"), where)
                problems += invariants(element, item, resource, where)
        elif len(parts) == 3:
            parent_id = ".".join(parts[:2])
            parent = els.get(parent_id)
            if parent is not None and parent.get("sliceName"):
                items = slice_members(parent, items)
            child = parts[2]
            for _, item in items:
                values = item.get(child) if isinstance(item, dict) else None
                n = 0 if values is None else len(values) if isinstance(values, list) else 1
                if not element.get("min", 0) <= n <= max_of(element):
                    problems.append(f"{where}: {n} present")
                if values is not None and "fixedUri" in element and values != element["fixedUri"]:
                    problems.append(f"{where}: {values!r} != {element['fixedUri']!r}")
                pattern = element.get("patternCodeableConcept")
                if values is not None and pattern and not matches_pattern(values, pattern):
                    problems.append(f"{where}: {values!r} does not match {pattern!r}")
    return problems


# 3. What the service really produces ---------------------------------------------------------


CASES = {
    "ders": "ders-total",
    "bpd-criteria": "bpd-criteria-threshold",
}
DATES = {"case-intake": "2019-03-04", "case-end": "2020-09-07"}


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Resource]]]:
    """Observations by code after posting intake then end of treatment for one patient."""
    db = fresh_database_url(tmp_path_factory.mktemp("profiles"))
    app = create_app({"DATABASE_URL": db})
    client = app.test_client()
    for qid in CASES:
        for name, authored in DATES.items():
            qr = load(SAMPLES / qid / f"{name}.json")
            qr["authored"] = authored
            qr["subject"] = {"reference": PATIENT}
            response = client.post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                                   content_type=FHIR_JSON)
            assert response.status_code == 201, response.get_data(as_text=True)
    found: dict[str, list[Resource]] = {}
    for code in [*CASES.values(), "ders-panel", "bpd-criteria-panel", None]:
        query = f"/fhir/Observation?patient={PATIENT}&_sort=date&_count=500"
        if code:
            query += f"&code={code}"
        response = client.get(query)
        assert response.status_code == 200, response.get_data(as_text=True)
        found[code or "*"] = [e["resource"] for e in response.get_json().get("entry", [])]
    yield found
    app.extensions["mit_fhir"].store.dispose()


def flagged(observations: list[Resource], url: str) -> list[tuple[Resource, Resource]]:
    return [(o, e) for o in observations for e in o.get("extension", []) if e["url"] == url]


def test_the_cases_give_a_baseline_and_a_flagged_score(produced: dict[str, list[Resource]]):
    for code in CASES.values():
        series = produced[code]
        assert [o["effectiveDateTime"] for o in series] == list(DATES.values()), code
        assert not series[0].get("extension"), "the baseline carries no change flag"
        assert series[1].get("extension"), f"{code}: the later score is flagged"


def test_reliable_change_conforms(produced: dict[str, list[Resource]]):
    sd = SDS[RC]
    pairs = flagged(produced["*"], RC)
    assert pairs, "the DERS end-of-treatment scores carry reliable-change"
    for obs, ext in pairs:
        assert complex_extension_problems(ext, sd, obs) == [], obs["code"]


def test_band_change_conforms(produced: dict[str, list[Resource]]):
    sd = SDS[BC]
    pairs = flagged(produced["bpd-criteria-threshold"], BC)
    assert len(pairs) == 1
    for obs, ext in flagged(produced["*"], BC):
        assert complex_extension_problems(ext, sd, obs) == [], obs["code"]


def test_the_readme_example_is_what_the_service_says(produced: dict[str, list[Resource]]):
    """The worked example in the profile's description (DERS 118 -> 57) is the real output."""
    intake, end = produced["ders-total"]
    assert intake["valueQuantity"]["value"] == 118 and end["valueQuantity"]["value"] == 57
    parts = {s["url"]: s for s in next(e for e in end["extension"] if e["url"] == RC)["extension"]}
    assert parts["category"]["valueCoding"]["code"] == "recovered"
    assert parts["reliable"]["valueBoolean"] is True
    assert parts["index"]["valueDecimal"] == pytest.approx(-7.87, abs=0.005)
    smallest = parts["smallestReliableChange"]["valueQuantity"]["value"]
    assert smallest == pytest.approx(15.2, abs=0.05)
    assert parts["cutoff"]["valueDecimal"] == pytest.approx(105.18, abs=0.005)
    assert parts["cutoffType"]["valueCoding"]["code"] == "cutoff-c"
    assert parts["parametersVerified"]["valueBoolean"] is False
    assert parts["baseline"]["valueReference"]["reference"] == f"Observation/{intake['id']}"
    assert end["interpretation"][0]["coding"][0]["code"] == "B"
    description = SDS[SCORE]["description"]
    for token in ("118", "57", "recovered", "-7.87", "15.2", "105.18", "parametersVerified"):
        assert token in description


def test_band_example(produced: dict[str, list[Resource]]):
    intake, end = produced["bpd-criteria-threshold"]
    parts = {s["url"]: s for s in next(e for e in end["extension"] if e["url"] == BC)["extension"]}
    assert parts["baselineValue"]["valueCoding"] == intake["valueCodeableConcept"]["coding"][0]
    codes = [intake["valueCodeableConcept"]["coding"][0]["code"],
             end["valueCodeableConcept"]["coding"][0]["code"]]
    interpretation = [c["code"] for i in end.get("interpretation", []) for c in i["coding"]]
    assert interpretation == ([] if codes[0] == codes[1] else interpretation)
    assert set(interpretation) <= {"B", "W"}


def test_every_produced_observation_conforms_to_its_profile(produced: dict[str, list[Resource]]):
    observations = produced["*"]
    profiles = Counter(p for o in observations for p in o["meta"]["profile"])
    assert profiles[SCORE] > 2 and profiles[PANEL] == 4
    for obs in observations:
        Observation.model_validate(obs)
        for url in obs["meta"]["profile"]:
            assert url in SDS, f"no StructureDefinition for {url}"
            assert profile_problems(obs, SDS[url]) == [], (obs["code"], obs.get("valueQuantity"))


def test_every_project_extension_used_is_defined(produced: dict[str, list[Resource]]):
    for obs in produced["*"]:
        for ext in obs.get("extension", []):
            if ext["url"].startswith(BASE):
                assert ext["url"] in SDS
        for coding in [c for i in obs.get("interpretation", []) for c in i["coding"]]:
            assert coding["system"] == V3_INTERPRETATION and coding["code"] in ("B", "W")


# 4. The Questionnaire extensions -------------------------------------------------------------


def walk(node: Resource, path: str) -> Iterator[tuple[str, Resource]]:
    yield path, node
    for item in node.get("item", []) or []:
        yield from walk(item, "Questionnaire.item")


@pytest.mark.parametrize("path", sorted(QUESTIONNAIRES.glob("*.json")), ids=lambda p: p.stem)
def test_questionnaire_extensions_match_their_definitions(path: Path):
    q = load(path)
    for where, node in walk(q, "Questionnaire"):
        for ext in node.get("extension", []):
            if not ext["url"].startswith(BASE):
                continue
            sd = SDS.get(ext["url"])
            assert sd, f"{ext['url']} has no StructureDefinition"
            contexts = {c["expression"] for c in sd["context"]}
            assert where in contexts, f"{sd['id']} used on {where}, declared for {contexts}"
            value_el = elements_of(sd)["Extension.value[x]"]
            keys = [k for k in ext if k.startswith("value")]
            if max_of(value_el) == 0:  # a complex extension: its parts are checked in full
                assert keys == [] and complex_extension_problems(ext, sd, q) == [], sd["id"]
                continue
            assert keys == [value_key(value_el["type"][0]["code"])], (sd["id"], keys)


# 5. The checker catches what it should -------------------------------------------------------


def test_the_checker_rejects_bad_extensions(produced: dict[str, list[Resource]]):
    obs, ext = flagged(produced["ders-total"], RC)[0]
    sd = SDS[RC]
    undeclared = copy.deepcopy(ext)
    undeclared["extension"].append({"url": "pValue", "valueDecimal": 0.01})
    wrong_type = copy.deepcopy(ext)
    for s in wrong_type["extension"]:
        if s["url"] == "index":
            s.pop("valueDecimal")
            s["valueString"] = "-7.87"
    missing = copy.deepcopy(ext)
    missing["extension"] = [s for s in missing["extension"] if s["url"] != "parametersVerified"]
    bad_code = copy.deepcopy(ext)
    for s in bad_code["extension"]:
        if s["url"] == "category":
            s["valueCoding"]["code"] = "cured"
    inconsistent = copy.deepcopy(ext)
    for s in inconsistent["extension"]:
        if s["url"] == "reliable":
            s["valueBoolean"] = False
    for broken in (undeclared, wrong_type, missing, bad_code, inconsistent):
        assert complex_extension_problems(broken, sd, obs), broken


def test_the_checker_rejects_bad_observations(produced: dict[str, list[Resource]]):
    obs = produced["ders-total"][1]
    sd = SDS[SCORE]
    no_survey = copy.deepcopy(obs)
    no_survey["category"][0]["coding"][0]["code"] = "exam"
    string_value = copy.deepcopy(obs)
    string_value["valueString"] = str(string_value.pop("valueQuantity")["value"])
    both = copy.deepcopy(obs)
    both["dataAbsentReason"] = {"text": "x"}
    no_baseline = copy.deepcopy(obs)
    no_baseline["derivedFrom"] = no_baseline["derivedFrom"][:1]
    amended = copy.deepcopy(obs)
    amended["status"] = "amended"
    for broken in (no_survey, string_value, both, no_baseline, amended):
        assert profile_problems(broken, sd), broken
