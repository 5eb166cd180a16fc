"""Searches with a token for patient A, spelling patient B every way we know: none of B's rows.

Each spelling is the raw query text a client sends (percent-encodings included, Werkzeug decodes
it once). An answer passes when it is a 400 or a 403, or a searchset holding only A's rows; the
honest spellings of A must still find A's data, so that the tables cannot pass by refusing all.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mit_fhir.fhir.search import PARAMETERS
from tests.security.attack import BASE, PATIENT_DATA, A, B, World

# Spellings of B, or of A then B, as raw query values.
SPELLINGS = [
    f"Patient/{B}", B, f"{BASE}/Patient/{B}", f"https://other.example.org/fhir/Patient/{B}",
    f"https://ehr.example.org/fhir/Patient/{A}/../{B}", f"{BASE}/Patient/{A}/../{B}",
    f"Patient/{A}%3F/Patient/{B}", f"Patient/{A}?/Patient/{B}", f"Patient/{A}%3Fx=Patient/{B}",
    f"Patient%2F{B}", f"Patient/{A}%2FPatient/{B}", f"Patient/{A}%2F..%2F{B}",
    f"Patient%252F{B}", f"Patient/{A}%252F..%252F{B}", f"Patient/{A}%253F/Patient/{B}",
    f"Patient/{A}/../{B}", f"Patient/{A}/./../{B}", f"./Patient/{B}", f"Patient/./{B}",
    f"Patient/{A}/%2E%2E/{B}", f"Patient/{A}%23", f"Patient/{A}%23/Patient/{B}",
    f"Patient/{A}?x", f"patient/{B}", f"PATIENT/{B}", f"Patient/{B.upper()}",
    f"Patient/{B}%0A", f"Patient/{A}%0A", f"Patient/{A}%0APatient/{B}", f"%20Patient/{B}",
    f"Patient/{B}%20", f"Patient/{B}%09", f"Patient/{A}%09Patient/{B}", f"Patient/{A}%00{B}",
    f"Patient%EF%BC%8F{B}", f"Patient/{A}%EF%BC%8FPatient/{B}",  # fullwidth solidus U+FF0F
    "Patient/p%D0%B0t-2", "Patient/%D1%80at-2",  # Cyrillic a, Cyrillic er for p
    f"Patient/{B}/_history/1", f"Patient/{A}/_history/../../{B}", f"{A},{B}",
    f"Patient/{A},Patient/{B}", f"{A}%2C{B}", f"Patient/{A},", f",{B}", f"Patient/{A}%5C{B}",
    f"Patient/{A}/Patient/{B}", f"Patient//{B}", f"/Patient/{B}", f"Patient/{B}/",
    f"Group/{B}", f"urn:uuid:{B}", f"Patient/{B}*", "Patient/pat-%25", "pat_2",
]
# Whole query strings beyond one value: repeats, modifiers, other criteria.
QUERIES = [
    f"patient={A}&patient={B}", f"patient={B}&patient={A}", f"patient={A}&subject={B}",
    f"subject={A}&patient=Patient/{B}", f"subject:Patient={B}", f"subject:Patient={A}",
    f"patient:Patient={B}", "patient:missing=true", "subject:missing=true",
    f"patient:identifier={B}", f"patient={A}&patient:missing=true", f"patient%3A={B}",
    f"patient=&patient={B}", f"patient={A}&_count=1000&patient={B}",
]


def _params(rtype: str) -> list[str]:
    return [p for p in ("patient", "subject") if p in PARAMETERS[rtype]]


CASES = [(rtype, f"{param}={value}") for rtype in PATIENT_DATA for param in _params(rtype)
         for value in SPELLINGS] + [(rtype, q) for rtype in PATIENT_DATA for q in QUERIES]


def check(world: World, rtype: str, query: str, headers: dict[str, str] | None = None) -> Any:
    """Search with A's token and fail if anything of B's comes back."""
    resp = world.client.get(f"/fhir/{rtype}?{query}", headers=headers or world.headers())
    assert resp.status_code in (200, 400, 403), (rtype, query, resp.status_code)
    assert not world.leaks(resp.data), (rtype, query, world.leaks(resp.data))
    if resp.status_code == 200:
        for entry in resp.json["entry"]:
            assert _belongs_to_a(world, entry["resource"]), (rtype, query)
    else:
        assert resp.json["resourceType"] == "OperationOutcome"
    return resp


def _belongs_to_a(world: World, res: dict[str, Any]) -> bool:
    if "subject" in res:
        return bool(res["subject"] == {"reference": f"Patient/{A}"})
    if res["resourceType"] == "Task":
        return bool(res["for"] == {"reference": f"Patient/{A}"})
    if res["resourceType"] == "AuditEvent":  # those of A's own requests are new ones
        named = [e["what"].get("reference", "") for e in res["entity"]]
        return all(r == f"Patient/{A}" for r in named if r.startswith("Patient"))
    return bool(res["id"] in world.ids[A][res["resourceType"]])


@pytest.mark.parametrize(("rtype", "query"), CASES)
def test_no_spelling_of_b_reaches_a(world: World, rtype: str, query: str) -> None:
    check(world, rtype, query)


@pytest.mark.parametrize(("rtype", "query"), [
    (rtype, f"{param}={value}") for rtype in PATIENT_DATA for param in _params(rtype)
    for value in (B, f"Patient/{B}", f"{BASE}/Patient/{B}", f"{A},{B}", f"Patient%2F{B}")
])
def test_naming_another_patient_that_parses_is_403(world: World, rtype: str, query: str) -> None:
    assert check(world, rtype, query).status_code == 403


@pytest.mark.parametrize("rtype", PATIENT_DATA)
@pytest.mark.parametrize("query", [
    f"patient=Patient/{A}%3F/Patient/{B}", f"patient=Patient/{A}/../{B}", f"patient=patient/{B}",
    f"patient=Patient/{A}%0A", f"patient=Patient%252F{B}", f"patient=Patient/{B}/_history/1",
    f"patient=https://other.example.org/fhir/Patient/{A}", f"patient=Patient/{A},",
])
def test_a_spelling_that_does_not_parse_is_400(world: World, rtype: str, query: str) -> None:
    assert check(world, rtype, query).status_code == 400


@pytest.mark.parametrize("rtype", PATIENT_DATA[:-1])  # A's AuditEvents: the next test
@pytest.mark.parametrize("query", [
    "", f"patient={A}", f"patient=Patient/{A}", f"patient={BASE}/Patient/{A}", f"patient={A},{A}",
    f"patient={A}&patient=Patient/{A}",
])
def test_honest_spellings_of_a_find_a(world: World, rtype: str, query: str) -> None:
    resp = check(world, rtype, query)
    assert resp.status_code == 200 and resp.json["entry"], (rtype, query)


def test_a_sees_no_audit_event_that_names_b_too(world: World) -> None:
    clinician = world.headers("user/*.cruds", None)
    both = world.client.get(f"/fhir/AuditEvent?patient={A}", headers=clinician).json["entry"]
    assert any(f"Patient/{B}" in str(e["resource"]["entity"]) for e in both)  # they exist
    mine = check(world, "AuditEvent", f"patient={A}").json["entry"]
    assert mine and all(f"Patient/{B}" not in str(e["resource"]) for e in mine)


@pytest.mark.parametrize("rtype", PATIENT_DATA)
def test_b_ids_and_references_find_nothing(world: World, rtype: str) -> None:
    # The token's patient is added to every search, whatever else it names.
    refs = [f"{t}/{i}" for t, ids in world.ids[B].items() for i in sorted(ids)[:3]]
    for rid in sorted(world.ids[B][rtype])[:3]:
        check(world, rtype, f"_id={rid}")
        check(world, rtype, f"_id={rid}&patient={A}")
    for name, (kind, _) in PARAMETERS[rtype].items():
        if kind == "reference" and name not in ("patient", "subject"):
            for ref in refs:
                resp = check(world, rtype, f"{name}={ref}")
                assert resp.status_code != 200 or not resp.json["entry"], (rtype, name, ref)


@pytest.mark.parametrize("rtype", PATIENT_DATA)
@pytest.mark.parametrize("scope", ["patient/*.rs", "patient/*.read", "patient/*.cruds"])
def test_other_scope_spellings_change_nothing(world: World, rtype: str, scope: str) -> None:
    headers = world.headers(scope, A)
    for query in (f"patient={B}", f"patient=Patient/{A}%3F/Patient/{B}", f"_id={B}", ""):
        check(world, rtype, query, headers)


# Pieces the attack tables use, composed at random.
PREFIXES = ["", "Patient/", f"{BASE}/Patient/", "https://other.example.org/fhir/Patient/",
            "patient/", "PATIENT/", "./Patient/", "Patient%2F", "Patient%252F", "%20", "/"]
SEPARATORS = ["/", "%2F", "%252F", "?", "%3F", "%253F", "%23", "/../", "/./", "%2F..%2F",
              ",", "%2C", "%0A", "%09", "%20", "%00", "%EF%BC%8F", "%5C", "/_history/", "&x=",
              "&patient=", "&subject=", "/Patient/", ""]
WHO = [A, B, A.upper(), B.upper(), "p%D0%B0t-2", f"{B}%0A", f"{B}.", "..", "."]
NAMES = ["patient", "subject", "subject:Patient", "patient:missing", "_id", "derived-from",
         "target", "entity", "agent"]


@st.composite
def queries(draw: st.DrawFn) -> str:
    """A query string: a parameter and a value made of a prefix, people and separators."""
    parts = [draw(st.sampled_from(PREFIXES)), draw(st.sampled_from(WHO))]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(st.sampled_from(SEPARATORS)), draw(st.sampled_from(PREFIXES)),
                  draw(st.sampled_from(WHO))]
    query = f"{draw(st.sampled_from(NAMES))}={''.join(parts)}"
    if draw(st.booleans()):
        query += f"&{draw(st.sampled_from(NAMES))}={draw(st.sampled_from(PREFIXES))}" \
                 f"{draw(st.sampled_from(WHO))}"
    return query


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rtype=st.sampled_from(PATIENT_DATA), query=queries())
def test_composed_spellings_never_reach_b(world: World, rtype: str, query: str) -> None:
    check(world, rtype, query)
